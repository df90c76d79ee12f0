"""Interview fields: validation, re-asking, answers given up front."""

from __future__ import annotations

from gateway.config import ChoiceConfig, FieldConfig
from gateway.core.interview import Interview, validate

COLOUR = FieldConfig(
    name="colour",
    prompt="Colour?",
    kind="choice",
    choices=(ChoiceConfig("red", "Bright red"), ChoiceConfig("blue", "Deep blue")),
)
EMAIL = FieldConfig(name="email", prompt="Email?", kind="email")
ORDER = FieldConfig(name="order", prompt="Order?", pattern=r"[A-Z]{2}\d{4}", max_length=6)
NOTE = FieldConfig(name="note", prompt="Anything else?", required=False)


def test_choice_by_value_label_or_number():
    assert validate(COLOUR, " RED ") == "red"
    assert validate(COLOUR, "deep blue") == "blue"
    assert validate(COLOUR, "2") == "blue"
    assert validate(COLOUR, "3") is None
    assert validate(COLOUR, "green") is None


def test_text_kinds():
    assert validate(EMAIL, "dana@example.org") == "dana@example.org"
    assert validate(EMAIL, "dana@") is None
    assert validate(ORDER, "AB1234") == "AB1234"
    assert validate(ORDER, "AB12345") is None  # too long
    assert validate(ORDER, "ab1234") is None
    assert validate(NOTE, "  ") == ""
    assert validate(EMAIL, "") is None


def test_walk_with_retry_and_up_front_answers():
    interview = Interview([COLOUR, EMAIL, ORDER], {"email": "bad", "colour": "red", "lang": "de"})
    # A given answer that does not validate is asked again; extra details are kept.
    assert interview.answers == {"colour": "red", "lang": "de"}
    assert interview.current().field == "email"
    retry = interview.answer("nope")
    assert retry.field == "email" and retry.text == "Sorry, I didn't get that. Email?"
    assert interview.answer("d@example.org").field == "order"
    assert not interview.done
    assert interview.answer("XY0001") is None
    assert interview.done
    assert interview.answers == {
        "colour": "red",
        "lang": "de",
        "email": "d@example.org",
        "order": "XY0001",
    }
