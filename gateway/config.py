"""Configuration: packaged defaults, merged with a site TOML file, validated once.

A bad file yields one :class:`ConfigError` naming the file, the key and the problem.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from gateway.hours import Closure, Hours, HoursError
from gateway.plugins import parts

SITE_CONFIG = Path("etc/imgateway.toml")
LOG_LEVELS = ("debug", "info", "warn", "error")
LOG_FORMATS = ("text", "json")
FIELD_KINDS = ("text", "choice", "email")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class ConfigError(Exception):
    """A configuration problem, rendered as ``file: key: problem``."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}")
        self.source, self.key, self.problem = source, key, problem


@attrs.frozen
class ChoiceConfig:
    """One allowed answer of a choice field."""

    value: str
    label: str


@attrs.frozen
class FieldConfig:
    """One interview question."""

    name: str
    prompt: str
    kind: str = "text"
    choices: tuple[ChoiceConfig, ...] = ()
    required: bool = True
    max_length: int = 200
    pattern: str | None = None
    retry: str = "Sorry, I didn't get that."


@attrs.frozen
class QueueConfig:
    """A queue customers wait in for an agent."""

    name: str
    topics: tuple[str, ...] = ()
    max_waiting: int = 1000
    max_wait_s: float = 900.0
    expected_wait_s: float = 60.0
    hours: Hours = attrs.field(factory=Hours)
    overflow: str | None = None
    # relay: the gateway hosts the conversation; redirect: after routing, the customer
    # is given the agent's public address and the IM server hosts the rest.
    hosting: str = "relay"
    # Skill -> minimum level an agent needs to serve this queue (beside its teams).
    skills: Mapping[str, int] = attrs.field(factory=dict)


@attrs.frozen
class Config:
    """The whole validated configuration."""

    sources: tuple[str, ...]
    name: str
    data_dir: Path
    log_level: str
    listeners: Mapping[str, tuple[str, ...]]
    default_capacity: int
    offer_timeout_s: float
    wrap_up_s: float
    max_lapsed_offers: int
    login_failures_free: int
    login_lockout_max_s: float
    default_queue: str
    when_no_agents: str
    rules_file: Path | None
    sticky_s: float
    remote_url: str
    remote_token: str
    remote_deadline_s: float
    queues: Mapping[str, QueueConfig]
    greeting: str
    answer_timeout_s: float
    fields: tuple[FieldConfig, ...]
    sections: Mapping[str, Any] = attrs.field(factory=dict)
    # Seconds a dropped or restart-interrupted conversation waits for its customer
    # (and, after a restart, its agent) to come back; 0 ends it at once.
    resume_grace_s: float = 120.0
    # [logging] format and file, [gateway] shutdown_deadline_s.
    log_format: str = "text"
    log_file: str = ""
    shutdown_deadline_s: float = 10.0
    # Events the routing server's feed holds while the server is away (then the oldest go).
    feed_max_events: int = 100_000

    def queue_for_topic(self, topic: str | None) -> str:
        """The queue a customer's topic leads to."""
        if topic:
            if topic in self.queues:
                return topic
            for queue in self.queues.values():
                if topic in queue.topics:
                    return queue.name
        return self.default_queue


@attrs.frozen
class Layers:
    """Packaged defaults merged with a site file: the data and where it came from."""

    data: dict
    sources: tuple[str, ...]
    # The site file (or "packaged defaults"), named in errors.
    source: str
    site: Path | None


