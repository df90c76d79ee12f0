"""The service desk for XMPP agents: its chat commands and its events as messages.

Commands go to the support address, or to a customer's address for that chat
(``/whisper`` there needs no chat named); answers come back from where the command
went. A supervisor or colleague in a conversation reads it from the customer's address
as the agent does, each line from a second agent headed ``[Alias]`` (``[Alias, agents
only]`` for a private one); what they write there is a whisper unless they barged in
or joined in conference. Replies and events are built anew; no text is spliced as XML.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.python.failure import Failure

from gateway.core import events as ev
from gateway.core.errors import GatewayError
from gateway.desk import chat
from protocols.xmpp import stanzas

Send = Callable[[str, str, str], None]  # (from, to, text)


def run(
    gateway: Any,
    party: Any,
    name: str,
    words: Sequence[str],
    alias: str | None,
    sender: str,
    send: Send,
) -> None:
    """A desk command of an XMPP agent; the answer is sent from ``sender``."""
    session = party.session
    if name == "away":
        d = gateway.service_desk.away(session, words[0]) if gateway.service_desk else None
        if d is None:
            session.set_presence("away")
            send(sender, party.jid, "You are away.")
            return
        d.addCallback(lambda r: f"You are away ({r['reason']}).")
    else:
        current = party.conversation_of(alias) if alias else None
        d = chat.run(gateway.service_desk, session, name, words, current)

    def answered(text: str | None) -> None:
        if text:
            send(sender, party.jid, text)

    def refused(failure: Failure) -> None:
        if failure.check(GatewayError):
            send(sender, party.jid, f"Error: {failure.value.text}")
        else:
            send(sender, party.jid, "Error: internal error")

    d.addCallbacks(answered, refused)


def line_for_agent(event: ev.Message) -> str:
    """A line of a conversation as an agent (or supervisor) reads it."""
    return chat.line_prefix(event, for_agent=True) + event.text


def deliver(party: Any, event: object, support: str, domain: str, send_stanza) -> bool:
    """Render the desk's own events for an agent; False when ``event`` is not one."""
    text = chat.event_text(event)
    if text is not None:
        send_stanza(stanzas.message(support, party.jid, text))
        return True
    if isinstance(event, ev.Connected) and event.role != "agent":
        party.chats[event.peer_alias] = event.conversation
        sender = f"{event.peer_alias}@{domain}"
        lines = [chat.joined_text(event)]
        lines += [f"[{h.sender}] {h.text}" for h in event.history]
        send_stanza(stanzas.message(sender, party.jid, "\n".join(lines)))
        return True
    return False


HELP = "\n".join(["Service desk commands:", *chat.help_lines("/"), "/away [REASON]  go away"])
