"""The pre-chat interview: configured questions, validated answers, re-asked when wrong."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from gateway.config import FieldConfig
from gateway.core.events import Choice, Prompt

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def prompt_for(field: FieldConfig, retry: bool = False) -> Prompt:
    """The prompt that asks ``field``; a retry leads with the field's retry text."""
    text = f"{field.retry} {field.prompt}" if retry else field.prompt
    if field.choices:
        # Numbered lines let plain-text clients answer by number.
        lines = [text] + [f"{i}. {c.label}" for i, c in enumerate(field.choices, 1)]
        text = "\n".join(lines)
    return Prompt(
        field=field.name,
        text=text,
        choices=tuple(Choice(value=c.value, label=c.label) for c in field.choices),
    )


def validate(field: FieldConfig, answer: str) -> str | None:
    """The normalised answer, or None when it does not fit the field."""
    answer = answer.strip()
    if not answer:
        return None if field.required else ""
    if field.kind == "choice":
        folded = answer.casefold()
        for i, choice in enumerate(field.choices, 1):
            if folded in (choice.value.casefold(), choice.label.casefold(), str(i)):
                return choice.value
        return None
    if len(answer) > field.max_length:
        return None
    if field.kind == "email" and not _EMAIL.match(answer):
        return None
    if field.pattern is not None and not re.fullmatch(field.pattern, answer):
        return None
    return answer


# Where an answer came from, for routing rules that trust only some (gateway.routing.rules):
INTERVIEW = "interview"  # a configured question, answered and validated
ACCOUNT = "account"  # verified: the customer's IM server, or the site's signed identity
CLAIM = "claim"  # anything else the customer's software sent


class Interview:
    """Walks a customer through the configured fields not already answered.

    ``verified`` are details the customer's connection proved (an attached IM server's
    account, a site-signed identity); they win over what the customer gave and are never
    asked. :attr:`sources` says where each answer came from.
    """

    def __init__(
        self,
        fields: Sequence[FieldConfig],
        given: Mapping[str, str],
        verified: Mapping[str, str] | None = None,
    ) -> None:
        known = {f.name for f in fields}
        verified = verified or {}
        # Extra identity details the customer offered are kept for the agent.
        self.answers: dict[str, str] = {k: v for k, v in given.items() if k not in known}
        self.sources: dict[str, str] = dict.fromkeys(self.answers, CLAIM)
        for field in fields:
            if field.name in given and field.name not in verified:
                value = validate(field, given[field.name])
                if value is not None:
                    self.answers[field.name] = value
                    self.sources[field.name] = INTERVIEW
        self.answers.update(verified)
        self.sources.update(dict.fromkeys(verified, ACCOUNT))
        # Answers given up front that did not validate are asked again.
        self._pending = [f for f in fields if f.name not in self.answers]

    @property
    def asking(self) -> str | None:
        """The field the current question asks, if any."""
        return self._pending[0].name if self._pending else None

    @property
    def done(self) -> bool:
        """True once every field has an answer."""
        return not self._pending

    def current(self) -> Prompt | None:
        """The question waiting for an answer, if any."""
        return prompt_for(self._pending[0]) if self._pending else None

    def answer(self, text: str) -> Prompt | None:
        """Take an answer to the current question; return the next prompt to send
        (the same question again, with the retry text, when the answer did not fit)."""
        if not self._pending:
            return None
        field = self._pending[0]
        value = validate(field, text)
        if value is None:
            return prompt_for(field, retry=True)
        self.answers[field.name] = value
        self.sources[field.name] = INTERVIEW
        self._pending.pop(0)
        return self.current()
