"""The desk's commands as chat agents type them (XMPP ``/monitor c-7f3a``, IRC
``monitor c-7f3a``), and the desk's events as the lines they read.

Both chat adapters parse a command's words themselves and call :func:`run` with them
and with the chat the agent wrote in (XMPP: a customer's address; None: the support
address or service nick). A conversation is named by its customer alias (``c-7f3a``)
or its id. Replies are plain text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, fail, maybeDeferred

from gateway.core import events as ev
from gateway.core.errors import BadRequest, GatewayError, Unavailable

# name -> (usage, what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "live": ("", "the live conversations you may monitor (supervisors)"),
    "monitor": ("CHAT", "follow a conversation silently (supervisors)"),
    "barge": ("CHAT", "join it visibly (supervisors)"),
    "whisper": ("[CHAT] TEXT", "a line to the agents only, never the customer"),
    "leave": ("[CHAT]", "stop monitoring, consulting or taking part"),
    "team": ("", "your teams' agents and queues (supervisors)"),
    "state": ("AGENT STATUS", "set an agent of your teams available, away or offline"),
    "consult": ("[CHAT] @AGENT [TEXT]", "bring a colleague in privately"),
    "conference": ("[CHAT] [@AGENT]", "add the colleague to the conversation"),
    "handover": ("[CHAT] @AGENT [INTRODUCTION]", "warm transfer to the colleague consulted"),
    "wrapup": ("[CHAT] CODE [#TAG...] [NOTE]", "wrap a finished conversation up (- : no code)"),
    "note": ("[CHAT] TEXT", "a private note on a conversation"),
    "history": ("[CHAT]", "the customer's earlier conversations"),
    "transcript": ("[CHAT] EARLIER", "one earlier conversation in full"),
    "canned": ("[CHAT] [NAME]", "send a canned response (no name: list them)"),
    "tasks": ("", "the message you were given to answer"),
    "reply": ("TASK TEXT", "answer a message a customer left"),
    "release": ("TASK", "give it back for another agent"),
}

# Commands whose first word may name the chat (else: the chat written in).
_CHAT_FIRST = frozenset(
    {"whisper", "leave", "consult", "conference", "handover", "note", "history", "transcript"}
)


def help_lines(prefix: str = "/") -> list[str]:
    """One line per command, for an adapter's help."""
    return [
        f"{prefix}{name} {usage}".rstrip() + f"  {what}" for name, (usage, what) in COMMANDS.items()
    ]


def _chat_and_rest(
    desk: Any, words: Sequence[str], current: str | None, name: str
) -> tuple[str, list[str]]:
    words = list(words)
    if words and _names_a_chat(desk, words[0]) and (current is None or name in _CHAT_FIRST):
        return words[0], words[1:]
    if current is not None:
        return current, words
    raise BadRequest(f"name the chat: {name} CHAT ...")


def _names_a_chat(desk: Any, word: str) -> bool:
    """Whether ``word`` names a live conversation (its customer alias or id)."""
    try:
        desk.ctx.conversation(word)
    except GatewayError:
        return False
    return True


def _agent(word: str | None) -> str:
    if not word or not word.startswith("@"):
        raise BadRequest("name the colleague as @NAME")
    return word[1:]


def run(desk: Any, session: Any, name: str, words: Sequence[str], current: str | None) -> Deferred:
    """Carry out one desk command; fires with the reply text (or None: nothing to say)."""
    if desk is None:
        return fail(Unavailable("this gateway has no service desk"))
    handler = _HANDLERS.get(name)
    if handler is None:
        return fail(BadRequest(f"unknown command {name[:32]}"))
    return maybeDeferred(handler, desk, session, list(words), current)


def _live(desk, session, words, current) -> Deferred:
    def text(result: dict) -> str:
        rows = [
            f"{c['customer']} ({c['id']}) {c['state']}, queue {c['queue'] or '-'},"
            f" agent {c['agent'] or '-'}, {c['age_s']:g} s"
            for c in result["conversations"]
        ]
        return "\n".join(["Live conversations:", *rows]) if rows else "No live conversations."

    return desk.live(session).addCallback(text)


def _monitor(desk, session, words, current) -> Deferred:
    chat = words[0] if words else current
    if not chat:
        raise BadRequest("monitor CHAT")
    return desk.monitor(session, chat).addCallback(
        lambda r: f"Monitoring {r['customer']}: you see everything; what you write is a whisper."
    )


def _barge(desk, session, words, current) -> Deferred:
    chat = words[0] if words else current
    if not chat:
        raise BadRequest("barge CHAT")
    return desk.barge(session, chat).addCallback(
        lambda r: f"You joined {r['customer']}'s conversation: the customer sees what you write."
    )


