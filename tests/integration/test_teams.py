"""Teams and queue membership over real sockets: queues own agents.

One gateway with a ``billing`` queue that needs billing level 2 and, once
``imgateway-admin team`` has made it so while the gateway runs, is served by the
``billing-desk`` team only. A transfer to the queue, and the FAQ bot's hand-over to
it, reach only the team's members with the queue's skills: not Carl (skilled, not a
member) nor Bob (a member, billing level 1).
"""

from __future__ import annotations

import json

import harness
import pytest
from jsonim_client import set_presence
from routing_site import (
    QUICK,
    AgentSpec,
    RoutingSite,
    accept,
    assert_no_offer,
    take_offer,
    toml_string,
)

CONFIG = """\
[gateway]
name = "imgateway-teams"
data_dir = {data_dir}
resume_grace_s = 0

[logging]
level = "debug"

[listeners]
jsonim = ["tcp:0:interface=127.0.0.1"]

[admin]
listen = ["tcp:0:interface=127.0.0.1"]
metrics = ["tcp:0:interface=127.0.0.1"]

[jsonim]
heartbeat_s = 3600
messages_per_second = 100.0
message_burst = 100

[agents]
default_capacity = 2
offer_timeout_s = 5

[routing]
default_queue = "general"
rules = {rules}

[queues.general]
max_wait_s = 600

[queues.billing]
max_wait_s = 600
skills = {{ billing = 2 }}

[interview]
greeting = ""

[[interview.fields]]
name = "name"
prompt = "What is your name?"

[bots.faq]
enabled = true
knowledge = {knowledge}
handover_queue = "billing"
greeting = ""
follow_up = ""
handover_text = "Connecting you with the billing desk."
"""

RULES = """\
[[rules]]
name = "faq-first"
[rules.match]
topic = "faq"
[[rules.targets]]
bots = true

[default]
[[default.targets]]
bots = false
strategy = "longest_idle"
"""

KNOWLEDGE = """\
[[faq]]
question = "What are your opening hours?"
keywords = ["hours"]
answer = "Monday to Friday."
"""

AGENTS = [
    AgentSpec("fay", "Fay", {"front": 1}),
    AgentSpec("anna", "Anna", {"billing": 3}),
    AgentSpec("bob", "Bob", {"billing": 1}),
    AgentSpec("carl", "Carl", {"billing": 5}),
]


@pytest.fixture(scope="module")
def teams_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("teams")
    site = RoutingSite.start(
        root,
        CONFIG,
        RULES,
        AGENTS,
        params={"knowledge": toml_string(str(root / "faq.toml"))},
        extra_files={"faq.toml": KNOWLEDGE},
    )
    admin_port = site.gateway.listener_port("admin")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("IMGATEWAY_ADMIN_URL", f"http://127.0.0.1:{admin_port}")
        # While the gateway runs: the CLI writes the database, then the gateway reloads.
        mark = site.log_mark()
        out = harness.admin(
            site.config, "team", "add", "billing-desk", "--member", "anna", "--member", "bob",
            "--queue", "billing",
        ).stdout  # fmt: skip
        assert out == "team billing-desk added\nthe running gateway reloaded its teams\n", out
        site.log_line(r"teams: 1 \(billing-desk\)", mark)
        yield site
    site.stop()


@pytest.fixture
def site(teams_site):
    yield teams_site
    teams_site.hang_up_all()


def test_the_team_is_in_the_database_and_the_running_gateway(site):
    listed = json.loads(harness.admin(site.config, "team", "list", "--json").stdout)
    assert listed == [
        {
            "name": "billing-desk",
            "description": "",
            "members": ["anna", "bob"],
            "queues": ["billing"],
        }
    ]
    queues = json.loads(harness.admin(site.config, "queues", "--json").stdout)
    billing = next(q for q in queues if q["name"] == "billing")
    assert (billing["teams"], billing["skills"]) == (["billing-desk"], {"billing": 2})


def test_a_transfer_to_a_queue_reaches_only_its_members_with_its_skills(site):
    fay = site.agent("fay")
    carl = site.agent("carl", status="away")
    bob = site.agent("bob", status="away")
    anna = site.agent("anna", status="away")
    dana = site.customer("Dana", "other")
    offer = take_offer(fay, "Dana")
    conv = offer["conversation"]
    accept(fay, offer, dana)
    for agent in (carl, bob, anna):
        set_presence(agent, "available")
    fay.send({"type": "transfer", "conversation": conv, "to": {"queue": "billing"}})
    fay.expect("ended", QUICK, conversation=conv)
    offer = take_offer(anna, "Dana")
    assert offer["conversation"] == conv
    assert_no_offer(carl, "Carl is not in the billing desk")
    assert_no_offer(bob, "Bob is in the desk but below the queue's billing level")
    accept(anna, offer, dana)


def test_the_faq_bot_hands_over_to_the_queues_members_only(site):
    carl = site.agent("carl")
    bob = site.agent("bob")
    anna = site.agent("anna", status="away")
    eve = site.customer("Eve", "faq")
    conv = eve.expect("connected", QUICK)["conversation"]
    eve.send({"type": "message", "text": "I want to talk to a person", "id": "q1"})
    eve.expect("message", QUICK, conversation=conv, text="Connecting you with the billing desk.")
    assert_no_offer(carl, "not a member")
    assert_no_offer(bob, "below the queue's level")
    set_presence(anna, "available")
    offer = take_offer(anna, "Eve")
    assert offer["conversation"] == conv
    accept(anna, offer, eve)
