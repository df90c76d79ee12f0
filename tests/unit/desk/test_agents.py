"""Canned responses, not-ready reasons and the states report, holiday closures."""

from __future__ import annotations

import pytest
from desk_helpers import make_desk, result_of

from gateway import config as gwconfig
from gateway.config import ConfigError
from gateway.core import events as ev
from gateway.core.errors import BadRequest
from gateway.desk import sql
from gateway.desk.canned import pick
from gateway.desk.records import Canned


def test_canned_responses_fill_in_the_customer(tmp_path):
    h = make_desk(tmp_path)
    engine = h.store.engine
    sql.canned_put(engine, Canned("hello", "Hello {customer}, I am {agent}. {unknown}"), 1.0)
    sql.canned_put(engine, Canned("bye", "Bye {customer}!", team="billing"), 1.0)
    cparty, _, _, anna, conv = h.connected("anna")
    result = result_of(h.desk.canned(anna, conv, "hello"))
    assert result["text"] == "Hello Dana, I am Anna A.. {unknown}"
    said = cparty.last(ev.Message)
    assert (said.msg, said.text) == (result["msg"], result["text"])
    # A team's response is not for agents outside the team.
    with pytest.raises(BadRequest, match="no canned response 'bye'"):
        result_of(h.desk.canned(anna, conv, "bye"))
    assert [c["name"] for c in result_of(h.desk.canned_list(anna))["responses"]] == ["hello"]
    team = [Canned("bye", "global"), Canned("bye", "team's", team="billing")]
    assert pick(team, "bye", frozenset({"billing"})).text == "team's"
    assert pick(team, "bye", frozenset()).text == "global"


def test_away_with_a_reason_and_the_states_report(tmp_path):
    h = make_desk(tmp_path)
    _, anna = h.agent("anna")
    h.clock.advance(100)
    result_of(h.desk.away(anna, "break"))
    assert h.directory.get("anna").presence.reason == "break"
    h.clock.advance(300)
    result_of(h.desk.away(anna, "training"))
    h.clock.advance(50)
    anna.set_presence("available")
    assert h.directory.get("anna").presence.reason == ""
    h.clock.advance(10)
    with pytest.raises(BadRequest, match="reason must be one of"):
        result_of(h.desk.away(anna, "nap"))
    report = sql.states_report(h.store.engine, 0, 1000, h.clock.seconds())
    assert report == [
        {"agent": "anna", "status": "available", "reason": None, "seconds": 110.0},
        {"agent": "anna", "status": "away", "reason": "break", "seconds": 300.0},
        {"agent": "anna", "status": "away", "reason": "training", "seconds": 50.0},
    ]
    anna.disconnected()
    assert h.sql("SELECT count(*) FROM agent_states WHERE ended IS NULL") == [(0,)]


def test_lapsed_offers_are_a_reason_of_their_own(tmp_path):
    h = make_desk(tmp_path)
    h.agent("anna")
    for _ in range(3):
        h.customer_as(None)
        h.clock.advance(h.gateway.config.offer_timeout_s)
    assert h.directory.get("anna").status == "away"
    assert h.directory.get("anna").presence.reason == "missed_offers"


def test_desk_settings_are_checked(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text('[desk]\naway_reasons = ["Break"]\n')
    with pytest.raises(ConfigError, match=r"desk\.away_reasons\[0\]"):
        gwconfig.load(site)
    site.write_text('[desk.offline]\nreply = "no reply here"\n')
    with pytest.raises(ConfigError, match="must contain \\{reply\\}"):
        gwconfig.load(site)
    site.write_text("[desk]\ndispositions = []\ndisposition_required = true\n")
    with pytest.raises(ConfigError, match="needs disposition codes"):
        gwconfig.load(site)
    site.write_text('[queues.general]\nholidays = ["2025-02-30"]\n')
    with pytest.raises(ConfigError, match=r"queues\.general\.holidays\[0\]: .* does not exist"):
        gwconfig.load(site)
    site.write_text("[desk.queues.sales]\ncsat = true\n")
    cfg = gwconfig.load(site)
    with pytest.raises(ConfigError, match=r"desk\.queues\.sales: names no queue"):
        cfg.sections["desk"].check_queues(cfg.queues, str(site))


def test_holidays_beside_the_weekly_hours(tmp_path):
    h = make_desk(tmp_path)
    queue = h.gateway.queues["general"]
    assert queue.config.hours.is_open(0)
    with pytest.raises(BadRequest, match="no such queue"):
        result_of(h.desk.calendar.add("sales", "1970-01-01"))
    with pytest.raises(BadRequest, match="is not like"):
        result_of(h.desk.calendar.add("general", "Christmas"))
    closure = result_of(h.desk.calendar.add("*", "1970-01-01 00:00-12:00", "New Year"))
    assert not queue.config.hours.is_open(0)
    assert queue.config.hours.is_open(13 * 3600)
    assert h.desk.calendar.view(0)["closures"][0]["name"] == "New Year"
    result_of(h.desk.calendar.remove(closure))
    assert queue.config.hours.is_open(0)


def test_dated_closures_parse_and_hold_in_the_queues_zone():
    import datetime as dt
    from zoneinfo import ZoneInfo

    from gateway.hours import Closure, Hours, HoursError

    paris = ZoneInfo("Europe/Paris")
    hours = Hours.parse(
        ["mon-fri 08:00-18:00"],
        "Europe/Paris",
        ["2025-12-25", "2025-12-24 14:00-24:00", "2025-12-29..2025-12-30"],
    )

    def at(*when: int) -> float:
        return dt.datetime(*when, tzinfo=paris).timestamp()

    assert hours.is_open(at(2025, 12, 24, 13, 59))
    assert not hours.is_open(at(2025, 12, 24, 14, 0))
    assert not hours.is_open(at(2025, 12, 25, 10, 0))
    assert hours.is_open(at(2025, 12, 26, 10, 0))
    assert not hours.is_open(at(2025, 12, 30, 17, 59))
    assert hours.is_open(at(2025, 12, 31, 9, 0))
    # Closures alone: open but on those days.
    only = Hours().with_closures([Closure.parse("2025-12-25")])
    assert only.is_open(at(2025, 12, 24, 23, 0)) and not only.is_open(at(2025, 12, 25, 12, 0))
    for bad in ("2025-13-01", "2025-12-26..2025-12-24", "2025-12-24 18:00-08:00", "Xmas"):
        with pytest.raises(HoursError):
            Closure.parse(bad)
