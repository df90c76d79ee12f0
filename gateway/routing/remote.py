"""Where the gateway's plans come from: its local rules, or the routing server.

:class:`RemotePlans` asks ``twistd imrouter`` with a deadline per attempt, retries,
and then falls back to the local rules; every decision is logged with its source
(remote, local, fallback) and reason. The router's outage thus costs only the
classification, which the local rules then serve.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import error as net_error
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, TimeoutError, fail, succeed
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import Certificate
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    RequestTransmissionFailed,
    ResponseDone,
    ResponseFailed,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer
from zope.interface import implementer

import gateway
from gateway import logs
from gateway.routing.interfaces import IRouter
from gateway.routing.plan import FALLBACK, LOCAL, REMOTE, Customer, Plan
from gateway.routing.rules import RuleSet
from gateway.routing.wire import WireError, customer_to_json, plan_from_json

CLASSIFY_PATH = "/v1/classify"
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

    def plan(self, customer: Customer) -> Deferred[Plan]:
        """The local rules' plan, already fired."""
        try:
            plan = attrs.evolve(self.ruleset.classify(customer), source=LOCAL)
        except Exception:
            return fail()
        _log_decision(self._log, customer, plan)
        return succeed(plan)


class RouterAnswerError(Exception):
    """The routing server answered, but not with a plan; ``retry`` if worth another try."""

    def __init__(self, problem: str, *, retry: bool) -> None:
        super().__init__(problem)
        self.problem, self.retry = problem, retry


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
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"routing server URL must be http:// or https://, not {url!r}")
        if deadline_s <= 0 or retries < 0:
            raise ValueError("deadline_s must be positive and retries not negative")
        self.url = url.rstrip("/") + CLASSIFY_PATH
        self.local = local
        self.deadline_s = deadline_s
        self.retries = retries
        self._reactor = reactor
        self._headers = {
            b"authorization": [b"Bearer " + token.encode("utf-8")],
            b"content-type": [b"application/json"],
            b"accept": [b"application/json"],
            b"user-agent": [f"imgateway/{gateway.__version__}".encode()],
        }
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 8
        # Retries are ours, bounded by the deadline; the pool must not add its own.
        self._pool.retryAutomatically = False
        if agent is None:
            agent = router_agent(reactor, self._pool, tls_ca)
        self._agent = agent

    def plan(self, customer: Customer) -> Deferred[Plan]:
        """The routing server's plan, or the local rules' within (1 + retries) deadlines.

        Fails only if the local rules themselves fail, or the caller cancels.
        """
        body = json.dumps(customer_to_json(customer), separators=(",", ":")).encode("utf-8")
        job = _Job(customer, body, self._reactor.seconds())
        self._try(job, 1)
        return job.result

    def _try(self, job: _Job, attempt: int) -> None:
        d = job.current = self._attempt(job.body)
        d.addTimeout(self.deadline_s, self._reactor, onTimeoutCancel=_timed_out)

        def answered(plan: Plan) -> None:
            _log_decision(self._log, job.customer, plan, self._reactor.seconds() - job.started)
            job.result.callback(plan)

        def failed(failure: Failure) -> None:
            if job.cancelled:
                return  # the caller gave up; job.result has failed with CancelledError
            problem, retry = self._describe(failure)
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

    def _attempt(self, body: bytes) -> Deferred[Plan]:
        d = self._agent.request(
            b"POST", self.url.encode("ascii"), Headers(self._headers), _BytesProducer(body)
        )
        d.addCallback(self._read)
        return d

    def _read(self, response: Any) -> Deferred[Plan]:
        d = _read_bounded(response, MAX_REPLY)
        d.addCallback(lambda data: _plan_from_reply(response.code, data))
        return d

    def _describe(self, failure: Failure) -> tuple[str, bool]:
        if failure.check(TimeoutError):
            return f"routing server timed out after {self.deadline_s:g}s", True
        if failure.check(RouterAnswerError):
            return failure.value.problem, failure.value.retry
        if failure.check(net_error.ConnectionRefusedError):
            return "routing server refused the connection", True
        if failure.check(net_error.ConnectError, net_error.DNSLookupError):
            return f"routing server unreachable: {failure.getErrorMessage()}", True
        if failure.check(ResponseFailed, RequestTransmissionFailed):
            # twisted.web wraps the causes; the first one says what happened.
            reasons = failure.value.reasons or [failure]
            cause = reasons[0]
            if cause.check(SSL.Error, VerificationError):
                # A certificate that does not verify will not verify on a retry.
                return f"routing server failed TLS verification: {_brief(cause)}", False
            if cause.check(net_error.ConnectionDone, net_error.ConnectionLost):
                return "routing server closed the connection", True
            return f"routing server request failed: {_brief(cause)}", True
        return f"routing server request failed: {_brief(failure)}", True

    def _fallback(self, job: _Job, problem: str, attempts: int) -> Plan:
        plan = self.local.classify(job.customer)
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        plan = attrs.evolve(
            plan, source=FALLBACK, reason=f"{problem} ({tries}); local rule {plan.rule}"
        )
        _log_decision(self._log, job.customer, plan, self._reactor.seconds() - job.started)
        return plan

    def close(self) -> Deferred[None]:
        """Close the kept-alive connections (when the gateway stops)."""
        return self._pool.closeCachedConnections()


