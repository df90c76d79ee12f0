"""The routing server's live endpoints: the event feed, decisions, statistics.

``POST /v1/events`` takes a batch of a gateway's feed (gateway.routerd.ingest);
``POST /v1/decide`` decides a conversation's routing with the live state
(gateway.routerd.decide); ``GET /v1/stats`` and ``GET /v1/state`` show the queue
statistics (gateway.routerd.stats) and what the state holds. Each handler answers
(HTTP status, JSON value); :class:`gateway.routerd.api.RouterApi` checks the token
and reads the body first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.logger import Logger

from gateway import logs
from gateway.routerd.decide import decide, decision_json
from gateway.routerd.ingest import Batch, FeedError, FeedIngest
from gateway.routerd.rulebook import RuleBook
from gateway.routerd.state import WAITING
from gateway.routerd.stats import gateway_report, queue_report
from gateway.routing.plan import Plan
from gateway.routing.wire import WireError, plan_to_json, request_from_json


@attrs.define
class LiveApi:
    """The live endpoints over the current ``ingest()`` and the rules of ``book``."""

    _log = Logger(observer=logs.observer)

    ingest: Callable[[], FeedIngest]
    book: RuleBook
    clock: Any
    texts: bool = False

    def events(self, data: Any) -> tuple[int, Any]:
        """One batch of a gateway's feed; the acknowledgement."""
        try:
            batch = Batch.parse(data)
        except FeedError as e:
            return 400, {"error": str(e)}
        ingest = self.ingest()
        try:
            accepted = ingest.accept(batch)
        except OSError as e:
            self._log.error("imrouter cannot write its journal: {error}", error=str(e))
            return 503, {"error": f"cannot write the journal: {e.strerror or e}"}
        return 200, {
            "ack": accepted.ack,
            "applied": accepted.applied,
            "repeated": accepted.repeated,
            "texts": self.texts,
            "snapshot": batch.stream in ingest.wants_snapshot,
        }

    def decide(self, data: Any) -> tuple[int, Any]:
        """A conversation's plan, and the agents assigned from live state."""
        try:
            customer, request, gateway, _node = request_from_json(data)
        except WireError as e:
            return 400, {"error": str(e)}
        rules = self.book.rules.get(customer.media)
        if rules is None:
            return 404, {"error": f"unknown media {customer.media!r}"}
        try:
            decision = decide(
                self.ingest().state, rules, customer, request, gateway, self.clock.seconds()
            )
        except Exception:
            self._log.failure("imrouter could not decide for {gateway}", gateway=gateway)
            return 500, {"error": "the decision failed; see the router's log"}
        plan: Plan = decision.plan
        self._log.info(
            "imrouter decided {conversation} of {gateway} ({reason}): rule {rule}; {assigned}",
            conversation=request.conversation,
            gateway=gateway or "-",
            reason=request.reason,
            rule=plan.rule,
            assigned=f"assigned {decision.why}" if decision.agents else f"none: {decision.why}",
        )
        return 200, decision_json(decision, plan_to_json(plan))

    def stats(self) -> tuple[int, Any]:
        """Queue statistics per gateway and queue, and per gateway."""
        ingest = self.ingest()
        state = ingest.state
        return 200, {
            "queues": queue_report(state, self.clock.seconds()),
            "gateways": gateway_report(state),
            "feed": {
                "streams": len(ingest.streams),
                "applied": ingest.applied,
                "repeated": ingest.repeated,
                "gaps": ingest.gaps,
            },
        }

    def state(self) -> tuple[int, Any]:
        """The agents and the waiting conversations the router knows, per gateway."""
        state = self.ingest().state
        agents = [
            attrs.asdict(a)
            for a in sorted(state.agents.values(), key=lambda a: (a.gateway, a.name))
        ]
        waiting = [
            {
                "gateway": c.gateway,
                "conversation": c.id,
                "queue": c.queue,
                "state": c.state,
                "priority": c.priority,
                "arrival": c.arrival,
            }
            for c in sorted(state.conversations.values(), key=lambda c: (c.gateway, c.id))
            if c.state in WAITING
        ]
        return 200, {
            "agents": agents,
            "waiting": waiting,
            "conversations": len(state.conversations),
        }
