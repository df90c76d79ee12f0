"""Failed agent logins: throttled per address, per account and per place, in bounded memory.

:class:`LoginGuard` is what the core asks. Guessing stays slow however it is spread,
and the real agent keeps logging in from where it usually does:

- every address (IPv4, or an IPv6 client's /64) has its own lockouts, counting failures
  for any account; a successful login forgives only that account's failures there;
- an account has lockouts of its own (after four times as many failures) against
  guessing spread over many addresses, but only for addresses it has not logged in from
  successfully: a *known place* (the last few, for 30 days) meets only the lockouts of
  that account at that place, so a distributed guesser slows itself, not the agent.
"""

from __future__ import annotations

from collections import OrderedDict

import attrs
from twisted.internet.interfaces import IReactorTime

from firewall.addrset import AddressError, group_key, key_text, parse_ip

# Keys remembered at most; the oldest are forgotten first.
MAX_KEYS = 100_000
# An address's failures are kept per account for this many accounts; more share one tally.
MAX_ACCOUNTS_PER_ADDRESS = 32
IPV6_PREFIX = 64
KNOWN_PLACES = 8
KNOWN_FOR_S = 30 * 86400.0
_OTHERS = ""


@attrs.define
class _Record:
    failures: int = 0
    last: float = 0.0
    locked_until: float = 0.0
    by_account: dict[str, int] = attrs.field(factory=dict)


class LoginThrottle:
    """After ``free`` failures from one key, each further failure locks that key out
    for twice as long as the last (1 s, 2 s, 4 s … up to ``max_lockout_s``); failures
    older than ``window_s`` are forgotten."""

    def __init__(
        self,
        clock: IReactorTime,
        *,
        free: int = 5,
        max_lockout_s: float = 300.0,
        window_s: float = 900.0,
    ) -> None:
        self._clock = clock
        self.free = free
        self.max_lockout_s = max_lockout_s
        self.window_s = window_s
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def blocked_for(self, key: str) -> float:
        """Seconds ``key`` must still wait before another attempt (0: go ahead)."""
        record = self._records.get(key)
        if record is None:
            return 0.0
        return max(0.0, record.locked_until - self._clock.seconds())

    def failed(self, key: str, account: str | None = None) -> None:
        """Count a failure of ``key`` (for ``account``); past ``free`` ones, lock it out."""
        now = self._clock.seconds()
        record = self._records.pop(key, None) or _Record()
        if now - record.last > self.window_s:
            record = _Record()
        record.failures += 1
        record.last = now
        if account is not None:
            if account not in record.by_account and len(record.by_account) >= (
                MAX_ACCOUNTS_PER_ADDRESS
            ):
                account = _OTHERS
            record.by_account[account] = record.by_account.get(account, 0) + 1
        over = record.failures - self.free
        if over > 0:
            record.locked_until = now + min(self.max_lockout_s, 2.0 ** (over - 1))
        self._records[key] = record
        while len(self._records) > MAX_KEYS:
            self._records.popitem(last=False)

    def succeeded(self, key: str, account: str | None = None) -> None:
        """A successful login: without ``account``, the key's failures are cleared;
        with it, only that account's failures at the key are forgiven."""
        if account is None:
            self._records.pop(key, None)
            return
        record = self._records.get(key)
        if record is None or account == _OTHERS:
            return
        record.failures -= record.by_account.pop(account, 0)
        if record.failures <= self.free:
            record.locked_until = 0.0
        if record.failures <= 0:
            del self._records[key]


def address_key(address: str | None) -> str | None:
    """The key an address is throttled under: an IPv4 address (also when written
    IPv4-mapped), an IPv6 address's /64; None for no address."""
    if not address:
        return None
    try:
        ip = parse_ip(address)
    except AddressError:
        return address
    return key_text(group_key(ip, IPV6_PREFIX), IPV6_PREFIX)


class LoginGuard:
    """Lockouts for agent logins by address, account and known place (see the module)."""

    def __init__(
        self,
        clock: IReactorTime,
        *,
        free: int = 5,
        max_lockout_s: float = 300.0,
        window_s: float = 900.0,
        known_for_s: float = KNOWN_FOR_S,
    ) -> None:
        self._clock = clock
        self.addresses = LoginThrottle(
            clock, free=free, max_lockout_s=max_lockout_s, window_s=window_s
        )
        self.accounts = LoginThrottle(
            clock, free=4 * free, max_lockout_s=max_lockout_s, window_s=window_s
        )
        self.places = LoginThrottle(
            clock, free=free, max_lockout_s=max_lockout_s, window_s=window_s
        )
        self.known_for_s = known_for_s
        # account -> {address key: last successful login}, most recent last
        self._known: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()

    def known(self, account: str, address: str | None) -> bool:
        """Whether ``account`` logged in successfully from ``address`` lately."""
        key = address_key(address)
        places = self._known.get(account)
        if key is None or places is None or key not in places:
            return False
        return self._clock.seconds() - places[key] < self.known_for_s

    def blocked_for(self, account: str, address: str | None) -> float:
        """Seconds before ``account`` may try again from ``address`` (0: go ahead)."""
        key = address_key(address)
        wait = self.places.blocked_for(_place(account, key))
        if self.known(account, address):
            return wait
        if key is not None:
            wait = max(wait, self.addresses.blocked_for(key))
        return max(wait, self.accounts.blocked_for(account))

    def failed(self, account: str, address: str | None) -> None:
        """Count a failed login of ``account`` from ``address``."""
        key = address_key(address)
        self.places.failed(_place(account, key))
        if key is not None:
            self.addresses.failed(key, account)
        if not self.known(account, address):
            self.accounts.failed(account)

    def succeeded(self, account: str, address: str | None) -> None:
        """A successful login: forgive this account's failures at this address and
        remember the place; other accounts' failures and the account's failures
        elsewhere stay (a login does not reopen guessing)."""
        key = address_key(address)
        self.places.succeeded(_place(account, key))
        if key is None:
            return
        self.addresses.succeeded(key, account)
        places = self._known.pop(account, None) or OrderedDict()
        places.pop(key, None)
        places[key] = self._clock.seconds()
        while len(places) > KNOWN_PLACES:
            places.popitem(last=False)
        self._known[account] = places
        while len(self._known) > MAX_KEYS:
            self._known.popitem(last=False)


def _place(account: str, key: str | None) -> str:
    return f"{account}\0{key or '-'}"
