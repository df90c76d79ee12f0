"""The firewall's wrapper around a listener's factory.

Every connection a listener accepts meets, in order: the PROXY header (only from
trusted sources, which must send one), the listener's total and per-address connection
caps, bans, the input chain, per-address limits; then it is tracked in conntrack and
handed to the listener's own protocol, which sees the real client address as its peer.
Data it sends is counted against the message rate (lag, then disconnect): in protocol
messages, which the protocol reports (``transport.firewall_messages``), or, for a
protocol that does not (a DNAT proxy), in lines per read.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress, IDelayedCall, IProtocol, IProtocolFactory
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

from firewall import proxyproto
from firewall.addrset import canonical
from firewall.common import describe_address, log_observer
from firewall.conntrack import Entry
from firewall.engine import Firewall, Flow
from firewall.interfaces import IFirewalledProtocol, IFirewallTransport
from firewall.outbox import Outbox, outbox_for


def canonical_peer(addr: IAddress) -> IAddress:
    """A peer address in its one form: an IPv4 client that a dual-stack socket or a
    proxy shows as ``::ffff:a.b.c.d`` is an IPv4Address, for rules, caps, limits, logs
    and the protocol alike."""
    if isinstance(addr, IPv6Address):
        host = canonical(addr.host)
        if ":" not in host:
            return IPv4Address(addr.type, host, addr.port)
    return addr


def _host(addr: IAddress) -> str | None:
    if isinstance(addr, IPv4Address | IPv6Address):
        return addr.host
    return None


def count_messages(data: bytes) -> int:
    """Messages in a chunk of a protocol that does not report its own (see
    :meth:`_Tracked.firewall_messages`): its lines, at least one."""
    return data.count(b"\n") or 1


def _reports_messages(protocol: IProtocol | None) -> bool:
    # Protocols that call transport.firewall_messages() for each message they read;
    # on a TLS listener, the protocol inside the TLS layer.
    if isinstance(protocol, TLSMemoryBIOProtocol):
        protocol = protocol.wrappedProtocol
    return IFirewalledProtocol.providedBy(protocol)


def _reject_hook(protocol: IProtocol | None) -> Any:
    # The protocol's own refusal; a TLS layer, before its handshake, has none.
    return protocol.firewall_reject if IFirewalledProtocol.providedBy(protocol) else None


# (wrapper class, transport's declaration) -> the wrapper's declaration: made once, as
# zope.interface shares one among instances that declare the same (a wrapper provides
# what its transport provides: ISSLTransport over TLS, and so on).
_PROVIDES: dict[tuple[type, Any], Any] = {}
_MAX_PROVIDES = 256


def provide_like(wrapper: Any, transport: Any) -> None:
    """Make ``wrapper`` provide what ``transport`` provides (``directlyProvides``),
    reusing the declaration made for the first wrapper over such a transport."""
    spec = providedBy(transport)
    key = (type(wrapper), spec)
    declared = _PROVIDES.get(key)
    if declared is not None:
        wrapper.__provides__ = declared
        return
    directlyProvides(wrapper, spec)
    if len(_PROVIDES) < _MAX_PROVIDES:
        _PROVIDES[key] = wrapper.__provides__


class _Refused(Protocol):
    """Stands in for a dropped connection and resets it as soon as it is made."""

    def connectionMade(self) -> None:
        self.transport.abortConnection()


class _Rejected(Protocol):
    """Stands in for a rejected connection: the protocol's polite error, then a close."""

    def __init__(self, inner: IProtocol | None, reason: str) -> None:
        self._inner, self._reason = inner, reason

    def connectionMade(self) -> None:
        hook = _reject_hook(self._inner)
        if hook is not None:
            self._inner.transport = self.transport
            hook(self._reason)
        self.transport.loseConnection()


