"""Customer history: a returning customer, recognised by a verified identity, comes with
a short summary of their earlier conversations, and agents may read those transcripts.

The identity is what the customer's protocol verified (gateway.desk.identity): an XMPP
account's bare JID, an IRC services account, a JSON-IM customer token or a site's
signed id. Routing waits for the summary (at most ``[desk] history_wait_s``), so the
offer carries it; ``connected`` does too.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.logger import Logger

from gateway import logs
from gateway.core import events as ev
from gateway.core.conversation import Conversation
from gateway.core.errors import NotAllowed
from gateway.desk.context import DeskContext


class History:
    """Looks returning customers up; serves their past to the agents who have them."""

    _log = Logger(observer=logs.observer)

    def __init__(self, ctx: DeskContext, in_room: Any) -> None:
        self._ctx = ctx
        # in_room(conversation, agent name): a participant beside the agent.
        self._in_room = in_room
        self._gates: dict[str, Deferred] = {}

    def opened(self, conv: Conversation) -> Deferred | None:
        """Record whose conversation this is, and look up their earlier ones (and the
        answers waiting for them): fires with those answers; None when not recognised."""
        if not conv.customer_id:
            return None
        ctx = self._ctx
        gate: Deferred = Deferred()
        self._gates[conv.id] = gate
        timer = ctx.core.clock.callLater(ctx.settings.history_wait_s, self._open_gate, conv.id)

        def found(result: tuple) -> list:
            rows, answers = result
            conv.past = tuple(
                ev.PastConversation(
                    conversation=cid,
                    started=started,
                    topic=topic,
                    disposition=disposition,
                    agent_alias=alias,
                )
                for cid, started, topic, disposition, alias in rows
            )
            return answers

        def done(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            self._open_gate(conv.id)
            return result

        d = ctx.store.customer_arrived(
            conv.id, conv.customer_id, conv.started, ctx.settings.history_limit
        )
        d.addCallback(found)
        d.addBoth(done)
        return d

    def _open_gate(self, conversation: str) -> None:
        gate = self._gates.pop(conversation, None)
        if gate is not None:
            gate.callback(None)

    def before_route(self, conv: Conversation) -> Deferred:
        """What routing waits for: the summary loaded, or history_wait_s passed."""
        gate = self._gates.get(conv.id)
        if gate is None:
            return succeed(None)
        waiting: Deferred = Deferred()
        gate.addBoth(lambda r: (waiting.callback(None), r)[1])
        return waiting

    def forget(self, conversation: str) -> None:
        """The conversation ended: its gate opens if still shut."""
        self._open_gate(conversation)

    # -- agents' requests ---------------------------------------------------------------

    def _served(self, session: Any, ref: str) -> Conversation:
        conv = self._ctx.conversation(ref)
        if conv.agent is session.agent or self._in_room(conv.id, session.name):
            return conv
        raise NotAllowed(f"not in conversation {ref[:64]}")

    def past(self, session: Any, ref: str) -> Deferred:
        """The earlier conversations of the customer of a conversation the agent is in."""
        return maybeDeferred(self._past, session, ref)

    def _past(self, session: Any, ref: str) -> dict:
        conv = self._served(session, ref)
        return {
            "conversation": conv.id,
            "customer": conv.alias,
            "recognised": conv.customer_id is not None,
            "past": [past_json(p) for p in conv.past],
        }

    def transcript(self, session: Any, ref: str, earlier: str) -> Deferred:
        """An earlier conversation's transcript, its wrap-ups and notes; only of the same
        customer as the conversation the agent is in."""
        return maybeDeferred(self._transcript, session, ref, earlier)

    def _transcript(self, session: Any, ref: str, earlier: str) -> Deferred:
        conv = self._served(session, ref)
        if conv.customer_id is None or earlier == conv.id:
            raise NotAllowed(f"{earlier[:64]} is not an earlier conversation of this customer")
        ctx = self._ctx

        def check(customer: str | None) -> Deferred:
            if customer != conv.customer_id:
                raise NotAllowed(f"{earlier[:64]} is not an earlier conversation of this customer")
            return ctx.core.store.transcript(earlier).addCallback(with_case)

        def with_case(messages: list) -> Deferred:
            return ctx.store.case_file(earlier).addCallback(
                lambda case: {
                    "conversation": earlier,
                    "messages": [
                        {
                            "from": m.sender,
                            "text": m.text,
                            "ts": m.ts,
                            "private": m.audience != "all",
                        }
                        for m in messages
                    ],
                    **case,
                }
            )

        return ctx.store.customer_of(earlier).addCallback(check)


def past_json(p: ev.PastConversation) -> dict:
    """One earlier conversation as frames and the API show it."""
    return {
        "conversation": p.conversation,
        "started": p.started,
        "topic": p.topic,
        "disposition": p.disposition,
        "agent": p.agent_alias,
    }
