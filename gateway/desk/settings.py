"""The ``[desk]`` section: the service desk around a conversation.

Registered as the ``desk`` part (gateway/app/parts.py); ``Config.sections["desk"]`` is a
:class:`DeskSettings`. Per-queue choices go in ``[desk.queues.NAME]`` tables; the names
there are checked against ``[queues]`` when the desk starts (a ConfigError otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

from gateway.config import ConfigError, Reader

_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
OFFLINE_WHEN = ("closed", "no_agents", "timeout")
CSAT_AFTER = ("agent", "customer")


@attrs.frozen
class OfflineSettings:
    """``[desk.offline]``: messages customers leave when nobody can serve them."""

    enabled: bool = False
    when: tuple[str, ...] = OFFLINE_WHEN
    prompt: str = (
        "No agent can take your conversation now. Write a message and we will answer it;"
        " you will find the answer here when you come back. Or end the conversation."
    )
    thanks: str = "Thank you. We have your message and will answer it."
    reply: str = "While you were away, {agent} answered the message you left: {reply}"
    max_length: int = 2000
    task_timeout_s: float = 300.0
    answer_timeout_s: float = 600.0


@attrs.frozen
class CsatSettings:
    """``[desk.csat]``: the survey after a conversation."""

    enabled: bool = False
    after: tuple[str, ...] = CSAT_AFTER
    question: str = "How satisfied are you with this conversation? 1 (not at all) to 5 (very)."
    comment: str = "Anything you would like to add? Write it, or 'skip'."
    thanks: str = "Thank you for your feedback."
    timeout_s: float = 120.0
    max_comment: int = 1000


@attrs.frozen
class QueueDesk:
    """``[desk.queues.NAME]``: one queue's choices (None: the desk-wide default)."""

    dispositions: tuple[str, ...] | None = None
    disposition_required: bool | None = None
    csat: bool | None = None
    offline: bool | None = None


@attrs.frozen
class DeskSettings:
    """The whole ``[desk]`` section; the defaults here are the packaged ones."""

    dispositions: tuple[str, ...] = ("resolved", "follow_up", "escalated", "no_response")
    disposition_required: bool = False
    wrap_up_timeout_s: float = 300.0
    max_tags: int = 10
    max_tag_length: int = 32
    max_note: int = 2000
    away_reasons: tuple[str, ...] = (
        "break",
        "lunch",
        "meeting",
        "training",
        "after_call_work",
        "other",
    )
    history_limit: int = 5
    history_wait_s: float = 1.0
    supervisor_alias: str = "Supervisor"
    reload_s: float = 60.0
    max_canned: int = 4000
    offline: OfflineSettings = attrs.Factory(OfflineSettings)
    csat: CsatSettings = attrs.Factory(CsatSettings)
    queues: Mapping[str, QueueDesk] = attrs.Factory(dict)

    def queue(self, name: str | None) -> QueueDesk:
        """The choices of queue ``name`` (defaults for an unnamed one)."""
        return self.queues.get(name or "", QueueDesk())

    def codes(self, queue: str | None) -> tuple[str, ...]:
        """The disposition codes agents of ``queue`` choose from."""
        own = self.queue(queue).dispositions
        return self.dispositions if own is None else own

    def required(self, queue: str | None) -> bool:
        """Whether an agent must give a disposition after a conversation of ``queue``."""
        own = self.queue(queue).disposition_required
        return self.disposition_required if own is None else own

    def csat_for(self, queue: str | None) -> bool:
        """Whether customers of ``queue`` are asked the survey."""
        own = self.queue(queue).csat
        return self.csat.enabled if own is None else own

    def offline_for(self, queue: str | None) -> bool:
        """Whether customers of ``queue`` may leave a message when nobody can serve them."""
        own = self.queue(queue).offline
        return self.offline.enabled if own is None else own

    def check_queues(self, known: Mapping[str, object], source: str) -> None:
        """ConfigError for a ``[desk.queues.NAME]`` that names no queue."""
        for name in self.queues:
            if name not in known:
                raise ConfigError(source, f"desk.queues.{name}", f"names no queue: {name!r}")