def read_layers(
    package: str, path: str | Path | None, cwd: Path | None, site_config: Path
) -> Layers:
    """``package``'s defaults.toml, merged with ``path`` or else ``cwd/site_config``."""
    defaults = resources.files(package).joinpath("defaults.toml").read_text("utf-8")
    merged = tomllib.loads(defaults)
    sources = ["packaged defaults"]
    site: Path | None = None
    if path is not None:
        site = Path(path)
        if not site.is_file():
            raise ConfigError(str(site), "-", "no such file")
    else:
        candidate = (cwd or Path.cwd()) / site_config
        if candidate.is_file():
            site = candidate
    source = "packaged defaults"
    if site is not None:
        source = str(site)
        try:
            data = tomllib.loads(site.read_text("utf-8"))
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(source, "-", f"cannot read: {e}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(source, "-", f"not valid TOML: {e}") from None
        _merge(merged, data)
        sources.append(source)
    return Layers(data=merged, sources=tuple(sources), source=source, site=site)


def load(path: str | Path | None = None, cwd: Path | None = None) -> Config:
    """Packaged defaults, merged with ``path`` or else ``./etc/imgateway.toml`` if present."""
    layers = read_layers("gateway", path, cwd, SITE_CONFIG)
    return _validate(layers.data, layers.sources, layers.source)


def _merge(base: dict, over: Mapping) -> None:
    # Tables merge key by key; anything else (lists included) replaces.
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


class Reader:
    """Takes typed values out of one table, remembering the key path for errors.

    Each part parses its own sections with it (see :mod:`gateway.plugins`).
    """

    def __init__(self, source: str, table: Any, prefix: str) -> None:
        self.source, self.prefix = source, prefix
        if not isinstance(table, dict):
            raise ConfigError(source, prefix, "must be a table")
        self.table = table
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str, problem: str) -> ConfigError:
        return ConfigError(self.source, self.key(name), problem)

    def get(self, name: str, kind: type | tuple, default: Any = attrs.NOTHING) -> Any:
        self.seen.add(name)
        if name not in self.table:
            if default is attrs.NOTHING:
                raise self.fail(name, "is required")
            return default
        value = self.table[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; TOML keeps them apart, so do we.
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(name, f"must be {_kind_name(kinds)}, not a boolean")
        if not isinstance(value, kinds):
            raise self.fail(name, f"must be {_kind_name(kinds)}, not {type(value).__name__}")
        return value

    def number(
        self,
        name: str,
        default: Any = attrs.NOTHING,
        *,
        low: float = 0,
        high: float = 1e9,
        integer: bool = False,
    ) -> Any:
        value = self.get(name, int if integer else (int, float), default)
        if not low <= value <= high:
            raise self.fail(name, f"must be between {low:g} and {high:g}, not {value}")
        return int(value) if integer else float(value)

    def text(
        self,
        name: str,
        default: Any = attrs.NOTHING,
        *,
        check: Callable[[str], str | None] | None = None,
    ) -> str:
        value = self.get(name, str, default)
        problem = check(value) if check else None
        if problem:
            raise self.fail(name, problem)
        return value

    def table_of(self, name: str) -> Reader:
        self.seen.add(name)
        return Reader(self.source, self.table.get(name, {}), self.key(name))

    def done(self) -> None:
        for name in self.table:
            if name not in self.seen:
                raise self.fail(name, "unknown key")


def _kind_name(kinds: tuple) -> str:
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        list: "a list",
        dict: "a table",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _one_of(options: tuple[str, ...]) -> Callable[[str], str | None]:
    return lambda v: None if v in options else f"must be one of {', '.join(options)}, not {v!r}"


def _valid_name(value: str) -> str | None:
    if _NAME.match(value):
        return None
    return f"{value!r} is not a valid name (lowercase letters, digits, '-' and '_')"


def _validate(data: dict, sources: tuple[str, ...], source: str) -> Config:
    root = Reader(source, data, "")

    gw = root.table_of("gateway")
    name = gw.text("name", check=lambda v: None if v.strip() else "must not be empty")
    data_dir = Path(gw.text("data_dir", check=lambda v: None if v else "must not be empty"))
    resume_grace_s = gw.number("resume_grace_s", 120, low=0, high=86400)
    shutdown_deadline_s = gw.number("shutdown_deadline_s", 10, low=0.1, high=3600)
    gw.done()

    logging = root.table_of("logging")
    log_level = logging.text("level", check=_one_of(LOG_LEVELS))
    log_format = logging.text("format", "text", check=_one_of(LOG_FORMATS))
    log_file = logging.text("file", "")
    logging.done()

    found = parts()
    lis = root.table_of("listeners")
    listeners: dict[str, tuple[str, ...]] = {}
    kinds = sorted(kind for part in found for kind in getattr(part, "listeners", {}))
    for proto in kinds:
        endpoints = lis.get(proto, list, [])
        for i, ep in enumerate(endpoints):
            if not isinstance(ep, str) or not ep:
                raise lis.fail(f"{proto}[{i}]", "must be a Twisted endpoint string")
        listeners[proto] = tuple(endpoints)
    lis.done()

    ag = root.table_of("agents")
    default_capacity = ag.number("default_capacity", low=1, high=1000, integer=True)
    offer_timeout_s = ag.number("offer_timeout_s", low=1, high=3600)
    wrap_up_s = ag.number("wrap_up_s", 0, low=0, high=3600)
    max_lapsed_offers = ag.number("max_lapsed_offers", 3, low=1, high=1000, integer=True)
    login_failures_free = ag.number("login_failures_free", 5, low=1, high=1000, integer=True)
    login_lockout_max_s = ag.number("login_lockout_max_s", 300, low=1, high=86400)
    ag.done()

    qs = root.table_of("queues")
    queues: dict[str, QueueConfig] = {}
    for qname in qs.table:
        if _valid_name(qname):
            raise qs.fail(qname, _valid_name(qname))
        q = qs.table_of(qname)
        topics = q.get("topics", list, [])
        if not all(isinstance(t, str) for t in topics):
            raise q.fail("topics", "must be a list of strings")
        queues[qname] = QueueConfig(
            name=qname,
            topics=tuple(topics),
            max_waiting=q.number("max_waiting", 1000, low=1, high=10_000_000, integer=True),
            max_wait_s=q.number("max_wait_s", 900, low=1, high=7 * 86400),
            expected_wait_s=q.number("expected_wait_s", 60, low=0, high=86400),
            hours=_hours(q),
            overflow=q.text("overflow", "") or None,
            hosting=q.text("hosting", "relay", check=_one_of(("relay", "redirect"))),
            skills=_queue_skills(q),
        )
        q.done()
    qs.done()
    if not queues:
        raise ConfigError(source, "queues", "at least one queue is required")

    rt = root.table_of("routing")
    default_queue = rt.text("default_queue")
    if default_queue not in queues:
        raise rt.fail("default_queue", f"names no queue: {default_queue!r}")
    when_no_agents = rt.text("when_no_agents", check=_one_of(("wait", "end")))
    rules_file = rt.text("rules", "")
    sticky_s = rt.number("sticky_s", 0, low=0, high=30 * 86400)
    remote_url = rt.text(
        "remote_url",
        "",
        check=lambda v: (
            None
            if not v or v.startswith(("http://", "https://"))
            else "must be an http:// or https:// URL"
        ),
    )
    # A secret in the environment wins over the file, as for twistd imrouter.
    file_token = rt.text("remote_token", "")
    remote_token = os.environ.get("IMGATEWAY_ROUTER_TOKEN") or file_token
    remote_deadline_s = rt.number("remote_deadline_s", 0.5, low=0.01, high=60)
    feed_max_events = rt.number("feed_max_events", 100_000, low=100, high=10_000_000, integer=True)
    rt.done()
    for queue in queues.values():
        if queue.overflow is not None and queue.overflow not in queues:
            raise ConfigError(
                source, f"queues.{queue.name}.overflow", f"names no queue: {queue.overflow!r}"
            )

    iv = root.table_of("interview")
    greeting = iv.text("greeting", "")
    answer_timeout_s = iv.number("answer_timeout_s", 600, low=1, high=86400)
    raw_fields = iv.get("fields", list, [])
    fields = tuple(_field(source, f"interview.fields[{i}]", f) for i, f in enumerate(raw_fields))
    names = [f.name for f in fields]
    for i, n in enumerate(names):
        if n in names[:i]:
            raise ConfigError(source, f"interview.fields[{i}].name", f"duplicate field {n!r}")
    iv.done()

    # Each part (a protocol adapter, the store, the admin API...) parses its own.
    sections = {}
    for part in found:
        for section, parse in part.sections.items():
            sections[section] = parse(root.table_of(section))

    root.done()
    return Config(
        sections=sections,
        resume_grace_s=resume_grace_s,
        sources=sources,
        name=name,
        data_dir=data_dir,
        log_level=log_level,
        listeners=listeners,
        default_capacity=default_capacity,
        offer_timeout_s=offer_timeout_s,
        wrap_up_s=wrap_up_s,
        max_lapsed_offers=max_lapsed_offers,
        login_failures_free=login_failures_free,
        login_lockout_max_s=login_lockout_max_s,
        rules_file=Path(rules_file) if rules_file else None,
        sticky_s=sticky_s,
        remote_url=remote_url,
        remote_token=remote_token,
        remote_deadline_s=remote_deadline_s,
        default_queue=default_queue,
        when_no_agents=when_no_agents,
        queues=queues,
        greeting=greeting,
        answer_timeout_s=answer_timeout_s,
        fields=fields,
        log_format=log_format,
        log_file=log_file,
        shutdown_deadline_s=shutdown_deadline_s,
        feed_max_events=feed_max_events,
    )


def _queue_skills(q: Reader) -> dict[str, int]:
    table = q.get("skills", dict, {})
    for skill, level in table.items():
        if _valid_name(skill):
            raise q.fail(f"skills.{skill}", f"{_valid_name(skill)} for a skill")
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 5:
            raise q.fail(f"skills.{skill}", f"must be a level from 0 to 5, not {level!r}")
    return dict(table)


def _hours(q: Reader) -> Hours:
    lines = q.get("hours", list, [])
    if not all(isinstance(line, str) for line in lines):
        raise q.fail("hours", "must be a list of strings like 'mon-fri 08:00-18:00'")
    zone = q.text("timezone", "UTC")
    try:
        hours = Hours.parse(lines, zone)
    except HoursError as e:
        raise q.fail("hours" if lines else "timezone", str(e)) from None
    # Dated closures beside the weekly hours (gateway.hours.Closure).
    holidays = q.get("holidays", list, [])
    closures = []
    for i, text in enumerate(holidays):
        try:
            closures.append(Closure.parse(text if isinstance(text, str) else ""))
        except HoursError as e:
            raise q.fail(f"holidays[{i}]", str(e)) from None
    return hours.with_closures(closures)


def _field(source: str, prefix: str, table: Any) -> FieldConfig:
    f = Reader(source, table, prefix)
    kind = f.text("kind", "text", check=_one_of(FIELD_KINDS))
    raw_choices = f.get("choices", list, [])
    choices = []
    for i, c in enumerate(raw_choices):
        c_reader = Reader(source, c, f"{prefix}.choices[{i}]")
        value = c_reader.text("value", check=lambda v: None if v else "must not be empty")
        choices.append(ChoiceConfig(value=value, label=c_reader.text("label", value)))
        c_reader.done()
    if kind == "choice" and not choices:
        raise f.fail("choices", "a choice field needs at least one choice")
    if kind != "choice" and choices:
        raise f.fail("choices", f"only a choice field has choices, this one is {kind!r}")
    pattern = f.get("pattern", str, None)
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as e:
            raise f.fail("pattern", f"not a valid regular expression: {e}") from None
    field = FieldConfig(
        name=f.text("name", check=_valid_name),
        prompt=f.text("prompt", check=lambda v: None if v.strip() else "must not be empty"),
        kind=kind,
        choices=tuple(choices),
        required=f.get("required", bool, True),
        max_length=f.number("max_length", 200, low=1, high=65536, integer=True),
        pattern=pattern,
        retry=f.text("retry", "Sorry, I didn't get that."),
    )
    f.done()
    return field