@implementer(IFirewallTransport)
class _Tracked(ProtocolWrapper):
    """A connection through the firewall, remembering what it counts against.

    Built with its wrapped protocol, or (for a trusted proxy) without one until the
    PROXY header names the real client.
    """

    def __init__(
        self,
        factory: FirewallFactory,
        wrapped: IProtocol | None,
        key: str | None,
        *,
        peer: IAddress | None = None,
        flow: Flow | None = None,
    ) -> None:
        super().__init__(factory, wrapped)  # type: ignore[arg-type]
        self.address_key = key
        self.flow = flow
        self.entry: Entry | None = None
        self._peer = peer
        self._header = b""
        self._awaiting_header = wrapped is None
        self._header_timer: IDelayedCall | None = None
        self._lag_buffer: list[bytes] | None = None
        self._registered = False
        self._reports_messages = _reports_messages(wrapped)
        self._dropped = False
        # Reading is paused while either holds: the protocol inside (a consumer whose
        # buffer is full, a DNAT relay waiting for its backend) or the message rate's lag.
        self._paused_inside = False
        self._closed_here = False
        # A plain TCP connection's writes go out once per reactor turn (firewall.outbox).
        self._outbox: Outbox | None = None

    # -- the transport the wrapped protocol sees ------------------------------------

    def getPeer(self) -> IAddress:
        """The real client's address (from a PROXY header if one was accepted)."""
        return self._peer if self._peer is not None else self.transport.getPeer()

    def write(self, data: bytes) -> None:
        """Send to the client, counting bytes in conntrack."""
        if self.entry is not None:
            self.factory.firewall.conntrack.sent(self.entry, len(data))
        if self._outbox is not None:
            self._outbox.write(data)
        else:
            self.transport.write(data)

    def writeSequence(self, data) -> None:  # noqa: N802 (Twisted's name)
        """Send several chunks to the client."""
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """Close once everything written, this turn's writes included, has gone out (the
        gateway's side ends it)."""
        self._closed_here = True
        if self._outbox is not None:
            self._outbox.flush()
        super().loseConnection()

    def startTLS(self, context: Any, normal: bool = True) -> None:  # noqa: N802
        """STARTTLS: what was written before goes out in the clear first, as Twisted's
        own transport does it; after it, writes go through the TLS layer."""
        if self._outbox is not None:
            self._outbox.flush()
            self._outbox = None
        self.transport.startTLS(context, normal)

    def abortConnection(self) -> None:
        """Close at once, dropping what was not sent (the gateway's side ends it)."""
        self._closed_here = True
        if self._outbox is not None:
            self._outbox.discard()
        self.transport.abortConnection()

    def pauseProducing(self) -> None:
        """Stop reading from the client (the protocol inside asks; see DNAT)."""
        self._paused_inside = True
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        """Read from the client again, unless the message rate still holds it back."""
        self._paused_inside = False
        if self._lag_buffer is None and not self._awaiting_header:
            self.transport.resumeProducing()

    def stopProducing(self) -> None:
        """Close: the consumer this connection fed is gone."""
        self._closed_here = True
        if self._outbox is not None:
            self._outbox.flush()
        self.transport.stopProducing()

    def firewall_role(self, role: str) -> bool:
        """The protocol has learnt who this is (customer or agent): run the chain again.

        Returns False (and closes the connection) if the rules refuse that role.
        """
        if self.flow is None:
            return True
        decision = self.factory.firewall.role_known(self.flow, role)
        if decision.verdict == "accept":
            return True
        hook = _reject_hook(self.wrappedProtocol)
        self._closed_here = True
        if decision.verdict == "reject" and hook is not None:
            hook("refused by the firewall")
            self.loseConnection()  # after the refusal the protocol just wrote
        else:
            self.abortConnection()
        return False

    def firewall_messages(self, count: int = 1) -> bool:
        """The protocol has read ``count`` whole messages (JSON-IM frames, IRC lines, XMPP
        stanzas): count them and hold them to the message rate.

        Over the rate, what the client sends next is held back (lag); the
        ``disconnect after``-th violation drops the connection, and then this returns
        False: the protocol handles no more of what it read.
        """
        if self._dropped:
            return False
        fw = self.factory.firewall
        if fw is None or self.flow is None:
            return True
        return self._limited(fw, fw.message(self.flow, count, 0), None)

    def _limited(self, fw: Firewall, outcome: str, data: bytes | None) -> bool:
        """Act on the message rate's ``outcome``; False if the connection was dropped.
        ``data``, if given, is held back with what follows while the connection lags."""
        if outcome == "disconnect":
            self._dropped = True
            fw.refused(
                "drop",
                self.factory.listener,
                self.flow.host if self.flow is not None else None,
                "limit-messages",
            )
            self.abortConnection()
            return False
        if outcome == "lag" and self._lag_buffer is None:
            self._lag_buffer = []
            self.transport.pauseProducing()
            fw._clock.callLater(fw.ruleset.limits.lag_s, self._unlag)
        if data is not None and self._lag_buffer is not None:
            self._lag_buffer.append(data)
        return True

    # -- the connection ------------------------------------------------------------

    def makeConnection(self, transport) -> None:
        """Connect the wrapped protocol now, or wait for a trusted proxy's header."""
        provide_like(self, transport)
        self._outbox = outbox_for(transport)
        Protocol.makeConnection(self, transport)
        if self._awaiting_header:
            fw = self.factory.firewall
            self._header_timer = fw._clock.callLater(fw.proxy_header_timeout_s, self._no_header)
            return
        self._start()

    def _start(self) -> None:
        self.factory.registerProtocol(self)
        self._registered = True
        fw = self.factory.firewall
        if fw is not None and self.flow is not None:
            real = self.transport.getPeer()
            local = describe_address(self.transport.getHost())
            socket_peer = describe_address(real)
            peer = socket_peer if self._peer is None else describe_address(self._peer)
            self.entry = fw.conntrack.open(
                protocol="tcp",
                direction="in",
                listener=self.factory.listener,
                original=(peer, local),
                translated=(socket_peer, local),
                closer=self.transport.abortConnection,
                address=self.flow.ip,
            )
        self.wrappedProtocol.makeConnection(self)

    def _no_header(self) -> None:
        self._header_timer = None
        self.factory.firewall.refused(
            "drop", self.factory.listener, self.transport.getPeer().host, "proxy-header-timeout"
        )
        self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        """Read the PROXY header first; then count, rate-limit and pass the data on."""
        if self._awaiting_header:
            self._read_header(data)
            return
        fw = self.factory.firewall
        if fw is None or self.flow is None:
            self.wrappedProtocol.dataReceived(data)
            return
        if self.entry is not None:
            fw.conntrack.received(self.entry, len(data))
        if self._dropped:
            return
        if self._reports_messages:
            fw.received(self.flow, len(data))
            if self._lag_buffer is not None:
                self._lag_buffer.append(data)
                return
        else:
            count = 1 if self.factory.per_read else count_messages(data)
            outcome = fw.message(self.flow, count, len(data))
            if outcome != "ok" or self._lag_buffer is not None:
                self._limited(fw, outcome, data)
                return
        self.wrappedProtocol.dataReceived(data)

    def _unlag(self) -> None:
        buffered, self._lag_buffer = self._lag_buffer or [], None
        if not self.connected:
            return
        if not self._paused_inside:
            self.transport.resumeProducing()
        if buffered:
            self.wrappedProtocol.dataReceived(b"".join(buffered))

    def _read_header(self, data: bytes) -> None:
        self._header += data
        try:
            header = proxyproto.parse(self._header)
        except proxyproto.ProxyError as e:
            self._header_failed(str(e))
            return
        if header is None:
            if len(self._header) > proxyproto.V2_MAX + 2048:
                self._header_failed("PROXY header too long")
            return
        if self._header_timer is not None and self._header_timer.active():
            self._header_timer.cancel()
        self._header_timer = None
        rest = self._header[header.length :]
        self._header = b""
        self._awaiting_header = False
        addr = self.transport.getPeer()
        if header.source is not None:
            host, port = header.source
            addr = canonical_peer((IPv6Address if ":" in host else IPv4Address)("TCP", host, port))
        self._peer = addr
        if not self._admit_late(addr):
            return
        if rest:
            self.dataReceived(rest)

    def _header_failed(self, why: str) -> None:
        self.factory._log.info(
            "{listener}: bad PROXY header from {address}: {why}",
            address=self.transport.getPeer().host,
            listener=self.factory.listener,
            why=why,
        )
        self.factory.firewall.refused(
            "drop", self.factory.listener, self.transport.getPeer().host, "proxy-header"
        )
        self.transport.abortConnection()

    def _admit_late(self, addr: IAddress) -> bool:
        factory = self.factory
        self.address_key = factory.address_key(addr)
        refusal = factory._decide(addr)
        if isinstance(refusal, str):
            hook = None
            if refusal == "reject":
                inner = factory.wrappedFactory.buildProtocol(addr)
                hook = _reject_hook(inner)
                if hook is not None:
                    inner.transport = self.transport
                    hook(factory.last_reason or "refused by the firewall")
            if refusal == "reject":
                self.transport.loseConnection()
            else:
                self.transport.abortConnection()
            return False
        self.flow = refusal
        inner = factory.wrappedFactory.buildProtocol(addr)
        if inner is None:
            factory.firewall.close_flow(self.flow)
            self.flow = None
            self.transport.loseConnection()
            return False
        self.wrappedProtocol = inner
        self._reports_messages = _reports_messages(inner)
        self._start()
        return True

    def connectionLost(self, reason: Failure) -> None:
        """Stop counting and tracking; tell the wrapped protocol."""
        if self._outbox is not None:
            self._outbox.discard()
        if self._header_timer is not None and self._header_timer.active():
            self._header_timer.cancel()
        fw = self.factory.firewall
        if fw is not None:
            if self.flow is not None:
                fw.close_flow(self.flow)
                fw.ended(self.flow, self.entry, "local" if self._closed_here else "client")
                self.flow = None
            if self.entry is not None:
                fw.conntrack.close(self.entry)
        if self._registered:
            self.factory.unregisterProtocol(self)
            self._registered = False
        if self.wrappedProtocol is not None and not self._awaiting_header:
            self.wrappedProtocol.connectionLost(reason)
        self.wrappedProtocol = None  # type: ignore[assignment]