def _codes(reader: Reader, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    values = reader.get(name, list, list(default))
    for i, value in enumerate(values):
        if not isinstance(value, str) or not _CODE.match(value):
            raise reader.fail(
                f"{name}[{i}]", "must be a code of a-z, 0-9, '_' and '-' (at most 32 characters)"
            )
    if len(set(values)) != len(values):
        raise reader.fail(name, "lists a code twice")
    return tuple(values)


def _choices(reader: Reader, name: str, default: tuple[str, ...], allowed: tuple[str, ...]):
    values = reader.get(name, list, list(default))
    for i, value in enumerate(values):
        if value not in allowed:
            raise reader.fail(f"{name}[{i}]", f"must be one of {', '.join(allowed)}")
    return tuple(values)


def _text(reader: Reader, name: str, default: str) -> str:
    return reader.text(name, default, check=lambda v: None if v.strip() else "must not be empty")


def _offline(r: Reader) -> OfflineSettings:
    d = OfflineSettings()
    reply = _text(r, "reply", d.reply)
    try:
        filled = reply.format(agent="", reply="\0")
    except (KeyError, IndexError, ValueError):
        raise r.fail("reply", "may use {agent} and {reply} only") from None
    if "\0" not in filled:
        raise r.fail("reply", "must contain {reply}")
    settings = OfflineSettings(
        enabled=r.get("enabled", bool, d.enabled),
        when=_choices(r, "when", d.when, OFFLINE_WHEN),
        prompt=_text(r, "prompt", d.prompt),
        thanks=_text(r, "thanks", d.thanks),
        reply=reply,
        max_length=r.number("max_length", d.max_length, low=1, high=65536, integer=True),
        task_timeout_s=r.number("task_timeout_s", d.task_timeout_s, low=1, high=86400),
        answer_timeout_s=r.number("answer_timeout_s", d.answer_timeout_s, low=1, high=86400),
    )
    r.done()
    return settings


def _csat(r: Reader) -> CsatSettings:
    d = CsatSettings()
    settings = CsatSettings(
        enabled=r.get("enabled", bool, d.enabled),
        after=_choices(r, "after", d.after, CSAT_AFTER),
        question=_text(r, "question", d.question),
        comment=_text(r, "comment", d.comment),
        thanks=_text(r, "thanks", d.thanks),
        timeout_s=r.number("timeout_s", d.timeout_s, low=1, high=86400),
        max_comment=r.number("max_comment", d.max_comment, low=1, high=65536, integer=True),
    )
    r.done()
    return settings


def _queue(r: Reader) -> QueueDesk:
    codes = _codes(r, "dispositions", ()) if "dispositions" in r.table else None
    queue = QueueDesk(
        dispositions=codes,
        disposition_required=r.get("disposition_required", bool, None),
        csat=r.get("csat", bool, None),
        offline=r.get("offline", bool, None),
    )
    r.done()
    return queue


def parse(reader: Reader) -> DeskSettings:
    """Read ``[desk]`` and its tables."""
    d = DeskSettings()
    r = reader
    queues_table = r.table_of("queues")
    queues = {name: _queue(queues_table.table_of(name)) for name in queues_table.table}
    queues_table.done()
    settings = DeskSettings(
        dispositions=_codes(r, "dispositions", d.dispositions),
        disposition_required=r.get("disposition_required", bool, d.disposition_required),
        wrap_up_timeout_s=r.number("wrap_up_timeout_s", d.wrap_up_timeout_s, low=1, high=86400),
        max_tags=r.number("max_tags", d.max_tags, low=0, high=100, integer=True),
        max_tag_length=r.number("max_tag_length", d.max_tag_length, low=1, high=200, integer=True),
        max_note=r.number("max_note", d.max_note, low=1, high=65536, integer=True),
        away_reasons=_codes(r, "away_reasons", d.away_reasons),
        history_limit=r.number("history_limit", d.history_limit, low=0, high=100, integer=True),
        history_wait_s=r.number("history_wait_s", d.history_wait_s, low=0, high=60),
        supervisor_alias=_text(r, "supervisor_alias", d.supervisor_alias),
        reload_s=r.number("reload_s", d.reload_s, low=1, high=86400),
        max_canned=r.number("max_canned", d.max_canned, low=1, high=65536, integer=True),
        offline=_offline(r.table_of("offline")),
        csat=_csat(r.table_of("csat")),
        queues=queues,
    )
    r.done()
    if settings.disposition_required and not settings.dispositions:
        raise r.fail("disposition_required", "needs disposition codes")
    for name, queue in queues.items():
        if queue.disposition_required and not settings.codes(name):
            raise ConfigError(
                r.source, f"desk.queues.{name}.disposition_required", "needs disposition codes"
            )
    return settings
