"""Neutral events as the chat lines an XMPP user reads.

Pure functions: the hub decides who sends them and to whom. A customer's lines
never carry an agent's account, JID or server, only the agent's alias.
"""

from __future__ import annotations

from twisted.words.xish import domish

from gateway.core import events as ev
from gateway.desk import chat
from protocols.xmpp import ns
from protocols.xmpp.stanzas import xml_text

MAX_FORM_VALUE = 1024

# Core typing states -> XEP-0085 chat states, and back.
CHATSTATE_OUT = {"active": "composing", "paused": "paused"}
CHATSTATE_IN = {"composing": "active", "paused": "paused", "active": "paused"}

END_TEXTS = {
    "customer": "The conversation has ended.",
    "agent": "The agent has ended the conversation.",
    "timeout": "The conversation has ended (timeout).",
    "no_agents": "The conversation has ended: no agent is available.",
    "closed": "The conversation has been closed.",
    "shutdown": "The conversation has ended: the service is restarting.",
}
AGENT_END_TEXTS = {
    "customer": "The customer left; the conversation has ended.",
    "agent": "You left the conversation.",
}


def is_live_only(event: object) -> bool:
    """Whether the line for ``event`` is the gateway's own, meaningless later: such lines
    carry XEP-0334 hints so that no server keeps them for a client that is offline
    (where a stale "The agent has ended the conversation" would wait for it)."""
    return not (isinstance(event, ev.Message) and event.sender != ev.SYSTEM)


def hinted(message: domish.Element) -> domish.Element:
    """Add XEP-0334 ``<no-store/>`` and ``<no-permanent-store/>`` to a message."""
    message.addElement((ns.HINTS, "no-store"))
    message.addElement((ns.HINTS, "no-permanent-store"))
    return message


def prompt(event: ev.Prompt) -> str:
    """An interview question; choices as numbered lines to answer by number or name."""
    numbered = [f"{i}. {choice.label}" for i, choice in enumerate(event.choices, 1)]
    if all(line in event.text for line in numbered):
        return event.text  # the core already lists them
    return "\n".join([event.text, *numbered])


def prompt_form(event: ev.Prompt) -> domish.Element:
    """A XEP-0004 form with one list-single field for a prompt with choices."""
    form = domish.Element((ns.DATA_FORMS, "x"))
    form["type"] = "form"
    form.addElement("title", content=xml_text(event.text.splitlines()[0]))
    field = form.addElement("field")
    field["var"], field["type"] = event.field, "list-single"
    field["label"] = xml_text(event.text.splitlines()[0])
    field.addElement("required")
    for choice in event.choices:
        option = field.addElement("option")
        option["label"] = xml_text(choice.label)
        option.addElement("value", content=xml_text(choice.value))
    return form


def form_answer(stanza: domish.Element) -> str | None:
    """The single value of a submitted XEP-0004 form in a message, if there is one."""
    for form in stanza.children:
        if type(form) is str or (form.uri, form.name) != (ns.DATA_FORMS, "x"):
            continue
        if form.getAttribute("type") != "submit":
            continue
        for field in form.elements():
            if field.name != "field" or field.getAttribute("var") == "FORM_TYPE":
                continue
            for value in field.elements():
                if value.name == "value":
                    return str(value).strip()[:MAX_FORM_VALUE]
    return None


def queued(event: ev.Queued) -> str:
    """The customer's place in line (no time promised while nobody can serve it)."""
    if event.eta_s is None:
        return f"You are number {event.position} in line."
    minutes = max(1, round(event.eta_s / 60))
    return f"You are number {event.position} in line (about {minutes} min)."


def customer_line(event: object) -> str | None:
    """What a customer reads for ``event`` (None for events without a line)."""
    if isinstance(event, ev.Prompt):
        return prompt(event)
    if isinstance(event, ev.Queued):
        return queued(event)
    if isinstance(event, ev.Connected):
        return f"You are now chatting with {event.peer_alias}."
    if isinstance(event, ev.Message):
        # A second agent's line (a colleague in conference, a supervisor) names them.
        return f"[{event.alias}] {event.text}" if event.alias else event.text
    if isinstance(event, ev.Ended):
        return END_TEXTS.get(event.reason, END_TEXTS["closed"])
    return None


def offer(event: ev.Offer, customer_address: str) -> str:
    """An offer as the agent reads it: who, with what client, and how to answer."""
    card = event.customer
    client = card.client.name + (f" {card.client.version}" if card.client.version else "")
    lines = [
        f"New chat offer {event.offer}: customer {card.alias} ({customer_address})",
        f"Client: {card.protocol}, {client}",
    ]
    if card.topic:
        lines.append(f"Topic: {card.topic}")
    lines += [f"{key}: {value}" for key, value in sorted(card.identity.items())]
    past = chat.past_text(card.history)
    if past:
        lines.append(past)
    if event.routing is not None:
        lines.append(f"Routing: {event.routing.text()}")
    lines.append(
        f"Reply accept {event.offer} or reject {event.offer} (expires in {event.expires_in_s} s;"
        " commands work with or without a leading / or !)."
    )
    return "\n".join(lines)


def revoked(event: ev.Revoked) -> str:
    """An offer withdrawn."""
    return f"Offer {event.offer} was withdrawn ({event.reason})."


def connected_for_agent(event: ev.Connected) -> str:
    """The agent joined a conversation; what was said before follows."""
    lines = [f"You are now chatting with customer {event.peer_alias}. Write here to answer."]
    for entry in event.history:
        lines.append(f"[{entry.sender}] {entry.text}")
    return "\n".join(lines)


def agent_ended(event: ev.Ended) -> str:
    """A conversation of the agent's is over."""
    return AGENT_END_TEXTS.get(event.reason, f"The conversation has ended ({event.reason}).")
