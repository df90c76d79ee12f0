"""Local routing rules (``etc/routing.toml``): customer attributes to a :class:`Plan`.

A :class:`RuleSet` is validated and precompiled once, at load, so that
:meth:`RuleSet.classify` is a short loop over ready-made predicates with no I/O:
the gateway calls it for every conversation, and falls back to it whenever the
routing server is down or late. docs/routing.md ("Routing rules") documents the format.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Callable, Collection, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from gateway.config import ConfigError, Reader
from gateway.routing.features import grantable_check
from gateway.routing.plan import FALLBACKS, LOCAL, STRATEGIES, Customer, Plan, Target
from gateway.routing.trust import Trust
from gateway.routing.versions import VersionRange, parse_version

DEFAULTS_SOURCE = "packaged defaults"
DEFAULTS_RESOURCE = "routing_defaults.toml"
# The name decisions record when no rule, or no compatibility entry, matched.
DEFAULT_NAME = "default"
# Customer attributes a rule may match on, besides identity.<field>.
MATCH_KEYS = ("topic", "protocol", "client", "version", "language", "priority", "media")
IDENTITY_PREFIX = "identity."
LOCATIONS = ("lan", "remote")
MAX_SKILL_LEVEL = 5
MIN_BROADCAST, MAX_BROADCAST = 2, 100
MAX_PRIORITY = 1000
MAX_TIMEOUT_S = 7 * 86400.0

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")

# A precompiled condition: (attribute, accepted folded values); None accepts any
# present value ("*").
_Condition = tuple[str, frozenset[str] | None]


@attrs.frozen
class _Rule:
    name: str
    conditions: tuple[_Condition, ...]
    targets: tuple[Target, ...]
    priority: int


@attrs.frozen
class _Entry:
    """A compatibility entry; None keys (and ``*`` patterns) constrain nothing."""

    name: str
    protocol: str | None
    client: re.Pattern[str] | None
    versions: VersionRange | None
    service: str
    requires: frozenset[str]
    fallback: str

    @property
    def takes_all(self) -> bool:
        return self.protocol is None and self.client is None and self.versions is None


@attrs.frozen
class RuleSet:
    """A validated, precompiled routing rule file for one media type.

    Build it with :meth:`load` (a file, or the packaged defaults) or :meth:`parse`
    (data already parsed from TOML or JSON); both raise
    :class:`gateway.config.ConfigError` naming the source, the key path and the
    problem.
    """

    source: str
    rule_names: tuple[str, ...]
    _rules: tuple[_Rule, ...]
    _default: _Rule
    _entries: tuple[_Entry, ...]
    _default_entry: _Entry
    # Where rules trust each attribute from ([trust]).
    trust: Trust = attrs.field(factory=Trust)
    # Plans are immutable, so one per (rule, entry) pair is built and reused.
    _plans: dict[tuple[int, int], Plan] = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def load(
        cls,
        path: Path | None,
        *,
        queues: Collection[str],
        grantable: Mapping[str, Collection[str]] | None = None,
    ) -> RuleSet:
        """Read and validate ``path``; None reads the packaged ``routing_defaults.toml``.

        ``queues`` are the configured queue names a target may name. ``grantable`` maps
        each protocol adapter to the features it can grant an agent's IM software
        (:func:`gateway.routing.features.grantable_features`); with it, a compatibility
        entry requiring one no adapter grants is refused (no agent could ever serve it).
        None checks nothing.
        """
        if path is None:
            text = resources.files("gateway").joinpath(DEFAULTS_RESOURCE).read_text("utf-8")
            return cls.parse(
                _toml(text, DEFAULTS_SOURCE),
                source=DEFAULTS_SOURCE,
                queues=queues,
                grantable=grantable,
            )
        source = str(path)
        if not Path(path).is_file():
            raise ConfigError(source, "-", "no such file")
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(source, "-", f"cannot read: {e}") from None
        return cls.parse(_toml(text, source), source=source, queues=queues, grantable=grantable)

    @classmethod
    def parse(
        cls,
        data: Mapping,
        *,
        source: str,
        queues: Collection[str],
        grantable: Mapping[str, Collection[str]] | None = None,
    ) -> RuleSet:
        """Validate and precompile rule data already parsed from TOML or JSON."""
        if not isinstance(data, Mapping):
            raise ConfigError(source, "-", f"must be a table, not {type(data).__name__}")
        root = Reader(source, dict(data), "")
        if "default" not in root.table:
            raise root.fail("default", "is required: the workflow when no rule matches")
        queue_names = frozenset(queues)
        fallback, default_service, entries = _compatibility(
            root.table_of("compatibility"), grantable
        )
        trust = Trust.parse(root.table_of("trust"))
        raw_rules = root.get("rules", list, [])
        rules = tuple(
            _rule(Reader(source, raw, f"rules[{i}]"), queue_names)
            for i, raw in enumerate(raw_rules)
        )
        _check_unique(source, "rules", [r.name for r in rules], "rule")
        _check_reachable(source, "rules", [not r.conditions for r in rules], "has no match")
        for i, rule in enumerate(rules):
            trust.check_rule(source, f"rules[{i}].match", [key for key, _ in rule.conditions])
        default = _workflow(root.table_of("default"), DEFAULT_NAME, queue_names)
        root.done()
        return cls(
            source=source,
            rule_names=tuple(r.name for r in rules),
            rules=rules,
            default=default,
            entries=entries,
            default_entry=_Entry(
                name=DEFAULT_NAME,
                protocol=None,
                client=None,
                versions=None,
                service=default_service,
                requires=frozenset(),
                fallback=fallback,
            ),
            trust=trust,
        )

    def classify(self, customer: Customer) -> Plan:
        """The plan for ``customer``: the first matching rule (else the default
        workflow) with the first matching compatibility entry (else the default)."""
        return self._classify(customer.attributes, customer.media, customer.sources)

    def classify_media(self, media: str, customer: Customer) -> Plan:
        """Classify ``customer`` as arriving on ``media`` (``chat``, ``email``, ...).

        One rule set serves one media; the routing server holds one per media.
        """
        return self._classify(customer.attributes, media, customer.sources)

    def _classify(
        self, attributes: Mapping[str, str], media: str, sources: Mapping[str, str]
    ) -> Plan:
        folded = _fold_all(attributes)
        folded["media"] = _fold(media)
        # Rules see only what the site trusts; the compatibility table sees the software.
        ignored = [
            key
            for key, source in sources.items()
            if key in folded and not self.trust.trusts(key, source)
        ]
        matched = folded
        if ignored:
            matched = {k: v for k, v in folded.items() if k not in ignored}
        rule_index = self._match_rule(matched)
        entry_index = self._match_entry(folded)
        key = (rule_index, entry_index)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan(rule_index, entry_index)
        if ignored:
            untrusted = ", ".join(f"{k} ({sources[k]})" for k in sorted(ignored))
            plan = attrs.evolve(plan, reason=f"{plan.reason}; not trusted: {untrusted}")
        return plan

    def _match_rule(self, folded: Mapping[str, str]) -> int:
        for index, rule in enumerate(self._rules):
            for key, accepted in rule.conditions:
                value = folded.get(key)
                if not value or (accepted is not None and value not in accepted):
                    break
            else:
                return index
        return -1

    def _match_entry(self, folded: Mapping[str, str]) -> int:
        protocol = folded.get("protocol", "")
        client = folded.get("client", "")
        # Parsed only when an entry with a version range is reached.
        version: tuple[int, ...] | None = None
        version_parsed = False
        for index, entry in enumerate(self._entries):
            if entry.protocol is not None and entry.protocol != protocol:
                continue
            if entry.client is not None and not entry.client.match(client):
                continue
            if entry.versions is not None:
                if not version_parsed:
                    version, version_parsed = parse_version(folded.get("version", "")), True
                if not entry.versions.holds(version):
                    continue
            return index
        return -1

    def _plan(self, rule_index: int, entry_index: int) -> Plan:
        rule = self._rules[rule_index] if rule_index >= 0 else self._default
        entry = self._entries[entry_index] if entry_index >= 0 else self._default_entry
        return Plan(
            rule=rule.name,
            targets=rule.targets,
            priority=rule.priority,
            service=entry.service,
            requires=entry.requires,
            compatibility=entry.name,
            fallback=entry.fallback,
            source=LOCAL,
            reason=f"rule {rule.name}; compatibility {entry.name}",
        )


def _toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, "-", f"not valid TOML: {e}") from None


def _fold(value: object) -> str:
    # Rules match case-insensitively; casefold() also folds e.g. German sharp s.
    return (value if isinstance(value, str) else str(value)).strip().casefold()


def _fold_all(attributes: Mapping[str, str]) -> dict[str, str]:
    return {key: _fold(value) for key, value in attributes.items()}


# --- validation ---------------------------------------------------------------------


def _one_of(options: Collection[str]) -> Callable[[str], str | None]:
    return lambda v: None if v in options else f"must be one of {', '.join(options)}, not {v!r}"


def _valid_name(value: str) -> str | None:
    if _NAME.match(value):
        return None
    return f"{value!r} is not a valid name (lowercase letters, digits, '-' and '_')"


def _not_default(kind: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if value == DEFAULT_NAME:
            return f"{DEFAULT_NAME!r} is reserved for the {kind} used when none matches"
        return _valid_name(value)

    return check


def _key(prefix: str, name: str) -> str:
    # Dotted keys such as "identity.tier" are quoted, as TOML writes them.
    part = name if _BARE_KEY.match(name) else '"' + name.replace('"', '\\"') + '"'
    return f"{prefix}.{part}" if prefix else part


def _optional(reader: Reader, name: str, kind: type) -> Any:
    return reader.get(name, kind, None)


def _strings(
    reader: Reader, name: str, check: Callable[[str], str | None] | None = None
) -> tuple[str, ...]:
    items = reader.get(name, list, [])
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise reader.fail(f"{name}[{i}]", f"must be a string, not {type(item).__name__}")
        problem = check(item) if check else None
        if problem:
            raise reader.fail(f"{name}[{i}]", problem)
    return tuple(items)


def _check_unique(source: str, prefix: str, names: list[str], kind: str) -> None:
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            raise ConfigError(
                source,
                f"{prefix}[{i}].name",
                f"duplicate {kind} {name!r} (also {prefix}[{first[name]}])",
            )
        first[name] = i


def _check_reachable(source: str, prefix: str, takes_all: list[bool], why: str) -> None:
    # A catch-all followed by more entries is a mistake: those never apply.
    for i, catch_all in enumerate(takes_all[:-1]):
        if catch_all:
            raise ConfigError(
                source,
                f"{prefix}[{i + 1}]",
                f"never applies: {prefix}[{i}] {why} and takes every customer first",
            )


def _compatibility(
    comp: Reader, grantable: Mapping[str, Collection[str]] | None
) -> tuple[str, str, tuple[_Entry, ...]]:
    fallback = comp.text("fallback", "translate", check=_one_of(FALLBACKS))
    default_service = comp.text("default_service", "relay", check=_valid_name)
    raw_entries = comp.get("entries", list, [])
    entries = tuple(
        _entry(
            Reader(comp.source, raw, comp.key(f"entries[{i}]")),
            default_service,
            fallback,
            grantable,
        )
        for i, raw in enumerate(raw_entries)
    )
    comp.done()
    prefix = comp.key("entries")
    _check_unique(comp.source, prefix, [e.name for e in entries], "compatibility entry")
    _check_reachable(
        comp.source, prefix, [e.takes_all for e in entries], "has no protocol, client or versions"
    )
    return fallback, default_service, entries


def _entry(
    e: Reader, default_service: str, fallback: str, grantable: Mapping[str, Collection[str]] | None
) -> _Entry:
    name = e.text("name", check=_not_default("compatibility entry"))
    protocol = _optional(e, "protocol", str)
    if protocol is not None and not protocol.strip():
        raise e.fail("protocol", "must not be empty (leave it out to match any protocol)")
    client = _optional(e, "client", str)
    if client is not None and not client.strip():
        raise e.fail("client", "must not be empty (leave it out to match any client)")
    versions = _optional(e, "versions", str)
    version_range = None
    if versions is not None:
        try:
            version_range = VersionRange.parse(versions)
        except ValueError as problem:
            raise e.fail("versions", f"not a version range: {problem}") from None
    entry = _Entry(
        name=name,
        protocol=None if protocol is None else _fold(protocol),
        client=_glob(client),
        # "*" constrains nothing; None lets the entry skip parsing the version.
        versions=None if version_range is None or version_range.is_any else version_range,
        service=e.text("service", default_service, check=_valid_name),
        requires=frozenset(_strings(e, "requires", grantable_check(grantable))),
        fallback=e.text("fallback", fallback, check=_one_of(FALLBACKS)),
    )
    e.done()
    return entry


def _glob(pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None or pattern.strip() == "*":
        return None
    # fnmatch.translate anchors the pattern; both sides are folded, not IGNORECASE,
    # so that the glob agrees with the casefold() used everywhere else.
    return re.compile(fnmatch.translate(_fold(pattern)))


def _rule(r: Reader, queues: frozenset[str]) -> _Rule:
    name = r.text("name", check=_not_default("workflow"))
    conditions = _conditions(r)
    rule = _workflow(r, name, queues, conditions)
    return rule


def _conditions(r: Reader) -> tuple[_Condition, ...]:
    table = r.get("match", dict, {})
    prefix = r.key("match")
    conditions = []
    for key, value in table.items():
        path = _key(prefix, key)
        problem = _match_key_problem(key)
        if problem:
            raise ConfigError(r.source, path, problem)
        conditions.append((key, _accepted(r.source, path, value)))
    return tuple(conditions)


def _match_key_problem(key: str) -> str | None:
    if key in MATCH_KEYS:
        return None
    if key.startswith(IDENTITY_PREFIX):
        if _NAME.match(key[len(IDENTITY_PREFIX) :]):
            return None
        return f"{key!r}: an identity field name is lowercase letters, digits, '-' and '_'"
    return f"unknown key (one of {', '.join(MATCH_KEYS)}, identity.FIELD)"


def _accepted(source: str, path: str, value: Any) -> frozenset[str] | None:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(source, path, "must not be an empty list")
    for i, item in enumerate(values):
        item_path = f"{path}[{i}]" if isinstance(value, list) else path
        if not isinstance(item, str):
            raise ConfigError(
                source,
                item_path,
                f"must be a string or a list of strings, not {type(item).__name__}",
            )
        if not item.strip():
            raise ConfigError(source, item_path, "must not be empty ('*' matches any value)")
    folded = frozenset(_fold(v) for v in values)
    return None if "*" in folded else folded


def _workflow(
    r: Reader, name: str, queues: frozenset[str], conditions: tuple[_Condition, ...] = ()
) -> _Rule:
    priority = r.number("priority", 0, low=-MAX_PRIORITY, high=MAX_PRIORITY, integer=True)
    raw_targets = r.get("targets", list)
    if not raw_targets:
        raise r.fail("targets", "at least one target is required")
    last = len(raw_targets) - 1
    targets = tuple(
        _target(Reader(r.source, raw, r.key(f"targets[{i}]")), queues, last=i == last)
        for i, raw in enumerate(raw_targets)
    )
    r.done()
    return _Rule(name=name, conditions=conditions, targets=targets, priority=priority)


def _target(t: Reader, queues: frozenset[str], *, last: bool) -> Target:
    strategy = t.text("strategy", "longest_idle", check=_one_of(STRATEGIES))
    target = Target(
        queue=_queue(t, queues),
        skills=_skills(t),
        location=_location(t),
        protocols=frozenset(_strings(t, "protocols", _valid_name)),
        agents=frozenset(_strings(t, "agents", _valid_name)),
        bots=_optional(t, "bots", bool),
        strategy=strategy,
        timeout_s=_timeout(t, last=last),
        broadcast=_broadcast(t, strategy),
    )
    t.done()
    return target


def _queue(t: Reader, queues: frozenset[str]) -> str | None:
    queue = _optional(t, "queue", str)
    if queue is not None and queue not in queues:
        known = ", ".join(sorted(queues)) or "none"
        raise t.fail("queue", f"names no configured queue: {queue!r} (queues: {known})")
    return queue


def _skills(t: Reader) -> dict[str, int]:
    table = t.get("skills", dict, {})
    prefix = t.key("skills")
    skills = {}
    for skill, level in table.items():
        path = _key(prefix, skill)
        if _valid_name(skill):
            raise ConfigError(t.source, path, f"{_valid_name(skill)} for a skill")
        if isinstance(level, bool) or not isinstance(level, int):
            raise ConfigError(t.source, path, f"must be an integer level, not {level!r}")
        if not 0 <= level <= MAX_SKILL_LEVEL:
            raise ConfigError(
                t.source, path, f"must be between 0 and {MAX_SKILL_LEVEL}, not {level}"
            )
        skills[skill] = level
    return skills


def _location(t: Reader) -> str | None:
    location = _optional(t, "location", str)
    if location is not None and location not in LOCATIONS:
        raise t.fail("location", _one_of(LOCATIONS)(location))
    return location


def _timeout(t: Reader, *, last: bool) -> float | None:
    if "timeout_s" not in t.table:
        if not last:
            raise t.fail(
                "timeout_s", "is required on every target but the last: when the next applies"
            )
        return None
    if last:
        raise t.fail(
            "timeout_s",
            "not allowed on the last target: there is no next target"
            " (the conversation stays here until its queue's max_wait_s)",
        )
    value = t.number("timeout_s", low=0, high=MAX_TIMEOUT_S)
    if value <= 0:
        raise t.fail("timeout_s", f"must be greater than 0, not {value:g}")
    return value


def _broadcast(t: Reader, strategy: str) -> int:
    if strategy != "broadcast":
        if "broadcast" in t.table:
            raise t.fail("broadcast", 'only with strategy = "broadcast"')
        return 1
    if "broadcast" not in t.table:
        raise t.fail(
            "broadcast",
            f"is required with strategy broadcast: agents rung at once"
            f" ({MIN_BROADCAST}-{MAX_BROADCAST})",
        )
    return t.number("broadcast", low=MIN_BROADCAST, high=MAX_BROADCAST, integer=True)