class FirewallFactory(WrappingFactory):
    """Wraps a listener's factory, refusing connections the firewall does not let through.

    A refused connection is closed right after it is made and logged once with the
    peer's address; the wrapped factory never sees it. Counts cover the connections
    open now on this listener.
    """

    noisy = False
    _log = Logger(observer=log_observer)
    protocol = _Tracked

    def __init__(
        self,
        wrapped_factory: IProtocolFactory,
        *,
        listener: str,
        max_connections: int,
        max_connections_per_address: int,
        firewall: Firewall | None = None,
        protocol: str | None = None,
        per_read: bool = False,
    ) -> None:
        super().__init__(wrapped_factory)
        self.per_read = per_read
        self.listener = listener
        self.wire_protocol = protocol or listener
        self.max_connections = max_connections
        self.max_connections_per_address = max_connections_per_address
        self.firewall = firewall
        self._per_address: Counter[str] = Counter()
        # Why the last connection refused for a cap was refused (told to the client).
        self.last_reason: str | None = None

    def over_tls(self, context_factory: Any) -> FirewallFactory:
        """This listener's firewall in front of a TLS layer, for an ``ssl:`` endpoint.

        The firewall sees the connection before TLS does, so a trusted proxy's PROXY
        header (sent ahead of the TLS handshake, as HAProxy does) is read, and
        drops cost no handshake. Caps and counts are shared with this factory.
        """
        sibling = FirewallFactory(
            TLSMemoryBIOFactory(context_factory, False, self.wrappedFactory),
            listener=self.listener,
            max_connections=self.max_connections,
            max_connections_per_address=self.max_connections_per_address,
            firewall=self.firewall,
            protocol=self.wire_protocol,
            per_read=self.per_read,
        )
        sibling.protocols = self.protocols
        sibling._per_address = self._per_address
        sibling._log = self._log
        return sibling

    def connection_count(self, key: str | None = None) -> int:
        """Open connections on this listener, or from the address ``key`` only."""
        if key is None:
            return len(self.protocols)
        return self._per_address[key]

    def _refusal(self, key: str | None) -> str | None:
        if len(self.protocols) >= self.max_connections:
            return f"{self.max_connections} connections open on this listener"
        if key is not None and self._per_address[key] >= self.max_connections_per_address:
            return f"{self.max_connections_per_address} connections open from this address"
        return None

    @staticmethod
    def address_key(addr: IAddress) -> str | None:
        """What the per-address cap counts ``addr`` under: its address in its one form
        (see :func:`canonical_peer`); None for a UNIX peer."""
        return _host(addr)

    def _decide(self, addr: IAddress) -> str | Flow | None:
        """A refusal ("drop" or "reject"), or the flow of an accepted connection (None
        without a firewall)."""
        key = self.address_key(addr)
        why = self._refusal(key)
        self.last_reason = why
        if why is not None:
            self._log.info(
                "{listener}: refused connection from {peer}: {why}",
                listener=self.listener,
                peer=describe_address(addr),
                why=why,
            )
            if self.firewall is not None:
                self.firewall.refused(
                    "reject", self.listener, key or describe_address(addr), "max-connections"
                )
            # Rejected, not dropped: the client's protocol says why (IRC: an ERROR
            # line), so that a client or bouncer does not retry blindly.
            return "reject"
        if self.firewall is None:
            return None
        host = _host(addr)
        decision = self.firewall.admit(self.listener, self.wire_protocol, host)
        if decision.verdict != "accept":
            return decision.verdict
        return self.firewall.open_flow(self.listener, self.wire_protocol, host, decision)

    def buildProtocol(self, addr: IAddress) -> IProtocol | None:
        """A tracked wrapper around the wrapped factory's protocol, or a refusal."""
        given, addr = addr, canonical_peer(addr)
        if self.firewall is not None and self.firewall.is_trusted_proxy(_host(addr)):
            return _Tracked(self, None, None)
        decided = self._decide(addr)
        if decided == "drop":
            # A protocol that closes at once, rather than None, which a TLS layer
            # wrapping this factory cannot take.
            return _Refused()
        if decided == "reject":
            reason = self.last_reason or "refused by the firewall"
            return _Rejected(self.wrappedFactory.buildProtocol(addr), reason)
        flow = decided if isinstance(decided, Flow) else None
        wrapped = self.wrappedFactory.buildProtocol(addr)
        if wrapped is None:
            if flow is not None and self.firewall is not None:
                self.firewall.close_flow(flow)
            return None
        return _Tracked(
            self,
            wrapped,
            self.address_key(addr),
            peer=None if addr is given else addr,
            flow=flow,
        )

    # Counting happens while connections are open, from makeConnection to
    # connectionLost, so a protocol that is built but never connected is not counted.
    def registerProtocol(self, p: _Tracked) -> None:  # noqa: N802 (Twisted's name)
        """Count a connection that was made."""
        super().registerProtocol(p)
        if p.address_key is not None:
            self._per_address[p.address_key] += 1

    def unregisterProtocol(self, p: _Tracked) -> None:  # noqa: N802 (Twisted's name)
        """Stop counting a connection that was lost."""
        super().unregisterProtocol(p)
        key = p.address_key
        if key is not None:
            self._per_address[key] -= 1
            if not self._per_address[key]:
                del self._per_address[key]


def wrap(
    factory: IProtocolFactory,
    *,
    listener: str,
    max_connections: int,
    max_connections_per_address: int,
    firewall: Firewall | None = None,
    protocol: str | None = None,
    per_read: bool = False,
) -> FirewallFactory:
    """Put a listener's factory behind the firewall.

    ``listener`` names the listener in log lines and rules (``listener NAME``);
    ``protocol`` is its wire protocol (``protocol NAME``), the listener's name if not
    given. Without ``firewall`` only the connection caps apply. A protocol that does
    not report its messages is counted in lines per read, or (``per_read``, HTTP) one
    message per read.
    """
    return FirewallFactory(
        factory,
        listener=listener,
        max_connections=max_connections,
        max_connections_per_address=max_connections_per_address,
        firewall=firewall,
        protocol=protocol,
        per_read=per_read,
    )
