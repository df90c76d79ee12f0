"""The firewall's state: the running rule set, counters, limits, bans and conntrack.

One :class:`Firewall` per gateway. Listener wrappers (``firewall.wrapper``), outbound
connections (``firewall.outbound``) and the DNAT proxy (``firewall.dnat``) ask it for
decisions; the admin API (``gateway.admin.firewall_api``) changes it. A new rule set is parsed and
validated whole, then swapped in with one assignment: connections already accepted keep
going, new ones meet the new rules.
"""

from __future__ import annotations

import difflib
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from firewall import ruleset as rules_module
from firewall.addrset import IP, AddressError, group_key, key_text, parse_ip, parse_network
from firewall.classify import CompiledChain, Verdict
from firewall.common import TokenBucket, log_observer
from firewall.conntrack import Conntrack
from firewall.ruleset import Rule, RulesError, Ruleset
from firewall.translate import Translator

SWEEP_INTERVAL_S = 1.0

_REFUSAL = "firewall {verdict} address={address} listener={listener} rule={rule}"
_inet_pton, _AF_INET, _now = socket.inet_pton, socket.AF_INET, time.time


class FastLogger(Logger):
    """A Logger for the per-connection paths: ``emit`` without Twisted's check that the
    level is a LogLevel (a scan of the constants on every event, the larger part of a
    log call's cost). Callers here pass LogLevel constants only (``info``, ``error``)."""

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: Any) -> None:
        """Send one event to the observer, as ``Logger.emit`` does."""
        kwargs.update(
            log_logger=self,
            log_level=level,
            log_namespace=self.namespace,
            log_source=self.source,
            log_format=format,
            log_time=time.time(),  # the event's timestamp, as Logger.emit sets it
        )
        self.observer(kwargs)


@attrs.define
class Counter:
    """What one rule has matched: connections, and the messages and bytes they carried."""

    connections: int = 0
    messages: int = 0
    bytes: int = 0

    def describe(self) -> str:
        """As ``fw list`` prints it."""
        return f"connections {self.connections} messages {self.messages} bytes {self.bytes}"


class Decision(NamedTuple):
    """Whether a new connection may go on: verdict accept, drop or reject."""

    verdict: str
    handle: int | None
    reason: str
    pending_role: bool = False


_ACCEPT_BY_POLICY = Decision("accept", None, "")


@attrs.define(eq=False)
class Flow:
    """One accepted connection as limits see it."""

    key: int | None
    listener: str
    protocol: str
    host: str | None
    ip: IP | None
    handle: int | None
    messages: TokenBucket | None = None
    violations: int = 0
    role: str | None = None
    pending_role: bool = False


