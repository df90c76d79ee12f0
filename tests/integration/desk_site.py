"""A gateway site for the service desk's integration tests: four queues, four agents.

- ``general`` (topics billing, other): plain;
- ``survey`` (topic feedback): the satisfaction survey after the end;
- ``strict`` (topic refund): a disposition is required before the next offer;
- ``night`` (topic night): offline messages (tests close it with a stored holiday).

anna, bob and carl are agents, sue a supervisor (``imgateway-admin agent role``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import harness
from jsonim_client import (
    JsonImClient,
    answer_interview,
    hello_agent,
    hello_customer,
    set_presence,
)

__all__ = ["hello_customer", "set_presence"]

PASSWORDS = {name: f"{name}-Secret-1" for name in ("anna", "bob", "carl", "sue")}
ALIASES = {"anna": "Anna", "bob": "Bob", "carl": "Carl", "sue": "Sue"}

CONFIG = """\
[gateway]
name = "imgateway-desk"
data_dir = "{data_dir}"
resume_grace_s = 0

[logging]
level = "debug"

[listeners]
jsonim = ["tcp:0:interface=127.0.0.1"]
{extra_listeners}

[admin]
listen = ["tcp:0:interface=127.0.0.1"]
metrics = ["tcp:0:interface=127.0.0.1"]

[jsonim]
identity_secret = "site-secret-0123456789"
heartbeat_s = 3600
messages_per_second = 100.0
message_burst = 100

[agents]
default_capacity = 2
offer_timeout_s = 5

[routing]
default_queue = "general"
when_no_agents = "wait"

[queues.general]
topics = ["billing", "other"]

[queues.survey]
topics = ["feedback"]

[queues.strict]
topics = ["refund"]

[queues.night]
topics = ["night"]

[desk]
reload_s = 1

[desk.queues.survey]
csat = true

[desk.queues.strict]
disposition_required = true

[desk.queues.night]
offline = true

[interview]
greeting = "Welcome!"

[[interview.fields]]
name = "name"
prompt = "What is your name?"

[[interview.fields]]
name = "topic"
prompt = "What can we help you with?"
kind = "choice"
choices = [
    {{ value = "billing", label = "Billing" }},
    {{ value = "other", label = "Something else" }},
    {{ value = "feedback", label = "Feedback" }},
    {{ value = "refund", label = "Refund" }},
    {{ value = "night", label = "Night service" }},
]
{extra}
"""


def write(directory: Path, *, extra_listeners: str = "", extra: str = "") -> Path:
    """The site file, and the four agents provisioned in its database."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "imgateway.toml"
    path.write_text(
        CONFIG.format(data_dir=directory / "data", extra_listeners=extra_listeners, extra=extra)
    )
    for name, password in PASSWORDS.items():
        harness.add_agent(path, name, password, ALIASES[name])
    harness.admin(path, "agent", "role", "sue", "supervisor")
    return path


def start(directory: Path, **options) -> tuple[harness.Gateway, Path]:
    """A running gateway on the desk site."""
    config = write(directory, **options)
    return harness.start_gateway(directory / "cwd", config), config


def agent(gateway: harness.Gateway, name: str, status: str | None = "available"):
    """A JSON-IM agent logged in (and available)."""
    client = gateway.connect(name)
    hello_agent(client, name, PASSWORDS[name], status=status)
    return client


def customer(gateway: harness.Gateway, name: str, topic: str, **hello) -> JsonImClient:
    """A JSON-IM customer through the interview, queued (or not, for a closed queue)."""
    client = gateway.connect(f"customer-{name}")
    client.welcome = hello_customer(client, **hello)
    answer_interview(client, {"name": name, "topic": topic})
    return client


def take(agent_client: JsonImClient, customer_client: JsonImClient | None = None) -> str:
    """Accept the next offer; the conversation once connected."""
    offer = agent_client.expect("offer")
    agent_client.send({"type": "accept", "offer": offer["offer"]})
    conversation = offer["conversation"]
    agent_client.expect("connected", conversation=conversation)
    if customer_client is not None:
        customer_client.expect("connected", conversation=conversation)
    return conversation


def request(client: JsonImClient, frame: dict) -> dict:
    """Send a desk request with an id; its ``result`` (fails on an ``error``)."""
    fid = client.new_id("d")
    client.send({**frame, "id": fid})
    answer = client.expect_any(["result", "error"], id=fid)
    assert answer["type"] == "result", client._describe(f"{frame['type']} refused: {answer}")
    return answer


def refused(client: JsonImClient, frame: dict) -> dict:
    """Send a request with an id; its ``error``."""
    fid = client.new_id("d")
    client.send({**frame, "id": fid})
    answer = client.expect_any(["result", "error"], id=fid)
    assert answer["type"] == "error", client._describe(f"{frame['type']} was not refused")
    return answer


def say(client: JsonImClient, conversation: str | None, text: str, **extra) -> str:
    """Send a message; its stored id (``ack.msg``)."""
    fid = client.new_id("m")
    frame = {"type": "message", "text": text, "id": fid, **extra}
    if conversation is not None:
        frame["conversation"] = conversation
    client.send(frame)
    return client.expect("ack", id=fid)["msg"]


def metric(samples: dict[str, float], name: str, **labels: str) -> float | None:
    """One sample by name and labels, from ops_helpers.scrape()."""
    for key, value in samples.items():
        base, _, rest = key.partition("{")
        found = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if base == name and found == labels:
            return value
    return None


def dump(value) -> str:
    """A frame as the test reports show it."""
    return json.dumps(value, ensure_ascii=False)