def _whisper(desk, session, words, current) -> Deferred:
    chat, rest = _chat_and_rest(desk, words, current, "whisper")
    if not rest:
        raise BadRequest("whisper [CHAT] TEXT")
    return desk.whisper(session, chat, " ".join(rest)).addCallback(lambda _: None)


def _leave(desk, session, words, current) -> Deferred:
    chat = words[0] if words else current
    if not chat:
        raise BadRequest("leave CHAT")
    return desk.leave(session, chat).addCallback(lambda r: f"You left {r['conversation']}.")


def _team(desk, session, words, current) -> Deferred:
    def text(view: dict) -> str:
        agents = [
            f"{a['name']}: {a['state']}"
            + (f" ({a['reason']})" if a["reason"] else "")
            + f", load {a['load']}"
            for a in view["agents"]
        ]
        queues = [
            f"{q['name']}: {q['depth']} waiting, {q['active']} with agents" for q in view["queues"]
        ]
        teams = ", ".join(view["teams"]) or "everyone"
        return "\n".join([f"Teams: {teams}", *agents, *queues])

    return desk.team(session).addCallback(text)


def _state(desk, session, words, current) -> Deferred:
    if len(words) != 2:
        raise BadRequest("state AGENT STATUS")
    return desk.set_state(session, words[0], words[1]).addCallback(
        lambda r: f"{r['agent']} is {r['status']}."
    )


def _consult(desk, session, words, current) -> Deferred:
    chat, rest = _chat_and_rest(desk, words, current, "consult")
    colleague = _agent(rest[0] if rest else None)
    text = " ".join(rest[1:]) or None
    return desk.consult(session, chat, colleague, text).addCallback(
        lambda r: (
            f"{r['agent']} is consulting on {r['conversation']}; the customer does not see it."
        )
    )


def _conference(desk, session, words, current) -> Deferred:
    chat, rest = _chat_and_rest(desk, words, current, "conference")
    colleague = _agent(rest[0]) if rest else None
    return desk.conference(session, chat, colleague).addCallback(
        lambda r: f"{r['agent']} joined the conversation."
    )


def _handover(desk, session, words, current) -> Deferred:
    chat, rest = _chat_and_rest(desk, words, current, "handover")
    colleague = _agent(rest[0] if rest else None)
    introduction = " ".join(rest[1:]) or None
    return desk.handover(session, chat, colleague, introduction).addCallback(
        lambda r: f"{r['agent']} took the conversation over."
    )


def _wrapup(desk, session, words, current) -> Deferred:
    words = list(words)
    chat = current
    if words and (words[0].startswith("c-") or _names_a_chat(desk, words[0])):
        chat = words.pop(0)  # a chat that ended is named too: it is the one wrapped up
    code = None
    if words and not words[0].startswith("#"):
        code = words.pop(0)
        code = None if code == "-" else code
    tags = []
    while words and words[0].startswith("#"):
        tags.append(words.pop(0))
    note = " ".join(words) or None

    def text(r: dict) -> str:
        tags_text = " ".join(f"#{t}" for t in r["tags"])
        return f"Wrapped up {r['conversation']}: {r['disposition'] or '-'} {tags_text}".rstrip()

    return desk.wrap_up(session, chat, code, tags, note).addCallback(text)


def _note(desk, session, words, current) -> Deferred:
    chat, rest = _chat_and_rest(desk, words, current, "note")
    if not rest:
        raise BadRequest("note [CHAT] TEXT")
    return desk.note(session, chat, " ".join(rest)).addCallback(lambda _: "Noted.")


def _history(desk, session, words, current) -> Deferred:
    chat, _ = _chat_and_rest(desk, words, current, "history")
    return desk.past(session, chat).addCallback(history_text)


def _transcript(desk, session, words, current) -> Deferred:
    chat, rest = _chat_and_rest(desk, words, current, "transcript")
    if len(rest) != 1:
        raise BadRequest("transcript [CHAT] EARLIER")
    return desk.transcript(session, chat, rest[0]).addCallback(transcript_text)


def _canned(desk, session, words, current) -> Deferred:
    words = list(words)
    chat = current
    if len(words) == 2 or (words and current is None and _names_a_chat(desk, words[0])):
        chat = words.pop(0)
    if not words:

        def listing(result: dict) -> str:
            rows = [f"{c['name']}: {c['text']}" for c in result["responses"]]
            return "\n".join(["Canned responses:", *rows]) if rows else "No canned responses."

        return desk.canned_list(session).addCallback(listing)
    if chat is None:
        raise BadRequest("canned CHAT NAME")
    return desk.canned(session, chat, words[0]).addCallback(lambda _: None)


