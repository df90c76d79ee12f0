"""Canned responses: a text kept under a short name, global or a team's, sent by name from
any agent client with the customer's name filled in.

Placeholders: ``{customer}`` (the name the customer gave, else their alias),
``{agent}`` (the agent's alias), ``{topic}``. Anything else in braces stays as written.
A team's response of a name wins over the global one for that team's agents.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred

from gateway.core.conversation import Conversation
from gateway.core.errors import BadRequest, NotAllowed
from gateway.desk.context import DeskContext
from gateway.desk.records import Canned

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_PLACEHOLDER = re.compile(r"\{(customer|agent|topic)\}")


def check_name(name: str) -> str | None:
    """Why ``name`` cannot name a canned response, or None."""
    if isinstance(name, str) and NAME.match(name):
        return None
    return "a name is up to 64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit"


def fill(text: str, conv: Conversation, agent_alias: str) -> str:
    """The response with its placeholders filled for this conversation."""
    values = {
        "customer": conv.answers.get("name") or conv.alias,
        "agent": agent_alias,
        "topic": conv.topic or "",
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def pick(responses: Iterable[Canned], name: str, teams: frozenset[str]) -> Canned | None:
    """The response ``name`` for an agent of ``teams``: a team's first, else the global one."""
    found = [c for c in responses if c.name == name and (c.team in teams or not c.team)]
    found.sort(key=lambda c: (not c.team, c.team))
    return found[0] if found else None


class CannedResponses:
    """Canned responses for agents."""

    def __init__(self, ctx: DeskContext, teams: Any) -> None:
        self._ctx = ctx
        self._teams = teams

    def available(self, session: Any) -> Deferred:
        """The responses this agent may use (a team's shadowing a global one)."""
        teams = self._teams.teams_of(session.name)

        def mine(responses: list[Canned]) -> dict:
            names = sorted({c.name for c in responses if c.team in teams or not c.team})
            return {"responses": [pick(responses, n, teams).to_json() for n in names]}

        return self._ctx.store.canned_list().addCallback(mine)

    def send(self, session: Any, ref: str, name: str) -> Deferred:
        """Send the response ``name`` in a conversation; fires with (message id, text)."""
        return maybeDeferred(self._send, session, ref, name)

    def _send(self, session: Any, ref: str, name: str) -> Deferred:
        if check_name(name):
            raise BadRequest(check_name(name))
        conv = self._ctx.conversation(ref)
        if conv.agent is not session.agent:
            raise NotAllowed(f"not in conversation {ref[:64]}")
        teams = self._teams.teams_of(session.name)

        def found(responses: list[Canned]) -> Deferred:
            canned = pick(responses, name, teams)
            if canned is None:
                raise BadRequest(f"no canned response {name!r}")
            text = fill(canned.text, conv, session.agent.alias)
            return session.say(conv.id, text).addCallback(
                lambda msg: {"conversation": conv.id, "name": name, "msg": msg, "text": text}
            )

        return self._ctx.store.canned_list().addCallback(found)
