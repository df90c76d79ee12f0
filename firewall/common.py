"""Neutral helpers the firewall shares with the gateway and the protocol adapters.

The firewall is the bottom layer: whatever it and the layers above both need lives
here, so that nothing in ``firewall/`` imports from ``gateway/`` and no adapter
reaches into the firewall's internals. Four things: the log observer every logger of
the product publishes through (a level filter, then the escaping of every value a peer
may have chosen), a token bucket, address text, and the TCP option every connection
of the product sets.
"""

from __future__ import annotations

from string import Formatter
from typing import Any

import attrs
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)

LOG_LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
}

_predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "=": "\\x3d"}


def log_escape(value: str, token: bool = False) -> str:
    """``value`` as one log line may carry it, whoever chose it.

    Backslashes, ``=`` and every character that is not printable (line breaks of any
    kind, terminal escapes, direction overrides, non-breaking spaces) are written as
    Python escapes, so no value can start a line or forge a ``key=value`` pair that a
    fail2ban filter would read. With ``token`` (a value after ``key=``), spaces are
    escaped too (``\\x20``), so the value stays one word.
    """
    if (
        value.isprintable()
        and "\\" not in value
        and "=" not in value
        and not (token and " " in value)
    ):
        return value
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char == " ":
            out.append("\\x20" if token else " ")
        elif char.isprintable():
            out.append(char)
        else:
            code = ord(char)
            out.append(
                f"\\x{code:02x}"
                if code < 0x100
                else f"\\u{code:04x}"
                if code < 0x10000
                else f"\\U{code:08x}"
            )
    return "".join(out)


# Format string -> the names of its fields that follow ``=`` (key=value tokens).
_TOKEN_FIELDS: dict[str, frozenset[str]] = {}
_MAX_FORMATS = 4096


def _token_fields(format: str) -> frozenset[str]:
    found = _TOKEN_FIELDS.get(format)
    if found is None:
        try:
            parsed = list(Formatter().parse(format))
        except ValueError:
            parsed = []
        found = frozenset(
            name.split(".")[0].split("[")[0]
            for literal, name, _, _ in parsed
            if name and literal.endswith("=")
        )
        if len(_TOKEN_FIELDS) >= _MAX_FORMATS:
            _TOKEN_FIELDS.clear()
        _TOKEN_FIELDS[format] = found
    return found


def _escaping(observer: Any) -> Any:
    """An observer that escapes every text value of an event (see :func:`log_escape`)
    before handing it to ``observer``: the text and the JSON log lines are made from the
    escaped values. The format string is the product's own and stays as it is."""

    def escaped(event: dict) -> None:
        if event.get("log_safe"):
            observer(event)  # every value is the product's own (the firewall's lines)
            return
        changed = None
        tokens = None
        for key, value in event.items():
            if type(value) is not str or key.startswith("log_"):
                continue
            # Most values are plain words: checked here without a call.
            plain = value.isprintable() and "\\" not in value and "=" not in value
            if plain and " " not in value:
                continue
            if tokens is None:
                fmt = event.get("log_format")
                tokens = _token_fields(fmt) if isinstance(fmt, str) else frozenset()
            token = key in tokens
            if plain and not token:
                continue
            if changed is None:
                changed = {}
            changed[key] = log_escape(value, token)
        if changed:
            event = {**event, **changed}
        observer(event)

    return escaped


# Every logger of the product publishes here, so events below the configured level
# are dropped before anything formats them (per-message debug lines cost nothing), and
# what a peer chose reaches no log line unescaped.
log_observer = FilteringLogObserver(_escaping(globalLogPublisher), [_predicate])


def set_log_level(name: str) -> None:
    """Set the lowest level the product's loggers emit (debug, info, warn, error)."""
    _predicate.setLogLevelForNamespace("", LOG_LEVELS[name])


def no_delay(transport: Any) -> None:
    """Turn Nagle's algorithm off (``TCP_NODELAY``) where the transport is TCP.

    A chat line is one small write; with Nagle on, a write that follows another
    before its ACK waits for that ACK, which the peer may delay by up to 40 ms
    (delayed ACK): at a few hundred lines a second per connection that was the
    median latency of a relayed message. So every connection the product opens or
    accepts sets it: listeners, Redis, the routing server, DNAT relays. Transports
    without the option (in-memory test transports, UNIX sockets) are left as they are.
    """
    set_no_delay = getattr(transport, "setTcpNoDelay", None)
    if set_no_delay is None:
        return
    try:
        set_no_delay(True)
    except (OSError, AttributeError, NotImplementedError):
        pass


def describe_address(addr: IAddress) -> str:
    """A peer address as log lines show it: ``host:port``, ``[v6host]:port`` or the repr."""
    if isinstance(addr, IPv4Address):
        return f"{addr.host}:{addr.port}"
    if isinstance(addr, IPv6Address):
        return f"[{addr.host}]:{addr.port}"
    return repr(addr)


# Refills are computed in floating point; this absorbs rounding at whole tokens.
_EPSILON = 1e-9


# Validated once when made; no setattr hooks, as consume() runs for every message.
@attrs.define(on_setattr=attrs.setters.NO_OP)
class TokenBucket:
    """Allows ``rate`` units a second on average and bursts of up to ``burst``.

    The bucket starts full. Time comes from ``clock.seconds()``; a clock that
    steps backwards refills nothing rather than draining the bucket.
    """

    rate: float = attrs.field(validator=attrs.validators.gt(0))
    burst: int = attrs.field(validator=attrs.validators.ge(1))
    clock: IReactorTime
    _tokens: float = attrs.field(init=False)
    _stamp: float = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._tokens = float(self.burst)
        self._stamp = self.clock.seconds()

    def consume(self, n: int = 1) -> bool:
        """Take ``n`` units if the bucket holds them; False (taking none) if not."""
        now = self.clock.seconds()
        elapsed = now - self._stamp
        self._stamp = now
        if elapsed > 0:
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        if self._tokens + _EPSILON < n:
            return False
        self._tokens = max(0.0, self._tokens - n)
        return True

    def peek(self, n: int = 1) -> bool:
        """Whether ``n`` units could be taken now, taking none."""
        elapsed = self.clock.seconds() - self._stamp
        tokens = self._tokens + elapsed * self.rate if elapsed > 0 else self._tokens
        return min(float(self.burst), tokens) + _EPSILON >= n

    def idle_since(self, now: float) -> bool:
        """Whether the bucket would be full at ``now`` (so it can be forgotten)."""
        return self._tokens + (now - self._stamp) * self.rate >= self.burst - _EPSILON
