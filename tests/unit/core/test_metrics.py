"""Metrics: live figures read at scrape time, and the counters events feed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from core_helpers import make_harness
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.core import events as ev
from gateway.metrics import LiveStateCollector

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def h():
    """A core harness whose registry also has the live-state collector."""
    harness = make_harness()
    harness.gateway.metrics.watch(
        LiveStateCollector(
            harness.gateway, harness.directory, harness.clock, connections=lambda: {"jsonim": 3}
        )
    )
    return harness


def scrape(h) -> dict[tuple[str, tuple], float]:
    """Every sample of the gateway's registry: {(name, sorted labels): value}."""
    text = generate_latest(h.gateway.metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_queue_agent_and_conversation_figures_follow_the_live_state(h):
    before = scrape(h)
    assert before[("imgateway_queue_depth", (("queue", "general"),))] == 0
    assert before[("imgateway_agents", (("state", "available"),))] == 0
    assert before[("imgateway_connections", (("listener", "jsonim"),))] == 3

    h.queued_customer()
    h.clock.advance(7)
    h.queued_customer("Eve")
    waiting = scrape(h)
    assert waiting[("imgateway_queue_depth", (("queue", "general"),))] == 2
    assert waiting[("imgateway_queue_oldest_wait_seconds", (("queue", "general"),))] == 7
    assert waiting[("imgateway_conversations", (("state", "queued"),))] == 2

    _party, _ = h.agent("anna")
    offered = scrape(h)
    assert offered[("imgateway_agents", (("state", "full"),))] == 1
    assert offered[("imgateway_offers_total", ())] == 2
    assert offered[("imgateway_conversations", (("state", "offered"),))] == 2
    assert offered[("imgateway_queue_depth", (("queue", "general"),))] == 2


def test_offer_outcomes_waits_messages_and_handle_times_are_counted(h):
    anna, anna_session = h.agent("anna")
    _customer, session = h.queued_customer()
    offer = anna.last(ev.Offer)
    anna_session.reject(offer.offer)
    h.clock.advance(30)  # nobody else: it is offered again once the ring is over
    bob, bob_session = h.agent("bob")
    h.clock.advance(5)
    bob_session.accept(bob.last(ev.Offer).offer)
    session.say("hello")
    bob_session.say(session.conversation.id, "hi, Bob here")
    h.clock.advance(60)
    bob_session.end(session.conversation.id)
    figures = scrape(h)
    assert figures[("imgateway_offer_rejects_total", ())] == 1
    assert figures[("imgateway_offer_accepts_total", ())] == 1
    assert figures[("imgateway_wait_seconds_count", (("queue", "general"),))] == 1
    assert figures[("imgateway_wait_seconds_sum", (("queue", "general"),))] == 35
    assert figures[("imgateway_handle_seconds_sum", (("queue", "general"),))] == 60
    messages = ("imgateway_messages_total", (("protocol", "jsonim"), ("sender", "customer")))
    assert figures[messages] >= 1
    agent_lines = ("imgateway_messages_total", (("protocol", "jsonim"), ("sender", "agent")))
    assert figures[agent_lines] == 1
    assert figures[("imgateway_routing_decisions_total", (("source", "local"),))] == 1
    assert figures[("imgateway_routing_decision_seconds_count", ())] == 1


def test_lapsed_offers_are_counted(h):
    h.agent("anna")
    h.queued_customer()
    h.clock.advance(h.gateway.config.offer_timeout_s + 0.1)
    assert scrape(h)[("imgateway_offer_timeouts_total", ())] == 1


def test_each_gateway_has_its_own_registry():
    one, two = make_harness(), make_harness()
    assert one.gateway.metrics.registry is not two.gateway.metrics.registry
    one.gateway.metrics.firewall_connections.labels("jsonim", "drop").inc()
    text = generate_latest(one.gateway.metrics.registry).decode()
    assert 'imgateway_firewall_connections_total{listener="jsonim",verdict="drop"} 1.0' in text
    assert (
        "imgateway_firewall_connections_total{"
        not in generate_latest(two.gateway.metrics.registry).decode()
    )


def test_the_grafana_dashboard_uses_only_metrics_we_export(h):
    dashboard = json.loads((REPO / "etc" / "grafana-imgateway.json").read_text())
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    exported = {
        family.name + suffix
        for family in h.gateway.metrics.registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(imgateway_[a-z_]+)", target["expr"])
    }
    assert used, dashboard
    assert used <= exported, sorted(used - exported)


def test_the_reported_states_are_the_cores():
    from gateway.core import conversation
    from gateway.desk.context import LEAVING_MESSAGE, SURVEY
    from gateway.metrics import CONVERSATION_STATES

    live = (conversation.INTERVIEW, conversation.QUEUED, conversation.OFFERED)
    assert CONVERSATION_STATES == (*live, conversation.CONNECTED, SURVEY, LEAVING_MESSAGE)