# Between connection attempts to the addresses one name resolves to (Happy Eyeballs).
# Twisted's HostnameEndpoint waits this long after its last attempt, too, before it
# reports failure: 0.3 s by default, which made every refused decision cost 0.6 s.
ATTEMPT_DELAY_S = 0.05


@implementer(IAgentEndpointFactory)
class RouterEndpoints:
    """Endpoints to the routing server: a refused connection fails as soon as refused.

    An address literal is connected to directly (no resolution, no delay); a name goes
    through HostnameEndpoint with a short :data:`ATTEMPT_DELAY_S`. ``https`` URLs are
    wrapped in TLS by ``tls_policy`` (verifying the certificate for the URL's host).
    """

    def __init__(self, reactor: Any, tls_policy: Any, connect_timeout_s: float = 10.0) -> None:
        self._reactor = reactor
        self._tls = tls_policy
        self._timeout = connect_timeout_s

    def endpointForURI(self, uri: Any) -> Any:  # noqa: N802 - Twisted's name
        """The endpoint for one request's URI."""
        host = uri.host.decode("ascii")
        if isIPAddress(host):
            endpoint: Any = TCP4ClientEndpoint(self._reactor, host, uri.port, self._timeout)
        elif isIPv6Address(host):
            endpoint = TCP6ClientEndpoint(self._reactor, host, uri.port, self._timeout)
        else:
            endpoint = HostnameEndpoint(
                self._reactor, host, uri.port, self._timeout, attemptDelay=ATTEMPT_DELAY_S
            )
        if uri.scheme == b"https":
            endpoint = wrapClientTLS(self._tls.creatorForNetloc(uri.host, uri.port), endpoint)
        return endpoint


def router_agent(reactor: Any, pool: HTTPConnectionPool, tls_ca: Path | None = None) -> Agent:
    """An HTTP client of the routing server: kept-alive connections from ``pool``, a
    certificate verified against ``tls_ca`` (a PEM file) or else the system's trust."""
    trust = Certificate.loadPEM(tls_ca.read_bytes()) if tls_ca is not None else None
    endpoints = RouterEndpoints(reactor, BrowserLikePolicyForHTTPS(trust))
    return Agent.usingEndpointFactory(reactor, endpoints, pool=pool)


class _Job:
    """One plan() call across its attempts."""

    def __init__(self, customer: Customer, body: bytes, started: float) -> None:
        self.customer, self.body, self.started = customer, body, started
        # Cancelled by the caller: the attempt in flight is cancelled, nothing follows.
        self.result: Deferred[Plan] = Deferred(lambda _d: self.cancel())
        self.current: Deferred[Plan] | None = None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.current is not None:
            self.current.cancel()


def _timed_out(result: Any, timeout: float) -> Any:
    # Agent's canceller may fail the request with its own error (ResponseNeverReceived
    # wrapping CancelledError) rather than CancelledError: a timeout all the same.
    if isinstance(result, Failure):
        raise TimeoutError(timeout, "Deferred")
    return result


def _brief(failure: Failure) -> str:
    message = failure.getErrorMessage()
    text = f"{failure.type.__name__}: {message}" if message else failure.type.__name__
    return text[:200]


def _plan_from_reply(code: int, data: bytes) -> Plan:
    try:
        reply = json.loads(data)
    except (ValueError, RecursionError):
        reply = None
    if code != 200:
        problem = reply.get("error") if isinstance(reply, dict) else None
        detail = f": {str(problem)[:200]}" if problem else ""
        raise RouterAnswerError(f"routing server answered {code}{detail}", retry=code >= 500)
    if reply is None:
        raise RouterAnswerError("routing server's reply is not JSON", retry=False)
    try:
        return plan_from_json(reply, source=REMOTE)
    except WireError as e:
        raise RouterAnswerError(f"routing server's reply is not a plan: {e}", retry=False) from None


@implementer(IBodyProducer)
class _BytesProducer:
    """A request body already in memory."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: Any) -> Deferred[None]:  # noqa: N802
        consumer.write(self._body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class _BoundedBody(Protocol):
    """Collects a response body of at most ``limit`` bytes into ``finished``."""

    def __init__(self, limit: int, finished: Deferred[bytes]) -> None:
        self._limit, self._finished = limit, finished
        self._chunks: list[bytes] = []
        self._size = 0

    def dataReceived(self, data: bytes) -> None:
        if self._finished.called:
            return
        self._size += len(data)
        if self._size > self._limit:
            self._finished.errback(
                RouterAnswerError(
                    f"routing server's reply is larger than {self._limit} bytes", retry=False
                )
            )
            _abort(self.transport)
            return
        self._chunks.append(data)

    def connectionLost(self, reason: Failure = None) -> None:
        if self._finished.called:
            return
        if reason is not None and reason.check(ResponseDone):
            self._finished.callback(b"".join(self._chunks))
        else:
            self._finished.errback(reason)


def _abort(transport: Any) -> None:
    abort = getattr(transport, "abortConnection", None)
    if abort is not None:
        abort()


def _read_bounded(response: Any, limit: int) -> Deferred[bytes]:
    protocol: _BoundedBody
    finished: Deferred[bytes] = Deferred(lambda _d: _abort(protocol.transport))
    protocol = _BoundedBody(limit, finished)
    response.deliverBody(protocol)
    return finished
