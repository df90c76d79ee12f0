"""Where the gateway's plans come from: its local rules, or the routing server.

:class:`RemotePlans` asks ``twistd imrouter`` with a deadline per attempt, retries,
and then falls back to the local rules; every decision is logged with its source
(remote, local, fallback) and reason. The router's outage thus costs only the
decision, which the local rules then serve. With a :class:`gateway.routing.plan.PlanRequest`
it asks ``POST /v1/decide``: the router classifies and may assign agents from the live
state its event feed gives it (gateway.routing.feed); a requeue or a transfer is asked
again, with the gateway's own plan for it as the fallback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from gateway import logs
from gateway.routing.http import (
    RouterAnswerError,
    describe,
    headers,
    new_pool,
    post_json,
    router_agent,
    timed_out,
)
from gateway.routing.interfaces import IRouter
from gateway.routing.plan import (
    FALLBACK,
    LOCAL,
    REMOTE,
    Customer,
    Plan,
    PlanRequest,
    with_assignment,
)
from gateway.routing.rules import RuleSet
from gateway.routing.wire import (
    WireError,
    assignment_from_json,
    customer_to_json,
    plan_from_json,
    request_to_json,
)

CLASSIFY_PATH = "/v1/classify"
DECIDE_PATH = "/v1/decide"
# Largest reply read from the routing server; a plan is a few hundred bytes.
MAX_REPLY = 65536


def _log_decision(log: Logger, customer: Customer, plan: Plan, elapsed_s: float = 0.0) -> None:
    emit = log.warn if plan.source == FALLBACK else log.info
    emit(
        "routing decision source={source} media={media} rule={rule} "
        "in {elapsed_ms:.1f} ms: {reason}",
        source=plan.source,
        media=customer.media,
        rule=plan.rule,
        elapsed_ms=elapsed_s * 1000,
        reason=plan.reason,
    )


@implementer(IRouter)
class LocalPlans:
    """Plans from the gateway's own rules (source ``local``).

    ``ruleset`` may be replaced at any time (a reload of ``etc/routing.toml``).
    """

    _log = Logger(observer=logs.observer)

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset

    def plan(self, customer: Customer, request: PlanRequest | None = None) -> Deferred[Plan]:
        """The local rules' plan (or a request's own fallback plan), already fired."""
        if request is not None and request.fallback is not None:
            return succeed(request.fallback)
        try:
            plan = attrs.evolve(self.ruleset.classify(customer), source=LOCAL)
        except Exception:
            return fail()
        _log_decision(self._log, customer, plan)
        return succeed(plan)


@implementer(IRouter)
class RemotePlans:
    """Plans from the routing server at ``url`` (e.g. ``https://router:7443``).

    Each attempt (connect, request, reply) is cancelled at ``deadline_s``; a timed-out,
    refused, dropped or 5xx attempt is tried again up to ``retries`` times, at once.
    Then, or at once for a 4xx, a reply that is not a valid plan or a certificate that
    does not verify, the plan comes from ``local`` with source ``fallback`` and a reason
    naming what went wrong.
    ``https`` URLs verify the server's certificate and host name against the system's
    trust store, or against the PEM file ``tls_ca`` when given. ``agent`` replaces the
    HTTP client (tests). ``local`` may be replaced at any time (a rules reload).
    ``gateway`` and ``node`` name this gateway to the router; agents it assigns are
    offered first for ``hold_s`` seconds.
    """

    _log = Logger(observer=logs.observer)

    def __init__(
        self,
        url: str,
        token: str,
        *,
        local: RuleSet,
        reactor: Any,
        deadline_s: float = 0.5,
        retries: int = 1,
        tls_ca: Path | None = None,
        agent: Any = None,
        gateway: str = "",
        node: str = "",
        hold_s: float = 20.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"routing server URL must be http:// or https://, not {url!r}")
        if deadline_s <= 0 or retries < 0:
            raise ValueError("deadline_s must be positive and retries not negative")
        base = url.rstrip("/")
        self.url = base + CLASSIFY_PATH
        self.decide_url = base + DECIDE_PATH
        self.local = local
        self.deadline_s = deadline_s
        self.retries = retries
        self.gateway, self.node, self.hold_s = gateway, node, hold_s
        self._reactor = reactor
        self._headers = headers(token)
        self._pool = new_pool(reactor)
        if agent is None:
            agent = router_agent(reactor, self._pool, tls_ca)
        self._agent = agent

    def plan(self, customer: Customer, request: PlanRequest | None = None) -> Deferred[Plan]:
        """The routing server's plan, or the local rules' within (1 + retries) deadlines.

        With ``request``, the router decides (and may assign agents); without, it
        classifies. Fails only if the local rules themselves fail, or the caller cancels.
        """
        if request is None:
            url, body = self.url, customer_to_json(customer)
        else:
            url = self.decide_url
            body = request_to_json(customer, request, gateway=self.gateway, node=self.node)
        data = json.dumps(body, separators=(",", ":")).encode("utf-8")
        job = _Job(customer, request, url, data, self._reactor.seconds())
        self._try(job, 1)
        return job.result

    def _try(self, job: _Job, attempt: int) -> None:
        d = job.current = post_json(self._agent, job.url, self._headers, job.body, MAX_REPLY)
        d.addCallback(lambda reply: self._plan_from_reply(*reply))
        d.addTimeout(self.deadline_s, self._reactor, onTimeoutCancel=timed_out)

        def answered(plan: Plan) -> None:
            _log_decision(self._log, job.customer, plan, self._reactor.seconds() - job.started)
            job.result.callback(plan)

        def failed(failure: Failure) -> None:
            if job.cancelled:
                return  # the caller gave up; job.result has failed with CancelledError
            problem, retry = describe(failure, self.deadline_s)
            if retry and attempt <= self.retries:
                self._log.info(
                    "routing server attempt {attempt} failed ({problem}); trying again",
                    attempt=attempt,
                    problem=problem,
                )
                self._try(job, attempt + 1)
                return
            try:
                plan = self._fallback(job, problem, attempt)
            except Exception:
                job.result.errback()
            else:
                job.result.callback(plan)

        d.addCallbacks(answered, failed)

    def _plan_from_reply(self, code: int, reply: Any) -> Plan:
        if code != 200:
            problem = reply.get("error") if isinstance(reply, dict) else None
            detail = f": {str(problem)[:200]}" if problem else ""
            raise RouterAnswerError(f"routing server answered {code}{detail}", retry=code >= 500)
        if reply is None:
            raise RouterAnswerError("routing server's reply is not JSON", retry=False)
        try:
            plan = plan_from_json(reply, source=REMOTE)
            assigned = assignment_from_json(reply)
        except WireError as e:
            raise RouterAnswerError(
                f"routing server's reply is not a plan: {e}", retry=False
            ) from None
        if assigned is not None:
            plan = with_assignment(plan, *assigned, hold_s=self.hold_s)
        return plan

    def _fallback(self, job: _Job, problem: str, attempts: int) -> Plan:
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        own = job.request.fallback if job.request is not None else None
        if own is not None:
            plan = attrs.evolve(own, source=FALLBACK, reason=f"{problem} ({tries}); {own.reason}")
        else:
            plan = self.local.classify(job.customer)
            plan = attrs.evolve(
                plan, source=FALLBACK, reason=f"{problem} ({tries}); local rule {plan.rule}"
            )
        _log_decision(self._log, job.customer, plan, self._reactor.seconds() - job.started)
        return plan

    def close(self) -> Deferred[None]:
        """Close the kept-alive connections (when the gateway stops)."""
        return self._pool.closeCachedConnections()


class _Job:
    """One plan() call across its attempts."""

    def __init__(
        self,
        customer: Customer,
        request: PlanRequest | None,
        url: str,
        body: bytes,
        started: float,
    ) -> None:
        self.customer, self.request, self.url = customer, request, url
        self.body, self.started = body, started
        # Cancelled by the caller: the attempt in flight is cancelled, nothing follows.
        self.result: Deferred[Plan] = Deferred(lambda _d: self.cancel())
        self.current: Deferred[Plan] | None = None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.current is not None:
            self.current.cancel()
