"""The gateway's HTTP client of the routing server, shared by its plans and its feed.

:func:`router_agent` makes a twisted.web ``Agent`` whose connections go through the
reactor given (the firewall's outbound reactor, in the gateway), kept alive in a pool,
with TLS verified for the URL's host. A refused connection fails as soon as it is
refused (:class:`RouterEndpoints`). :func:`post_json` sends one JSON body and reads a
bounded JSON reply; :func:`describe` turns what went wrong into one short line and
whether another attempt may help.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import error as net_error
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, TimeoutError, succeed
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import Certificate
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
from firewall.common import no_delay

# Between connection attempts to the addresses one name resolves to (Happy Eyeballs).
# Twisted's HostnameEndpoint waits this long after its last attempt, too, before it
# reports failure: 0.3 s by default, which made every refused decision cost 0.6 s.
ATTEMPT_DELAY_S = 0.05


class RouterAnswerError(Exception):
    """The routing server answered, but not as asked; ``retry`` if worth another try."""

    def __init__(self, problem: str, *, retry: bool) -> None:
        super().__init__(problem)
        self.problem, self.retry = problem, retry


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
        endpoint = _NoDelay(endpoint)
        if uri.scheme == b"https":
            endpoint = wrapClientTLS(self._tls.creatorForNetloc(uri.host, uri.port), endpoint)
        return endpoint


@implementer(IStreamClientEndpoint)
class _NoDelay:
    """``inner`` with Nagle off on each connection, set before the first request is written
    (the client writes a request's head and body apart: with Nagle, the body waited for
    the head's ACK)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def connect(self, factory: Any) -> Deferred:
        return self._inner.connect(factory).addCallback(_without_nagle)


def _without_nagle(protocol: Any) -> Any:
    no_delay(protocol.transport)
    return protocol


def router_agent(reactor: Any, pool: HTTPConnectionPool, tls_ca: Path | None = None) -> Agent:
    """An HTTP client of the routing server: kept-alive connections from ``pool``, a
    certificate verified against ``tls_ca`` (a PEM file) or else the system's trust."""
    trust = Certificate.loadPEM(tls_ca.read_bytes()) if tls_ca is not None else None
    endpoints = RouterEndpoints(reactor, BrowserLikePolicyForHTTPS(trust))
    return Agent.usingEndpointFactory(reactor, endpoints, pool=pool)


def new_pool(reactor: Any, size: int = 8) -> HTTPConnectionPool:
    """A pool of kept-alive connections; retries are the caller's, within its deadline."""
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = size
    pool.retryAutomatically = False
    return pool


def headers(token: str) -> dict[bytes, list[bytes]]:
    """The headers of every request: the bearer token, JSON both ways."""
    return {
        b"authorization": [b"Bearer " + token.encode("utf-8")],
        b"content-type": [b"application/json"],
        b"accept": [b"application/json"],
        b"user-agent": [f"imgateway/{gateway.__version__}".encode()],
    }


def post_json(
    agent: Any, url: str, header: dict[bytes, list[bytes]], body: bytes, max_reply: int
) -> Deferred[tuple[int, Any]]:
    """POST ``body``; fires with (status, the reply decoded from JSON, or None)."""
    d = agent.request(b"POST", url.encode("ascii"), Headers(header), BytesProducer(body))

    def read(response: Any) -> Deferred[tuple[int, Any]]:
        finished = read_bounded(response, max_reply)
        return finished.addCallback(lambda data: (response.code, _json(data)))

    return d.addCallback(read)


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def describe(failure: Failure, deadline_s: float) -> tuple[str, bool]:
    """What went wrong talking to the routing server, and whether a retry may help."""
    if failure.check(TimeoutError):
        return f"routing server timed out after {deadline_s:g}s", True
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
            return f"routing server failed TLS verification: {brief(cause)}", False
        if cause.check(net_error.ConnectionDone, net_error.ConnectionLost):
            return "routing server closed the connection", True
        return f"routing server request failed: {brief(cause)}", True
    return f"routing server request failed: {brief(failure)}", True


def timed_out(result: Any, timeout: float) -> Any:
    """``addTimeout``'s onTimeoutCancel: whatever the cancelled request failed with, a
    timeout (Agent may fail it with ResponseNeverReceived wrapping CancelledError)."""
    if isinstance(result, Failure):
        raise TimeoutError(timeout, "Deferred")
    return result


def brief(failure: Failure) -> str:
    """A failure in one short line."""
    message = failure.getErrorMessage()
    text = f"{failure.type.__name__}: {message}" if message else failure.type.__name__
    return text[:200]


@implementer(IBodyProducer)
class BytesProducer:
    """A request body already in memory."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: Any) -> Deferred[None]:  # noqa: N802
        """Write the body at once."""
        consumer.write(self._body)
        return succeed(None)

    def pauseProducing(self) -> None:
        """Nothing to pause."""

    def resumeProducing(self) -> None:
        """Nothing to resume."""

    def stopProducing(self) -> None:
        """Nothing to stop."""


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


def read_bounded(response: Any, limit: int) -> Deferred[bytes]:
    """A response's body, failing with RouterAnswerError past ``limit`` bytes;
    cancelling it aborts the connection."""
    protocol: _BoundedBody
    finished: Deferred[bytes] = Deferred(lambda _d: _abort(protocol.transport))
    protocol = _BoundedBody(limit, finished)
    response.deliverBody(protocol)
    return finished
