"""The ``[bots]`` configuration section: one table per built-in bot (today ``[bots.faq]``).

Registered as the ``bots`` part (gateway/app/parts.py);
``Config.sections["bots"]`` is then the FAQ bot's :class:`FaqSettings`, or None when the
bot is not enabled.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from gateway.bots.knowledge import KnowledgeBase, load
from gateway.config import ConfigError, Reader

# The same rule as agent and queue names in gateway.config.
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
DEFAULT_HANDOVER_WORDS = ("agent", "human", "person", "operator")


@attrs.frozen
class FaqSettings:
    """The FAQ bot's settings and its loaded knowledge base.

    Defaults here are the defaults of ``[bots.faq]``.
    """

    enabled: bool = False
    name: str = "faq-bot"
    alias: str = "Help Bot"
    capacity: int = 50
    knowledge: Path = Path("etc/faq.toml")
    greeting: str = "Hello! I am the help bot. Ask me a question, or say 'agent' for a person."
    follow_up: str = "Did that answer your question? Say 'agent' to talk to a person."
    no_answer: str = (
        "Sorry, I don't know the answer to that. Could you ask it another way? "
        "Say 'agent' to talk to a person."
    )
    handover_words: tuple[str, ...] = DEFAULT_HANDOVER_WORDS
    handover_text: str = "Let me connect you with a person. They will see what we have said so far."
    handover_queue: str = "general"
    max_misses: int = 2
    min_score: float = 1.0
    base: KnowledgeBase = attrs.Factory(KnowledgeBase)


def _name(value: str) -> str | None:
    if _NAME.match(value):
        return None
    return f"{value!r} is not a valid name (lowercase letters, digits, '-' and '_')"


def _non_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def parse(reader: Reader) -> FaqSettings | None:
    """Read ``[bots]``; the FAQ bot's settings, or None when ``[bots.faq]`` is not enabled.

    Every key is checked even when the bot is off; the knowledge file is read only when
    it is on, so a bad file stops startup with one ConfigError like any other setting.
    """
    faq = reader.table_of("faq")
    # Any other table under [bots] names a bot that does not exist.
    reader.done()
    d = FaqSettings()
    r = faq
    enabled = r.get("enabled", bool, d.enabled)
    words = r.get("handover_words", list, list(d.handover_words))
    for i, w in enumerate(words):
        if not isinstance(w, str) or not w.strip():
            raise r.fail(f"handover_words[{i}]", "must be a non-empty string")
    knowledge = Path(r.text("knowledge", str(d.knowledge), check=_non_empty))
    settings = FaqSettings(
        enabled=enabled,
        name=r.text("name", d.name, check=_name),
        alias=r.text("alias", d.alias, check=_non_empty),
        capacity=r.number("capacity", d.capacity, low=1, high=100_000, integer=True),
        knowledge=knowledge,
        greeting=r.text("greeting", d.greeting),
        follow_up=r.text("follow_up", d.follow_up),
        no_answer=r.text("no_answer", d.no_answer, check=_non_empty),
        handover_words=tuple(w.strip() for w in words),
        handover_text=r.text("handover_text", d.handover_text),
        handover_queue=r.text("handover_queue", d.handover_queue, check=_name),
        max_misses=r.number("max_misses", d.max_misses, low=1, high=1000, integer=True),
        min_score=r.number("min_score", d.min_score, low=0.01, high=1000),
    )
    r.done()
    if not enabled:
        return None
    if not knowledge.is_file():
        # Relative to the working directory, as gateway.data_dir is.
        raise ConfigError(r.source, r.key("knowledge"), f"no such file: {knowledge}")
    return attrs.evolve(settings, base=load(knowledge))