def _tasks(desk, session, words, current) -> Deferred:
    def text(result: dict) -> str:
        rows = [task_text(t["id"], t["customer"], t["text"]) for t in result["tasks"]]
        return "\n".join(rows) if rows else "No message to answer."

    return desk.tasks(session).addCallback(text)


def _reply(desk, session, words, current) -> Deferred:
    if len(words) < 2:
        raise BadRequest("reply TASK TEXT")
    return desk.reply(session, words[0], " ".join(words[1:])).addCallback(
        lambda r: f"Answered {r['task']}; the customer gets it when they come back."
    )


def _release(desk, session, words, current) -> Deferred:
    if len(words) != 1:
        raise BadRequest("release TASK")
    return desk.release(session, words[0]).addCallback(lambda r: f"Gave {r['task']} back.")


_HANDLERS: dict[str, Callable[..., Deferred]] = {name: globals()[f"_{name}"] for name in COMMANDS}


# -- results and events as lines --------------------------------------------------------


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def history_text(result: dict) -> str:
    """A customer's earlier conversations."""
    if not result["recognised"]:
        return f"{result['customer']} is not recognised (no verified identity)."
    rows = [
        f"{p['conversation']} on {_day(p['started'])}: {p['topic'] or '-'},"
        f" {p['disposition'] or 'no disposition'}, with {p['agent'] or '-'}"
        for p in result["past"]
    ]
    return (
        "\n".join([f"Earlier conversations of {result['customer']}:", *rows])
        if rows
        else (f"{result['customer']} has no earlier conversations.")
    )


def past_text(history: Sequence[ev.PastConversation]) -> str | None:
    """A recognised customer's earlier conversations in one line (None: none)."""
    if not history:
        return None
    last = history[0]
    return (
        f"Returning customer: {len(history)} earlier conversation(s); the last on"
        f" {_day(last.started)}, {last.topic or '-'}, {last.disposition or 'no disposition'},"
        f" with {last.agent_alias or '-'} ({last.conversation})"
    )


def transcript_text(result: dict) -> str:
    """An earlier conversation, line by line."""
    lines = [f"Conversation {result['conversation']}:"]
    for m in result["messages"]:
        private = " (agents only)" if m["private"] else ""
        lines.append(f"[{m['from']}{private}] {m['text']}")
    for w in result["wrap_ups"]:
        lines.append(f"Wrap-up by {w['agent']}: {w['disposition'] or '-'}")
    for n in result["notes"]:
        lines.append(f"Note by {n['agent']}: {n['text']}")
    return "\n".join(lines)


def task_text(task: str, customer: Any, text: str) -> str:
    """A message left, as an agent reads it."""
    alias = customer if isinstance(customer, str) else customer.alias
    return f"Message {task} from {alias}: {text}\nAnswer: reply {task} TEXT (or release {task})."


def event_text(event: object) -> str | None:
    """What a chat agent reads for the desk's own events (None: not one)."""
    if isinstance(event, ev.WrapUp):
        codes = ", ".join(event.dispositions) or "none"
        need = "required" if event.required else "optional"
        return (
            f"Wrap up {event.customer_alias} ({event.conversation}): disposition {need},"
            f" one of {codes}. Write: wrapup {event.customer_alias} CODE [#tag ...] [note]"
        )
    if isinstance(event, ev.Task):
        name = event.customer.identity.get("name")
        who = f"{event.customer.alias}" + (f" ({name})" if name else "")
        return task_text(event.task, who, event.text)
    return None


def line_prefix(event: ev.Message, *, for_agent: bool) -> str:
    """``[Sue] `` before a second agent's line; ``(agents only)`` on a private one."""
    if event.alias is None:
        return ""
    if for_agent and event.private:
        return f"[{event.alias}, agents only] "
    return f"[{event.alias}] "


def joined_text(event: ev.Connected) -> str | None:
    """What a supervisor or colleague reads on joining (None: it is the agent)."""
    if event.role == "agent":
        return None
    with_agent = f", with {event.agent_alias}" if event.agent_alias else ""
    what = {
        "monitor": "monitoring (silent: what you write goes to the agents only)",
        "consult": "consulting (the customer does not see you)",
        "conference": "in conference (the customer sees what you write)",
        "barge": "barged in (the customer sees what you write)",
    }.get(event.role, event.role)
    return f"You are {what} in {event.peer_alias}'s conversation{with_agent}."
