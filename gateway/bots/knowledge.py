"""The FAQ bot's knowledge base: entries loaded from TOML, and the scored matcher.

A customer's line is scored against every entry; the bot answers with the best entry
when its score reaches the configured threshold. The score adds up:

- ``KEYWORD_WEIGHT`` for each of the entry's keywords found in the line (a keyword of
  several words must appear as those words in a row);
- ``PATTERN_WEIGHT`` once when any of the entry's regular expressions matches;
- up to ``QUESTION_WEIGHT`` for the share of the entry's question's content words (not
  stop words) that the line contains.

Words are runs of letters and digits, casefolded; there is no stemming, so keywords list
the forms customers use ("refund", "refunds").
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from gateway.config import ConfigError, Reader

KEYWORD_WEIGHT = 1.0
PATTERN_WEIGHT = 2.0
QUESTION_WEIGHT = 1.0
# Only this much of a line is matched: questions are short, and a bound keeps an
# operator's regular expression from spending unbounded time on a huge message.
MAX_TEXT = 2000

_WORD = re.compile(r"\w+")
# Words that say nothing about what is asked; left out of the question overlap only.
STOP_WORDS = frozenset(
    """
    a about am an and any are as at be can could did do does for from get got have how
    i if in is it its me my of on or our please so that the their there this to us was
    we what when where which who why will with would you your
    """.split()
)


def words(text: str) -> tuple[str, ...]:
    """The casefolded words of ``text``, in order."""
    return tuple(_WORD.findall(text[:MAX_TEXT].casefold()))


def _contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    """Whether ``needle`` occurs in ``haystack`` as consecutive words."""
    n = len(needle)
    if n == 1:
        return needle[0] in haystack
    return any(tuple(haystack[i : i + n]) == tuple(needle) for i in range(len(haystack) - n + 1))


def contains_phrase(text_words: Sequence[str], phrases: Sequence[tuple[str, ...]]) -> bool:
    """Whether any of ``phrases`` (each a tuple of words) occurs in ``text_words``."""
    return any(_contains(text_words, p) for p in phrases if p)


@attrs.frozen
class Entry:
    """One question the bot can answer."""

    question: str
    answer: str
    keywords: tuple[tuple[str, ...], ...] = ()
    patterns: tuple[re.Pattern[str], ...] = ()
    # The question's content words, for the overlap part of the score.
    question_words: frozenset[str] = attrs.field()

    @question_words.default
    def _question_words(self) -> frozenset[str]:
        return frozenset(words(self.question)) - STOP_WORDS

    @classmethod
    def of(
        cls,
        question: str,
        answer: str,
        keywords: Sequence[str] = (),
        patterns: Sequence[str] = (),
    ) -> Entry:
        """Build an entry from plain strings, as the TOML file gives them."""
        return cls(
            question=question,
            answer=answer,
            keywords=tuple(words(k) for k in keywords),
            patterns=tuple(re.compile(p, re.IGNORECASE) for p in patterns),
        )

    def score(self, text: str, text_words: Sequence[str] | None = None) -> float:
        """How well ``text`` asks this entry's question; 0 for not at all."""
        if text_words is None:
            text_words = words(text)
        score = KEYWORD_WEIGHT * sum(1 for k in self.keywords if _contains(text_words, k))
        clipped = text[:MAX_TEXT]
        if any(p.search(clipped) for p in self.patterns):
            score += PATTERN_WEIGHT
        if self.question_words:
            shared = self.question_words.intersection(text_words)
            score += QUESTION_WEIGHT * len(shared) / len(self.question_words)
        return score


@attrs.frozen
class Match:
    """The best entry for a line, its score, and its place in the file (from 0)."""

    entry: Entry
    score: float
    index: int


@attrs.frozen
class KnowledgeBase:
    """The entries, in file order; ties go to the earlier entry."""

    entries: tuple[Entry, ...] = ()

    def best(self, text: str) -> Match | None:
        """The highest scoring entry for ``text``, or None when nothing scores at all."""
        text_words = words(text)
        best: Match | None = None
        for i, entry in enumerate(self.entries):
            score = entry.score(text, text_words)
            if score > 0 and (best is None or score > best.score):
                best = Match(entry, score, i)
        return best


def load(path: str | Path) -> KnowledgeBase:
    """Read and validate a knowledge file; raises ConfigError naming file, key and problem."""
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(source, "-", "no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(source, "-", f"cannot read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, "-", f"not valid TOML: {e}") from None
    return parse(source, data)


def parse(source: str, data: dict[str, Any]) -> KnowledgeBase:
    """Validate parsed TOML (``[[faq]]`` tables) into a :class:`KnowledgeBase`."""
    root = Reader(source, data, "")
    raw = root.get("faq", list)
    root.done()
    if not raw:
        raise root.fail("faq", "needs at least one [[faq]] entry")
    return KnowledgeBase(tuple(_entry(source, f"faq[{i}]", t) for i, t in enumerate(raw)))


def _non_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _strings(r: Reader, name: str) -> list[str]:
    values = r.get(name, list, [])
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise r.fail(f"{name}[{i}]", f"must be a string, not {type(v).__name__}")
    return values


def _entry(source: str, prefix: str, table: Any) -> Entry:
    r = Reader(source, table, prefix)
    question = r.text("question", check=_non_empty)
    answer = r.text("answer", check=_non_empty)
    keywords = _strings(r, "keywords")
    for i, k in enumerate(keywords):
        if not words(k):
            raise r.fail(f"keywords[{i}]", f"{k!r} has no words to match")
    patterns = _strings(r, "patterns")
    for i, p in enumerate(patterns):
        if not p:
            raise r.fail(f"patterns[{i}]", "must not be empty (it would match everything)")
        try:
            re.compile(p, re.IGNORECASE)
        except re.error as e:
            raise r.fail(f"patterns[{i}]", f"not a valid regular expression: {e}") from None
    r.done()
    entry = Entry.of(question, answer, keywords, patterns)
    if not (entry.keywords or entry.patterns or entry.question_words):
        raise r.fail("keywords", "the entry can never match: give keywords or patterns")
    return entry
