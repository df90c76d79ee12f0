"""TokenBucket: average rate, bursts, and an injected clock; the escaping log observer."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel, formatEvent, globalLogPublisher

from firewall.common import TokenBucket, log_escape, log_observer


def test_burst_then_refused() -> None:
    bucket = TokenBucket(rate=1, burst=3, clock=Clock())
    assert [bucket.consume() for _ in range(4)] == [True, True, True, False]


def test_refills_at_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=5, burst=1, clock=clock)
    assert bucket.consume()
    clock.advance(0.1)
    assert not bucket.consume()
    clock.advance(0.1)
    assert bucket.consume()
    assert not bucket.consume()


def test_refill_is_capped_at_the_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=2, clock=clock)
    clock.advance(3600)
    assert [bucket.consume() for _ in range(3)] == [True, True, False]


def test_fractional_rate_sums_over_many_steps() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=0.3, burst=1, clock=clock)
    assert bucket.consume()
    for _ in range(9):
        clock.advance(1 / 3)
        assert not bucket.consume()
    # Ten thirds of a second at 0.3 a second make one unit, float rounding or not.
    clock.advance(1 / 3)
    assert bucket.consume()


def test_consume_several() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=1, burst=5, clock=clock)
    assert bucket.consume(3)
    assert not bucket.consume(3)
    assert bucket.consume(2)
    clock.advance(2)
    assert bucket.consume(2)
    assert not bucket.consume(1)


def test_clock_stepping_back_neither_refills_nor_drains() -> None:
    clock = Clock()
    clock.advance(100)
    bucket = TokenBucket(rate=1, burst=2, clock=clock)
    assert bucket.consume()
    clock.rightNow = 50.0
    assert bucket.consume()
    assert not bucket.consume()
    clock.advance(1)
    assert bucket.consume()


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_rejects_useless_settings(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst, clock=Clock())


# -- log escaping ------------------------------------------------------------------------


def test_log_escape_keeps_plain_text_and_escapes_what_could_forge_a_line() -> None:
    plain = "Dana Müller 2.3"
    assert log_escape(plain) is plain
    assert log_escape("a\nb\r\u2028c\x1b[2J\x85\u202e") == "a\\nb\\r\\u2028c\\x1b[2J\\x85\\u202e"
    assert log_escape("user=root address=6.6.6.6") == "user\\x3droot address\\x3d6.6.6.6"
    assert log_escape("a b\\x0a", token=True) == "a\\x20b\\\\x0a"
    assert log_escape("\u00a0\t\U0001f600") == "\\xa0\\t\U0001f600"


def test_the_product_log_observer_escapes_every_text_value() -> None:
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        Logger(observer=log_observer).info(
            "opened for {client} user={user} rule={rule}",
            client="x\naddress=6.6.6.6 y",
            user="a b",
            rule=3,
        )
    finally:
        globalLogPublisher.removeObserver(events.append)
    (event,) = [e for e in events if e.get("log_format", "").startswith("opened for")]
    assert formatEvent(event) == "opened for x\\naddress\\x3d6.6.6.6 y user=a\\x20b rule=3"


def test_the_firewalls_own_lines_pass_as_they_are() -> None:
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        log_observer(
            {
                "log_format": "x {v}",
                "log_safe": True,
                "v": "a=b",
                "log_level": LogLevel.info,
                "log_namespace": "firewall.engine.Firewall",
            }
        )
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert [e["v"] for e in events if e.get("log_format") == "x {v}"] == ["a=b"]
