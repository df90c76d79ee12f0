"""The firewall's wrapper around a listener's factory: connection limits."""

from __future__ import annotations

from collections import Counter

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress, IProtocol, IProtocolFactory
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

from gateway import logs


def _address_key(addr: IAddress) -> str | None:
    # Only IP peers are told apart; UNIX-socket peers share the total limit alone.
    if isinstance(addr, IPv4Address | IPv6Address):
        return addr.host
    return None


def describe_address(addr: IAddress) -> str:
    """A peer address as log lines show it: ``host:port``, ``[v6host]:port`` or the repr."""
    if isinstance(addr, IPv4Address):
        return f"{addr.host}:{addr.port}"
    if isinstance(addr, IPv6Address):
        return f"[{addr.host}]:{addr.port}"
    return repr(addr)


class _Refused(Protocol):
    """Stands in for a refused connection and drops it as soon as it is made."""

    def connectionMade(self) -> None:
        self.transport.abortConnection()


class _Tracked(ProtocolWrapper):
    """A connection the firewall let through, remembering the address it counts against."""

    def __init__(self, factory: FirewallFactory, wrapped: IProtocol, key: str | None) -> None:
        super().__init__(factory, wrapped)
        self.address_key = key


class FirewallFactory(WrappingFactory):
    """Wraps a listener's factory, refusing connections beyond the configured limits.

    A refused connection is closed right after it is made and logged once with the
    peer's address; the wrapped factory never sees it. Counts cover the connections
    open now on this listener.
    """

    noisy = False
    _log = Logger(observer=logs.observer)

    def __init__(
        self,
        wrapped_factory: IProtocolFactory,
        *,
        listener: str,
        max_connections: int,
        max_connections_per_address: int,
    ) -> None:
        super().__init__(wrapped_factory)
        self.listener = listener
        self.max_connections = max_connections
        self.max_connections_per_address = max_connections_per_address
        self._per_address: Counter[str] = Counter()

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

    def buildProtocol(self, addr: IAddress) -> IProtocol | None:
        """A tracked wrapper around the wrapped factory's protocol, or a refusal."""
        key = _address_key(addr)
        why = self._refusal(key)
        if why is not None:
            self._log.info(
                "{listener}: refused connection from {peer}: {why}",
                listener=self.listener,
                peer=describe_address(addr),
                why=why,
            )
            # A protocol that closes at once, rather than None, which a TLS layer
            # wrapping this factory cannot take.
            return _Refused()
        wrapped = self.wrappedFactory.buildProtocol(addr)
        if wrapped is None:
            return None
        return _Tracked(self, wrapped, key)

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
) -> FirewallFactory:
    """Put a listener's factory behind the firewall's connection limits.

    ``listener`` names the listener (its endpoint string) in log lines.
    """
    return FirewallFactory(
        factory,
        listener=listener,
        max_connections=max_connections,
        max_connections_per_address=max_connections_per_address,
    )
