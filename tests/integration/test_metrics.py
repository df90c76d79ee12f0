"""The metrics listener of a real gateway: a scrape during a conversation shows the
queue, agent and message figures moving."""

from __future__ import annotations

import harness
from jsonim_client import exchange
from ops_helpers import agent, queued_customer, scrape, take_offer

PASSWORD = "anna-Secret-1"
DEPTH = 'imgateway_queue_depth{queue="general"}'
OLDEST = 'imgateway_queue_oldest_wait_seconds{queue="general"}'
AVAILABLE = 'imgateway_agents{state="available"}'
QUEUED = 'imgateway_conversations{state="queued"}'
CONNECTED = 'imgateway_conversations{state="connected"}'
CUSTOMER_LINES = 'imgateway_messages_total{protocol="jsonim",sender="customer"}'
AGENT_LINES = 'imgateway_messages_total{protocol="jsonim",sender="agent"}'
CONNECTIONS = 'imgateway_connections{listener="jsonim"}'


def test_scrapes_follow_a_conversation(tmp_path):
    config = harness.write_config(tmp_path)
    harness.add_agent(config, "anna", PASSWORD, "Anna")
    gateway = harness.start_gateway(tmp_path / "cwd", config)
    try:
        port = gateway.listener_port("metrics")
        idle = scrape(port)
        assert idle[DEPTH] == 0 and idle[AVAILABLE] == 0 and idle[CONNECTED] == 0, idle
        assert idle[CONNECTIONS] == 0, idle

        customer = queued_customer(gateway, "Dana")
        waiting = scrape(port)
        assert waiting[DEPTH] == 1 and waiting[QUEUED] == 1, waiting
        assert waiting[OLDEST] >= 0, waiting
        assert waiting[CONNECTIONS] == 1, waiting

        anna = agent(gateway, "anna", PASSWORD)
        conversation = take_offer(anna, customer)
        talking = scrape(port)
        assert talking[DEPTH] == 0 and talking[CONNECTED] == 1, talking
        assert talking['imgateway_agents{state="available"}'] == 1, talking
        assert talking["imgateway_offers_total"] == 1, talking
        assert talking["imgateway_offer_accepts_total"] == 1, talking
        assert talking['imgateway_wait_seconds_count{queue="general"}'] == 1, talking
        assert talking['imgateway_routing_decisions_total{source="local"}'] == 1, talking
        assert talking[CONNECTIONS] == 2, talking

        exchange(customer, anna, conversation, "My invoice is wrong", "Let me look.")
        exchange(customer, anna, conversation, "Thanks", "Fixed.")
        chatted = scrape(port)
        assert chatted[CUSTOMER_LINES] == talking[CUSTOMER_LINES] + 2, (talking, chatted)
        assert chatted[AGENT_LINES] == talking.get(AGENT_LINES, 0) + 2, (talking, chatted)

        anna.send({"type": "end", "conversation": conversation})
        customer.expect("ended", conversation=conversation)
        anna.expect("ended", conversation=conversation)
        ended = scrape(port)
        assert ended[CONNECTED] == 0, ended
        assert ended['imgateway_handle_seconds_count{queue="general"}'] == 1, ended
        customer.close()
        anna.hang_up()
    finally:
        gateway.stop()