class Firewall:
    """The filter, NAT, limits, bans and conntrack of one gateway."""

    _log = FastLogger(observer=log_observer)

    def __init__(self, clock: IReactorTime, ruleset: Ruleset | None = None) -> None:
        self._clock = clock
        self.counters: dict[int, Counter] = {}
        # Keys are group_key()s: an IPv4 address, or an IPv6 address's /64 (by default).
        self.bans: dict[int, float | None] = {}
        self._concurrent: dict[int, int] = {}
        self._connect_buckets: dict[int, TokenBucket] = {}
        self._rule_buckets: dict[tuple[int, int], TokenBucket] = {}
        self._violations: dict[int, tuple[int, float]] = {}
        self.conntrack = Conntrack(clock, rules_module.DEFAULT_TIMEOUTS)
        self.rules_file: Path | None = None
        # Seconds a trusted proxy has to send its PROXY header.
        self.proxy_header_timeout_s = 10.0
        self._sweeper: LoopingCall | None = None
        self._install(ruleset or Ruleset())

    # -- rule sets -------------------------------------------------------------

    @property
    def ruleset(self) -> Ruleset:
        """The running rule set."""
        return self._ruleset

    def _install(self, rs: Ruleset, fresh: int | None = None) -> None:
        # A rule keeps its counter: by handle (fw add, fw delete), else by text (fw apply;
        # rules of the same text in order). ``fresh``, a new rule's handle, starts at zero.
        old = getattr(self, "_ruleset", None)
        counters: dict[int, Counter] = {}
        by_text: dict[tuple[str, str], list[Counter]] = {}
        was: dict[int, tuple[str, str]] = {}
        if old is not None:
            for chain, handle, rule in old.rules():
                by_text.setdefault((chain, rule.text), []).append(self.counters[handle])
                was[handle] = (chain, rule.text)
        for chain, handle, rule in rs.rules():
            if handle == fresh:
                counters[handle] = Counter()
            elif was.get(handle) == (chain, rule.text):
                counters[handle] = self.counters[handle]
            else:
                same = by_text.get((chain, rule.text))
                counters[handle] = same.pop(0) if same else Counter()
        # The compiled outcomes hold the same Counter objects as ``counters``.
        compiled = {
            "input": CompiledChain(rs.chains["input"], rs.sets, counters=counters),
            "output": CompiledChain(rs.chains["output"], rs.sets, output=True, counters=counters),
        }
        translator = Translator(rs.translations)
        # One assignment each, no await in between: a swap no connection sees half done.
        self._ruleset, self._chains, self.counters = rs, compiled, counters
        self._input = compiled["input"]
        self.translator = translator
        self.conntrack.timeouts = dict(rs.timeouts)
        self._rule_buckets.clear()

    def parse(self, text: str, source: str = "rules") -> Ruleset:
        """Parse a rules text, numbering handles after the running ones; changes nothing."""
        return rules_module.parse(text, source, first_handle=self._ruleset.next_handle)

    def apply(self, text: str, source: str = "rules") -> Ruleset:
        """Parse, validate and install a whole rules text, or raise RulesError and keep the old."""
        return self.install(self.parse(text, source))

    def install(self, rs: Ruleset) -> Ruleset:
        """Swap in a rule set made by :meth:`parse` (which may run in a thread)."""
        self._install(rs)
        self._log.info(
            "firewall rules applied from {source}: {count} rules",
            source=rs.source,
            count=sum(1 for _ in rs.rules()),
        )
        return rs

    def check(self, text: str, source: str = "rules") -> str:
        """Validate a rules text and return its unified diff against the running rules.

        Reads the running rule set once and changes nothing, so it may run in a thread.
        """
        running = self._ruleset
        rs = rules_module.parse(text, source, first_handle=running.next_handle)
        return "".join(
            difflib.unified_diff(
                running.render().splitlines(keepends=True),
                rs.render().splitlines(keepends=True),
                "running",
                source,
            )
        )

    def load_file(self, path: Path | None) -> None:
        """Apply the rules file (None: an empty rule set); remembered for :meth:`reload`."""
        self.rules_file = path
        if path is None:
            self._install(Ruleset())
            return
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise RulesError(f"{path}: cannot read: {e}") from None
        self.apply(text, str(path))

    def reload(self) -> bool:
        """Read the rules file again; a bad file is logged and the running rules stay."""
        try:
            self.load_file(self.rules_file)
        except RulesError as e:
            self._log.error("firewall rules not reloaded: {error}", error=str(e))
            return False
        return True

    def reload_in_thread(self, reactor: Any) -> Deferred:
        """:meth:`reload`, parsing in ``reactor``'s thread pool and swapping on its thread
        (SIGHUP: a large file does not stall the reactor). Fires with True or False."""
        path = self.rules_file
        if path is None:
            return succeed(self.reload())

        def read_and_parse() -> Ruleset:
            try:
                text = path.read_text("utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise RulesError(f"{path}: cannot read: {e}") from None
            return self.parse(text, str(path))

        def failed(failure: Failure) -> bool:
            failure.trap(RulesError)
            self._log.error("firewall rules not reloaded: {error}", error=str(failure.value))
            return False

        d = deferToThreadPool(reactor, reactor.getThreadPool(), read_and_parse)
        return d.addCallback(lambda rs: bool(self.install(rs))).addErrback(failed)

    def add_rule(self, chain: str, text: str) -> int:
        """Append one rule to a chain; returns its handle."""
        if chain not in rules_module.CHAINS:
            raise RulesError(f"rule: no chain {chain!r}")
        tokens = rules_module.tokenize(text, "rule")
        if not tokens:
            raise RulesError("rule: empty")
        parser = rules_module._Parser(tokens, "rule")
        rule = rules_module.parse_rule(tokens, parser, chain)
        name = rule.saddr_set or rule.daddr_set
        if name is not None and name not in self._ruleset.sets:
            raise RulesError(f"rule:1: no set named {name!r}")
        handle = self._ruleset.next_handle
        rs = self._copy()
        rs.chains[chain].rules.append((handle, rule))
        rs.next_handle = handle + 1
        self._install(rs, fresh=handle)
        return handle

    def delete_rule(self, handle: int) -> bool:
        """Remove the rule with this handle; False if there is none."""
        rs = self._copy()
        for chain in rs.chains.values():
            for i, (h, _) in enumerate(chain.rules):
                if h == handle:
                    del chain.rules[i]
                    self._install(rs)
                    return True
        return False

    def _copy(self) -> Ruleset:
        old = self._ruleset
        chains = {
            name: rules_module.Chain(name, c.policy, list(c.rules))
            for name, c in old.chains.items()
        }
        return attrs.evolve(old, chains=chains)

    def reset_counters(self) -> None:
        """Zero every rule's counters."""
        for counter in self.counters.values():
            counter.connections = counter.messages = counter.bytes = 0

    def listing(self) -> list[dict[str, Any]]:
        """The rules in order with handles and counters, as the admin API shows them."""
        out = []
        for chain, handle, rule in self._ruleset.rules():
            c = self.counters.get(handle) or Counter()
            out.append(
                {
                    "chain": chain,
                    "handle": handle,
                    "rule": rule.text,
                    "connections": c.connections,
                    "messages": c.messages,
                    "bytes": c.bytes,
                }
            )
        return out

    # -- decisions ---------------------------------------------------------------

    def _under_limit(self, handle: int, rule: Rule, key: int | None) -> bool:
        assert rule.limit is not None
        bucket_key = (handle, -1 if key is None else key)
        bucket = self._rule_buckets.get(bucket_key)
        if bucket is None:
            bucket = TokenBucket(rule.limit.per_second, rule.limit.burst, self._clock)
            self._rule_buckets[bucket_key] = bucket
        return bucket.consume()

    def _parse(self, host: str | None) -> tuple[IP | None, int | None]:
        if host is None:
            return None, None
        try:
            ip = parse_ip(host)
        except AddressError:
            return None, None
        return ip, group_key(ip, self._ruleset.limits.ipv6_prefix)

    def address_key(self, host: str) -> int | None:
        """The key limits, caps and bans count ``host`` under (None: not an address)."""
        return self._parse(host)[1]

    def is_trusted_proxy(self, host: str | None) -> bool:
        """Whether PROXY headers are accepted from this address."""
        ip = self._parse(host)[0]
        return ip is not None and self._ruleset.trusted.has(ip)

    def admit(self, listener: str, protocol: str, host: str | None) -> Decision:
        """Bans, the input chain and connection limits for a new connection from ``host``
        (an IP address as text; None for a peer without one, such as a UNIX socket)."""
        ip: IP | None
        key: int | None
        if host is not None and ":" not in host:
            # Runs for every new connection: IPv4 text is read here, without calls.
            try:
                key = int.from_bytes(_inet_pton(_AF_INET, host), "big")
                ip = (32, key)
            except (OSError, ValueError):
                ip = key = None
        else:
            ip, key = self._parse(host)
        if key is not None and key in self.bans and self.banned(key):
            return self._refuse("drop", None, "banned", listener, host)
        verdict = self._input.quick(ip)
        if verdict is None:
            verdict = self._input.walk(
                ip, self._under_limit, key=key, listener=listener, protocol=protocol
            )
            if verdict.pending:
                verdict = self._whatever_the_role(verdict, ip, key, listener, protocol)
        if verdict.logs or verdict.log:
            self._log_rules(verdict, listener, host)
        handle = verdict.handle
        if verdict.verdict == "drop" or verdict.verdict == "reject":
            return self._refuse(verdict.verdict, handle, "rule", listener, host, verdict.counter)
        if key is not None:
            limits = self._ruleset.limits
            if limits.concurrent is not None and self._concurrent.get(key, 0) >= limits.concurrent:
                self.violation(key, host, listener, "concurrent connections")
                return self._refuse("drop", None, "limit concurrent", listener, host)
            if limits.connections is not None:
                bucket = self._connect_buckets.get(key)
                if bucket is None:
                    rate = limits.connections
                    bucket = TokenBucket(rate.per_second, rate.burst, self._clock)
                    self._connect_buckets[key] = bucket
                if not bucket.consume():
                    self.violation(key, host, listener, "connection rate")
                    return self._refuse("drop", None, "limit connections", listener, host)
        if verdict.pending:
            return Decision("accept", handle, "", True)
        if handle is None:
            return _ACCEPT_BY_POLICY
        counter = verdict.counter
        (counter if counter is not None else self.counters[handle]).connections += 1
        return Decision("accept", handle, "")

    def _whatever_the_role(
        self, pending: Verdict, ip: IP | None, key: int | None, listener: str, protocol: str
    ) -> Verdict:
        """A walk stopped at a role rule: decide now if the outcome is the same for every
        role (a refusal for every role refuses now: drop if any role's would drop)."""
        outcomes = [
            self._input.evaluate(
                ip, self._under_limit, key=key, listener=listener, protocol=protocol, role=role
            )
            for role in rules_module.ROLES
        ]
        verdicts = {v.verdict for v in outcomes}
        if "accept" in verdicts:
            return pending if len(verdicts) > 1 else outcomes[0]._replace(handle=None)
        return next((v for v in outcomes if v.verdict == "drop"), outcomes[0])

    def _log_rules(self, verdict: Verdict, listener: str, address: str | None) -> None:
        for handle in verdict.logs:
            self.counters[handle].connections += 1
            self._log.info(
                "firewall log address={address} listener={listener} rule={rule}",
                address=address,
                listener=listener,
                rule=handle,
            )
        if verdict.log and verdict.verdict == "accept":
            self._log.info(
                "firewall accept address={address} listener={listener} rule={rule}",
                address=address,
                listener=listener,
                rule=verdict.handle,
            )

    def _refuse(
        self,
        verdict: str,
        handle: int | None,
        why: str,
        listener: str,
        address: Any,
        counter: Counter | None = None,
    ) -> Decision:
        if handle is not None:
            (counter if counter is not None else self.counters[handle]).connections += 1
        rule = handle if handle is not None else why.replace(" ", "-")
        # The one line per refusal, as Logger.info would make it, in one step: this runs
        # for every connection a flood or a block list refuses.
        log = self._log
        log.observer(
            {
                "log_logger": log,
                "log_level": LogLevel.info,
                "log_namespace": log.namespace,
                "log_source": log.source,
                "log_format": _REFUSAL,
                "log_time": _now(),
                "verdict": verdict,
                "address": address if address is not None else "-",
                "listener": listener,
                "rule": rule,
            }
        )
        return Decision(verdict, handle, why)

    def open_flow(self, listener: str, protocol: str, host: str | None, decision: Decision) -> Flow:
        """Start counting a connection ``admit`` accepted against its address."""
        ip, key = self._parse(host)
        if key is not None:
            self._concurrent[key] = self._concurrent.get(key, 0) + 1
        rate = self._ruleset.limits.messages
        bucket = TokenBucket(rate.per_second, rate.burst, self._clock) if rate else None
        flow = Flow(key, listener, protocol, host, ip, decision.handle, bucket)
        flow.pending_role = decision.pending_role
        return flow

    def close_flow(self, flow: Flow) -> None:
        """Stop counting a connection that ended."""
        if flow.key is not None:
            left = self._concurrent.get(flow.key, 0) - 1
            if left > 0:
                self._concurrent[flow.key] = left
            else:
                self._concurrent.pop(flow.key, None)

    def role_known(self, flow: Flow, role: str) -> Decision:
        """Run the input chain again now that the connection's role is known.

        Only a connection whose walk stopped at a rule naming a role is judged again;
        for the others the outcome could not change.
        """
        flow.role = role
        if not flow.pending_role:
            return Decision("accept", flow.handle, "")
        flow.pending_role = False
        verdict = self._chains["input"].evaluate(
            flow.ip,
            self._under_limit,
            key=flow.key,
            listener=flow.listener,
            protocol=flow.protocol,
            role=role,
        )
        self._log_rules(verdict, flow.listener, flow.host)
        if verdict.verdict in ("drop", "reject"):
            return self._refuse(verdict.verdict, verdict.handle, "rule", flow.listener, flow.host)
        if verdict.handle is not None:
            self.counters[verdict.handle].connections += 1
            flow.handle = verdict.handle
        return Decision("accept", verdict.handle, "")

    def received(self, flow: Flow, size: int) -> None:
        """Count bytes a connection sent (its messages are counted by :meth:`message`)."""
        if flow.handle is not None:
            counter = self.counters.get(flow.handle)
            if counter is not None:
                counter.bytes += size

    def message(self, flow: Flow, messages: int, size: int) -> str:
        """Account for messages (and bytes) a connection sent, against the message rate:
        ``ok``, ``lag`` or ``disconnect``."""
        if flow.handle is not None:
            counter = self.counters.get(flow.handle)
            if counter is not None:
                counter.messages += messages
                counter.bytes += size
        if flow.messages is None or flow.messages.consume(messages):
            return "ok"
        flow.violations += 1
        if flow.key is not None:
            self.violation(flow.key, flow.host, flow.listener, "message rate")
        if flow.violations >= self._ruleset.limits.disconnect_after:
            return "disconnect"
        return "lag"

    # -- bans ----------------------------------------------------------------------

    def violation(self, key: int, host: str | None, listener: str, what: str) -> None:
        """An address broke a limit; enough of them within the ban time ban it."""
        limits = self._ruleset.limits
        now = self._clock.seconds()
        count, since = self._violations.get(key, (0, now))
        if now - since > limits.ban_for_s:
            count, since = 0, now
        count += 1
        self._violations[key] = (count, since)
        self._log.info(
            "firewall limit address={address} listener={listener} limit={what} violations={count}",
            address=host,
            listener=listener,
            what=what.replace(" ", "-"),
            count=count,
        )
        if limits.ban_after is not None and count >= limits.ban_after:
            self._ban_key(key, limits.ban_for_s)
            self._violations.pop(key, None)

    def ban(self, address: str, for_s: float | None = None) -> str:
        """Ban an address (grouped as limits group it) for ``for_s`` seconds, or for good.

        Returns the address as bans show it; raises AddressError if it is none.
        """
        return self._ban_key(self.normalise(address), for_s)

    def _ban_key(self, key: int, for_s: float | None) -> str:
        self.bans[key] = None if for_s is None else self._clock.seconds() + for_s
        text = self._key_text(key)
        self._log.info(
            "firewall ban address={address} for={duration}",
            address=text,
            duration="ever" if for_s is None else f"{for_s:g}s",
        )
        return text

    def _key_text(self, key: int) -> str:
        return key_text(key, self._ruleset.limits.ipv6_prefix)

    def unban(self, address: str) -> bool:
        """Lift a ban; False if there was none."""
        return self.bans.pop(self.normalise(address), "none") != "none"

    def normalise(self, address: str) -> int:
        """An address as bans and limits key it; raises AddressError if it is none."""
        if "/" in address:
            net = parse_network(address)
            prefix = self._ruleset.limits.ipv6_prefix
            if net.version == 6 and net.prefixlen == prefix:
                return group_key((128, int(net.network_address)), prefix)
            if net.num_addresses != 1:
                raise AddressError(f"{address!r}: bans take one address (IPv6: its /64 network)")
            address = str(net.network_address)
        return group_key(parse_ip(address), self._ruleset.limits.ipv6_prefix)

    def banned(self, key: int) -> bool:
        """Whether ``key`` is banned now (an expired ban is lifted)."""
        if key not in self.bans:
            return False
        until = self.bans[key]
        if until is not None and self._clock.seconds() >= until:
            del self.bans[key]
            return False
        return True

    def ban_list(self) -> list[dict[str, Any]]:
        """Current bans with the seconds left (None: until lifted)."""
        now = self._clock.seconds()
        for key in list(self.bans):
            self.banned(key)
        return [
            {"address": self._key_text(k), "expires_in_s": None if v is None else round(v - now, 3)}
            for k, v in sorted(self.bans.items())
        ]

    # -- outbound and NAT ----------------------------------------------------------

    def outbound(self, host: str, port: int) -> tuple[Decision, str | None]:
        """The output chain for a connection out, and the SNAT source address if any."""
        ip, key = self._parse(host)
        verdict = self._chains["output"].evaluate(
            ip, self._under_limit, key=key, listener="output", protocol="tcp", port=port
        )
        self._log_rules(verdict, "output", host)
        if verdict.verdict in ("drop", "reject"):
            return self._refuse(verdict.verdict, verdict.handle, "rule", "output", host), None
        if verdict.handle is not None:
            self.counters[verdict.handle].connections += 1
        source = None
        if ip is not None:
            bits, value = ip
            for net, src in self._ruleset.snat:
                shift = bits - net.prefixlen
                if (
                    net.max_prefixlen == bits
                    and value >> shift == int(net.network_address) >> shift
                ):
                    source = src
                    break
        return Decision("accept", verdict.handle, ""), source

    def dnat_target(self, listener: str) -> tuple[str, int] | None:
        """Where a DNAT listener forwards to under the running rules."""
        return self._ruleset.dnat.get(listener)

    def translate_text(self, text: str) -> str:
        """Message text with internal hosts, addresses and accounts replaced by aliases."""
        return self.translator.translate(text)

    # -- housekeeping ----------------------------------------------------------------

    def sweep(self) -> None:
        """Close idle tracked connections, lift expired bans, drop full rate buckets."""
        self.conntrack.expire()
        for key in list(self.bans):
            self.banned(key)
        now = self._clock.seconds()
        for buckets in (self._connect_buckets, self._rule_buckets):
            for k in [k for k, b in buckets.items() if b.idle_since(now)]:
                del buckets[k]

    def start(self, interval_s: float = SWEEP_INTERVAL_S) -> None:
        """Sweep every ``interval_s`` seconds on the injected clock."""
        self._sweeper = LoopingCall(self.sweep)
        self._sweeper.clock = self._clock
        self._sweeper.start(interval_s, now=False)

    def stop(self) -> None:
        """Stop sweeping."""
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        self._sweeper = None


TextFilter = Callable[[str], str]
