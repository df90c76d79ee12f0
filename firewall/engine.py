"""The firewall's state: the running rule set, counters, limits, bans and conntrack.

One :class:`Firewall` per gateway. Listener wrappers (``firewall.wrapper``), outbound
connections (``firewall.outbound``) and the DNAT proxy (``firewall.dnat``) ask it for
decisions; the admin API (``gateway.admin.firewall_api``) changes it. A new rule set is
parsed and validated whole, then swapped in with one assignment: connections already
accepted keep going, new ones meet the new rules. Editing single rules and set
elements is :mod:`firewall.edit`; explaining a verdict, :mod:`firewall.trace`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from firewall import edit, render
from firewall import ruleset as rules_module
from firewall.addrset import IP, AddressError, group_key, key_text, parse_ip, parse_network
from firewall.bans import BanTable
from firewall.classify import CompiledChain, Verdict
from firewall.common import TokenBucket, log_observer
from firewall.conntrack import Conntrack, Entry
from firewall.flow import (
    ACCEPT_BY_POLICY,
    LIMIT_NAMES,
    REFUSAL,
    Counter,
    Decision,
    FastLogger,
    Flow,
    LimitMemory,
    SummaryLines,
)
from firewall.ruleset import Rule, RulesError, Ruleset
from firewall.stats import FirewallStats
from firewall.translate import Translator

SWEEP_INTERVAL_S = 1.0

_inet_pton, _AF_INET, _now = socket.inet_pton, socket.AF_INET, time.time
# Decision's fields in order, without NamedTuple's argument handling (per connection).
_new = tuple.__new__


class Firewall:
    """The filter, NAT, limits, bans and conntrack of one gateway."""

    _log = FastLogger(observer=log_observer)

    def __init__(self, clock: IReactorTime, ruleset: Ruleset | None = None) -> None:
        self._clock = clock
        self.counters: dict[int, Counter] = {}
        self.bans = BanTable(clock)
        self._ban_keys, self._ban_networks = self.bans.keys, self.bans.networks
        self.stats = FirewallStats()
        self._accepted = self.stats.accepted
        self._dropped, self._rejected = self.stats.dropped, self.stats.rejected
        self._concurrent: dict[int, int] = {}
        self._connect_buckets: dict[int, TokenBucket] = {}
        self._rule_buckets: dict[tuple[int, int], TokenBucket] = {}
        self._violations: dict[int, tuple[int, float]] = {}
        self.conntrack = Conntrack(clock, rules_module.DEFAULT_TIMEOUTS)
        self.rules_file: Path | None = None
        # Seconds a trusted proxy has to send its PROXY header.
        self.proxy_header_timeout_s = 10.0
        # One summary line per connection that ends (firewall.log_connections).
        self.log_connections = False
        # Called with the new rule set after each install (DNAT backends follow it).
        self.on_install: list[Callable[[Ruleset], None]] = []
        # Called after each change of the bans (they are written to a file).
        self.on_bans_changed: list[Callable[[], None]] = []
        self._sweeper: LoopingCall | None = None
        self._summaries = SummaryLines(clock)
        self._install(ruleset or Ruleset())

    @property
    def clock(self) -> IReactorTime:
        """The clock decisions are timed by."""
        return self._clock

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
            counters[handle].decision = None  # made again for this rule set
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
        for watcher in self.on_install:
            watcher(rs)

    def chain(self, name: str) -> CompiledChain:
        """The compiled chain ``name`` (input or output) of the running rules."""
        return self._chains[name]

    def parse(self, text: str, source: str = "rules") -> Ruleset:
        """Parse a rules text; rules the running set has (same chain and text) keep their
        handles, new ones are numbered after. Changes nothing, so it may run in a thread."""
        running = self._ruleset
        rs = rules_module.parse(text, source, first_handle=running.next_handle)
        return edit.keep_handles(rs, running)

    def apply(self, text: str, source: str = "rules") -> Ruleset:
        """Parse, validate and install a whole rules text, or raise RulesError and keep the old."""
        with rules_module.without_cycle_collection():
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

    def snapshot(self, *, full: bool = False) -> render.Snapshot:
        """The running rules as a listing sees them (take it on the reactor thread)."""
        return render.snapshot(self._ruleset, self.counters, full=full)

    def check(self, text: str, source: str = "rules", snap: render.Snapshot | None = None) -> str:
        """Validate a rules text and return its unified diff against the running rules.

        Changes nothing; to run it in a thread, pass a :meth:`snapshot` taken before.
        """
        snap = snap if snap is not None else self.snapshot(full=True)
        return render.diff(snap, self.parse(text, source), source)

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

    def add_rule(self, chain: str, text: str, **where: Any) -> int:
        """Add one rule (see :func:`firewall.edit.add_rule`); returns its handle."""
        rs, handle = edit.add_rule(self._ruleset, chain, text, **where)
        self._install(rs, fresh=handle)
        return handle

    def replace_rule(self, handle: int, text: str, comment: str | None = None) -> bool:
        """Replace the rule ``handle`` in place, keeping the handle (its counters start
        again); False if none. Without ``comment`` the rule's comment stays."""
        rs = edit.replace_rule(self._ruleset, handle, text, comment)
        if rs is None:
            return False
        self._install(rs, fresh=handle)
        return True

    def delete_rule(self, handle: int) -> bool:
        """Remove the rule with this handle; False if there is none."""
        rs = edit.delete_rule(self._ruleset, handle)
        if rs is None:
            return False
        self._install(rs)
        return True

    def reset_counters(self) -> None:
        """Zero every rule's counters."""
        for counter in self.counters.values():
            counter.connections = counter.messages = counter.bytes = 0

    def listing(self) -> list[dict[str, Any]]:
        """The rules in order with handles and counters, as the admin API shows them."""
        return render.listing(render.snapshot(self._ruleset, self.counters, full=False))

    # -- decisions ---------------------------------------------------------------

    def take_limit(self, handle: int, rule: Rule, key: int | None) -> bool:
        """Take one from a rule's limit for this address key; False if over its rate."""
        assert rule.limit is not None
        bucket_key = (handle, -1 if key is None else key)
        bucket = self._rule_buckets.get(bucket_key)
        if bucket is None:
            bucket = TokenBucket(rule.limit.per_second, rule.limit.burst, self._clock)
            self._rule_buckets[bucket_key] = bucket
        return bucket.consume()

    def would_be_under(self, handle: int, rule: Rule, key: int | None) -> bool:
        """Whether a rule's limit would let one more through now, taking nothing."""
        bucket = self._rule_buckets.get((handle, -1 if key is None else key))
        return bucket is None or bucket.peek()

    def concurrent(self, key: int) -> int:
        """Connections open now from an address key."""
        return self._concurrent.get(key, 0)

    def connection_rate_allows(self, key: int) -> bool:
        """Whether the connection rate would let one more in now, taking nothing."""
        bucket = self._connect_buckets.get(key)
        return bucket is None or bucket.peek()

    def _read(self, host: str | None) -> tuple[IP | None, int | None]:
        # _parse, with IPv4 text read without calls (once per connection).
        if host is not None and ":" not in host:
            try:
                key = int.from_bytes(_inet_pton(_AF_INET, host), "big")
            except (OSError, ValueError):
                return None, None
            return (32, key), key
        return self._parse(host)

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
        trusted = self._ruleset.trusted
        if not trusted:
            return False
        ip = self._parse(host)[0]
        return ip is not None and trusted.has(ip)

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
        if (key in self._ban_keys or self._ban_networks) and self.bans.banned(ip, key):
            return self._refuse("drop", None, "banned", listener, host)
        taken = None
        verdict = self._input.quick(ip)
        if verdict is None:
            if self._input.has_roles:
                limits = LimitMemory(self)
                # Without a login (DNAT, HTTP) a connection has no role: "" matches none.
                role = "" if protocol in rules_module.ROLELESS else None
                verdict = self._input.walk(
                    ip, limits, key=key, listener=listener, protocol=protocol, role=role
                )
                if verdict.pending:
                    verdict = self._whatever_the_role(verdict, ip, key, listener, protocol, limits)
                    taken = limits.taken
            else:
                verdict = self._input.walk(
                    ip, self.take_limit, key=key, listener=listener, protocol=protocol
                )
        if verdict.logs or verdict.log:
            self._log_rules(verdict, listener, host)
        handle = verdict.handle
        if verdict.verdict == "drop" or verdict.verdict == "reject":
            return self._refuse(verdict.verdict, handle, "rule", listener, host, verdict.counter)
        if key is not None:
            limits_ = self._ruleset.limits
            if (
                limits_.concurrent is not None
                and self._concurrent.get(key, 0) >= limits_.concurrent
            ):
                self.violation(key, host, listener, "concurrent")
                return self._refuse("drop", None, "limit concurrent", listener, host)
            if limits_.connections is not None:
                bucket = self._connect_buckets.get(key)
                if bucket is None:
                    rate = limits_.connections
                    bucket = TokenBucket(rate.per_second, rate.burst, self._clock)
                    self._connect_buckets[key] = bucket
                if not bucket.consume():
                    self.violation(key, host, listener, "connections")
                    return self._refuse("drop", None, "limit connections", listener, host)
        if verdict.pending:
            return Decision("accept", handle, "", True, taken)
        if handle is None:
            return ACCEPT_BY_POLICY
        counter = verdict.counter
        if counter is None:
            counter = self.counters[handle]
        counter.connections += 1
        decision = counter.decision
        if decision is None:
            decision = counter.decision = _new(Decision, ("accept", handle, "", False, None))
        return decision

    def _whatever_the_role(
        self,
        pending: Verdict,
        ip: IP | None,
        key: int | None,
        listener: str,
        protocol: str,
        limits: LimitMemory,
    ) -> Verdict:
        """A walk stopped at a role rule: decide now if the outcome is the same for every
        role (a refusal for every role refuses now: drop if any role's would drop).

        The walks for each role take no rule limit: if one met a limit not yet taken,
        only the role can say whose limit counts, so the decision waits for it.
        """
        outcomes = [
            self._input.evaluate(
                ip, limits.peek, key=key, listener=listener, protocol=protocol, role=role
            )
            for role in rules_module.ROLES
        ]
        if limits.peeked:
            return pending
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
            if counter is None:
                counter = self.counters[handle]
            counter.connections += 1
            rule: int | str = handle
        else:
            rule = why.replace(" ", "-")
        (self._dropped if verdict == "drop" else self._rejected)[listener] += 1
        # The one line per refusal, as Logger.info would make it, in one step: this runs
        # for every connection a flood or a block list refuses.
        log = self._log
        log.observer(
            {
                "log_logger": log,
                "log_level": LogLevel.info,
                "log_namespace": log.namespace,
                "log_source": log.source,
                "log_format": REFUSAL,
                "log_time": _now(),
                "log_safe": True,  # addresses it parsed, names, handles: nothing to escape
                "verdict": verdict,
                "address": address if address is not None else "-",
                "listener": listener,
                "rule": rule,
            }
        )
        if counter is None:
            return _new(Decision, (verdict, handle, why, False, None))
        decision = counter.decision
        if decision is None or decision.verdict != verdict:
            decision = counter.decision = _new(Decision, (verdict, handle, why, False, None))
        return decision

    def refused(self, verdict: str, listener: str, address: Any, why: str) -> None:
        """Count and log one refusal (``drop`` or ``reject``) decided outside the chain,
        in the one line fail2ban reads: ``firewall drop address=… listener=… rule=WHY``
        (``max-connections``, ``proxy-header``, ``limit-messages``…)."""
        self._refuse(verdict, None, why, listener, address)

    def open_flow(self, listener: str, protocol: str, host: str | None, decision: Decision) -> Flow:
        """Start counting a connection ``admit`` accepted (and counted here, as accepted,
        for metrics) against its address."""
        self._accepted[listener] += 1
        ip, key = self._read(host)
        if key is not None:
            self._concurrent[key] = self._concurrent.get(key, 0) + 1
        rate = self._ruleset.limits.messages
        bucket = TokenBucket(rate.per_second, rate.burst, self._clock) if rate else None
        flow = Flow(key, listener, protocol, host, ip, decision.handle, bucket)
        flow.pending_role = decision.pending_role
        flow.taken = decision.taken
        return flow

    def close_flow(self, flow: Flow) -> None:
        """Stop counting a connection that ended."""
        if flow.key is not None:
            left = self._concurrent.get(flow.key, 0) - 1
            if left > 0:
                self._concurrent[flow.key] = left
            else:
                self._concurrent.pop(flow.key, None)

    def ended(self, flow: Flow, entry: Entry | None, end: str) -> None:
        """The one summary line of a connection that ended (HAProxy's tcplog, in the
        firewall's words): duration, bytes each way, verdict, rule, role and why it
        ended (``client``: the peer closed or was lost; ``local``: the gateway closed
        it; ``idle-timeout``, ``killed``, ``flushed``, ``banned``; a refusal's rule)."""
        if self.log_connections:
            self._summaries.add(self._log, flow, entry, end)

    def role_known(self, flow: Flow, role: str) -> Decision:
        """Run the input chain again now that the connection's role is known.

        Only a connection whose walk stopped at a rule naming a role is judged again;
        for the others the outcome could not change. Rule limits taken by the first
        walk are not taken again.
        """
        flow.role = role
        if not flow.pending_role:
            return Decision("accept", flow.handle, "")
        flow.pending_role = False
        verdict = self._chains["input"].evaluate(
            flow.ip,
            LimitMemory(self, flow.taken),
            key=flow.key,
            listener=flow.listener,
            protocol=flow.protocol,
            role=role,
        )
        flow.taken = None
        self._log_rules(verdict, flow.listener, flow.host)
        if verdict.verdict in ("drop", "reject"):
            flow.verdict, flow.refused_by = verdict.verdict, str(verdict.handle)
            return self._refuse(verdict.verdict, verdict.handle, "rule", flow.listener, flow.host)
        flow.handle = verdict.handle  # None: the policy accepted it
        if verdict.handle is not None:
            self.counters[verdict.handle].connections += 1
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
            self.violation(flow.key, flow.host, flow.listener, "messages")
        if flow.violations >= self._ruleset.limits.disconnect_after:
            flow.verdict, flow.refused_by = "drop", "limit-messages"
            return "disconnect"
        return "lag"

    # -- bans ----------------------------------------------------------------------

    def violation(self, key: int, host: str | None, listener: str, what: str) -> None:
        """An address broke a limit (``concurrent``, ``connections`` or ``messages``);
        enough of them within the ban time ban it."""
        self.stats.limit_hit(listener, what)
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
            what=LIMIT_NAMES.get(what, what),
            count=count,
        )
        if limits.ban_after is not None and count >= limits.ban_after:
            self._ban(key, None, limits.ban_for_s)
            self._violations.pop(key, None)

    def ban(self, address: str, for_s: float | None = None, *, close: bool = False) -> str:
        """Ban an address (grouped as limits group it) or a network (``203.0.113.0/24``)
        for ``for_s`` seconds, or until lifted; with ``close``, established connections
        from it are closed too. Returns the ban as listed; raises AddressError."""
        key, net = self.ban_target(address)
        text = self._ban(key, net, for_s)
        if close:
            self.conntrack.flush([parse_network(text)], "banned", direction="in")
        return text

    def ban_target(self, address: str) -> tuple[int | None, Any]:
        """What a ban of ``address`` holds: an address key, or a network."""
        prefix = self._ruleset.limits.ipv6_prefix
        if "/" not in address:
            return group_key(parse_ip(address), prefix), None
        net = parse_network(address)
        if net.prefixlen == net.max_prefixlen or (net.version == 6 and net.prefixlen >= prefix):
            return group_key((net.max_prefixlen, int(net.network_address)), prefix), None
        return None, net

    def _ban(self, key: int | None, net: Any, for_s: float | None) -> str:
        until = None if for_s is None else self._clock.seconds() + for_s
        if key is not None:
            self.bans.ban_key(key, until)
            text = self._key_text(key)
        else:
            self.bans.ban_network(net, until)
            text = str(net)
        self.stats.bans += 1
        self._log.info(
            "firewall ban address={address} for={duration}",
            address=text,
            duration="ever" if for_s is None else f"{for_s:g}s",
        )
        self._bans_changed()
        return text

    def _bans_changed(self) -> None:
        for watcher in self.on_bans_changed:
            watcher()

    def _key_text(self, key: int) -> str:
        return key_text(key, self._ruleset.limits.ipv6_prefix)

    def unban(self, address: str) -> bool:
        """Lift a ban (of this address or exactly this network); False if there was none."""
        key, net = self.ban_target(address)
        lifted = self.bans.lift_key(key) if key is not None else self.bans.lift_network(net)
        if lifted:
            self._bans_changed()
        return lifted

    def ban_list(self) -> list[dict[str, Any]]:
        """Current bans with the seconds left (None: until lifted)."""
        return self.bans.as_json(self._ruleset.limits.ipv6_prefix)

    def flush(self, address: str) -> int:
        """Close every tracked connection from or to an address or network; how many."""
        return len(self.conntrack.flush([parse_network(address)]))

    # -- outbound and NAT ----------------------------------------------------------

    def outbound(self, host: str, port: int) -> tuple[Decision, str | None]:
        """The output chain for a connection out, and the SNAT source address if any.

        ``host`` must be an IP address: names are resolved first (see
        :class:`firewall.outbound.FirewalledReactor`), so rules and SNAT judge the
        address the connection really goes to.
        """
        ip, key = self._parse(host)
        verdict = self._chains["output"].evaluate(
            ip, self.take_limit, key=key, listener="output", protocol="tcp", port=port
        )
        self._log_rules(verdict, "output", host)
        if verdict.verdict in ("drop", "reject"):
            return self._refuse(verdict.verdict, verdict.handle, "rule", "output", host), None
        self.stats.verdict("output", "accept")
        if verdict.handle is not None:
            self.counters[verdict.handle].connections += 1
        return Decision("accept", verdict.handle, ""), self.snat_source(ip)

    def snat_source(self, ip: IP | None) -> str | None:
        """The SNAT source address for connections to ``ip`` (None: the system's)."""
        if ip is None:
            return None
        bits, value = ip
        for net, src in self._ruleset.snat:
            shift = bits - net.prefixlen
            if net.max_prefixlen == bits and value >> shift == int(net.network_address) >> shift:
                return src
        return None

    def dnat_target(self, listener: str) -> tuple[str, int] | None:
        """Where a DNAT listener forwards to under the running rules (its first backend)."""
        nat = self._ruleset.dnat.get(listener)
        return None if nat is None else nat.backends[0].address

    def translate_text(self, text: str) -> str:
        """Message text with internal hosts, addresses and accounts replaced by aliases."""
        return self.translator.translate(text)

    # -- housekeeping ----------------------------------------------------------------

    def sweep(self) -> None:
        """Close idle tracked connections, lift expired bans, drop full rate buckets."""
        self.conntrack.expire()
        before = len(self.bans)
        self.bans.expire()
        if len(self.bans) != before:
            self._bans_changed()
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
        """Stop sweeping; write the summary lines still waiting."""
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        self._sweeper = None
        self._summaries.flush()
