"""Only trusted fields drive routing (gateway.routing.trust), and rules ask only for
features some agent protocol can grant (gateway.routing.features)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from core_helpers import FakeParty, RulePlans, make_harness

from gateway.config import ConfigError, QueueConfig
from gateway.core import events as ev
from gateway.plugins import Adapter, adapters
from gateway.routing.features import grantable_features
from gateway.routing.plan import Customer
from gateway.routing.rules import RuleSet
from gateway.routing.wire import WireError, customer_from_json, customer_to_json
from gateway.store.records import AgentRecord

REPO = Path(__file__).resolve().parents[3]
QUEUES = ("general",)

VIP = """
[[rules]]
name = "vip"
priority = 10
[rules.match]
"identity.tier" = "vip"
[[rules.targets]]
strategy = "longest_idle"

[default]
[[default.targets]]
strategy = "longest_idle"
"""


def rules(text: str, grantable=None) -> RuleSet:
    return RuleSet.parse(tomllib.loads(text), source="r.toml", queues=QUEUES, grantable=grantable)


def customer(sources: dict[str, str], **attributes: str) -> Customer:
    named = {k.replace("identity_", "identity."): v for k, v in attributes.items()}
    return Customer(attributes=named, sources=sources)


# -- trust ------------------------------------------------------------------------


def test_a_claimed_identity_field_does_not_drive_routing_by_default():
    ruleset = rules(VIP)
    claimed = ruleset.classify(customer({"identity.tier": "claim"}, identity_tier="vip"))
    assert (claimed.rule, claimed.priority) == ("default", 0)
    assert claimed.reason.endswith("; not trusted: identity.tier (claim)")
    for source in ("interview", "account"):
        plan = ruleset.classify(customer({"identity.tier": source}, identity_tier="vip"))
        assert (plan.rule, plan.priority) == ("vip", 10), source
    # Without sources, the caller vouches for the attributes.
    assert ruleset.classify(customer({}, identity_tier="vip")).rule == "vip"


def test_the_trust_table_says_which_sources_count():
    only_accounts = rules(VIP + '\n[trust]\n"identity.tier" = ["account"]\n')
    assert (
        only_accounts.classify(customer({"identity.tier": "interview"}, identity_tier="vip")).rule
        == "default"
    )
    assert (
        only_accounts.classify(customer({"identity.tier": "account"}, identity_tier="vip")).rule
        == "vip"
    )
    claims_too = rules(VIP + '\n[trust]\n"identity.*" = ["claim", "account"]\n')
    assert (
        claims_too.classify(customer({"identity.tier": "claim"}, identity_tier="vip")).rule == "vip"
    )
    trust = rules(VIP + '\n[trust]\ntopic = ["interview"]\n').trust
    assert trust.trusts("topic", "interview") and not trust.trusts("topic", "claim")
    assert trust.trusts("language", "claim") and not trust.trusts("priority", "claim")
    assert trust.trusts("protocol", "claim") and trust.trusts("identity.x", "connection")


@pytest.mark.parametrize(
    "table, where, problem",
    [
        ('protocol = ["claim"]', "trust.protocol", "comes from the connection: always trusted"),
        ('colour = ["claim"]', "trust.colour", "unknown attribute"),
        ('topic = "claim"', "trust.topic", "must be a list of sources"),
        ('topic = ["rumour"]', "trust.topic[0]", "must be one of interview, account, claim"),
    ],
)
def test_a_bad_trust_table_is_named(table, where, problem):
    with pytest.raises(ConfigError) as e:
        rules(VIP + f"\n[trust]\n{table}\n")
    assert e.value.key == where and problem in e.value.problem


def test_a_rule_may_not_match_what_the_site_trusts_from_nowhere():
    with pytest.raises(ConfigError) as e:
        rules(VIP + '\n[trust]\n"identity.tier" = []\n')
    assert e.value.key == 'rules[0].match."identity.tier"'
    assert "trusts identity.tier from no source" in e.value.problem


def test_sources_travel_to_the_routing_server():
    sent = customer({"identity.tier": "claim", "protocol": "connection"}, identity_tier="vip")
    body = customer_to_json(sent)
    assert body["sources"] == {"identity.tier": "claim", "protocol": "connection"}
    assert customer_from_json(body) == sent
    with pytest.raises(WireError, match=r"sources\.topic: must be one of"):
        customer_from_json({"media": "chat", "attributes": {}, "sources": {"topic": "rumour"}})


def _vip_gateway():
    queues = {"general": QueueConfig(name="general")}
    text = VIP
    ruleset = RuleSet.parse(tomllib.loads(text), source="r.toml", queues=queues)
    h = make_harness(agents=(), plans=RulePlans(ruleset), queues=queues)
    h.store.add_agent(
        AgentRecord(name="anna", display_name="Anna", password_hash="hash:secret", capacity=1)
    )
    return h


def test_a_customer_cannot_promote_itself_with_a_hello_field():
    h = _vip_gateway()
    _, claimed = h.customer({"name": "Mal", "topic": "billing", "tier": "vip"})
    assert claimed.conversation.interview.sources["tier"] == "claim"
    assert claimed.conversation.task.priority == 0
    assert "not trusted: identity.tier (claim)" in claimed.conversation.task.plan.reason
    # The same tier, verified by the site (a signed identity): priority.
    session = h.gateway.customer_arrived(
        FakeParty(),
        protocol="jsonim",
        client=ev.ClientInfo("acme", "1"),
        answers={"name": "Vera", "topic": "billing"},
        verified={"tier": "vip"},
    )
    assert session.conversation.interview.sources["tier"] == "account"
    assert session.conversation.task.priority == 10
    # Interview answers stay "interview"; hello answers to configured questions too.
    assert session.conversation.interview.sources["name"] == "interview"


# -- features ---------------------------------------------------------------------

ENTRY = """
[[compatibility.entries]]
name = "webchat"
client = "webchat*"
requires = ["typing", "file_transfer"]
fallback = "wait"

[default]
[[default.targets]]
strategy = "longest_idle"
"""


def test_a_requirement_no_agent_protocol_grants_is_refused_naming_the_entry():
    grantable = grantable_features(adapters())
    assert grantable["jsonim"] >= {"typing", "plain_text"}
    with pytest.raises(ConfigError) as e:
        rules(ENTRY, grantable)
    assert e.value.key == "compatibility.entries[0].requires[1]"
    assert e.value.problem.startswith("'file_transfer': no agent protocol grants it")
    # Without the check (a caller that knows no adapters), it loads as before.
    assert rules(ENTRY).classify(Customer(attributes={"client": "webchat"})).requires == {
        "typing",
        "file_transfer",
    }


def test_an_adapter_that_grants_the_feature_makes_the_entry_valid():
    files = Adapter(name="files", features=frozenset({"file_transfer"}))
    grantable = grantable_features([*adapters(), files])
    plan = rules(ENTRY, grantable).classify(Customer(attributes={"client": "webchat"}))
    assert plan.compatibility == "webchat"


def test_the_shipped_rules_load_as_the_gateway_loads_them():
    ruleset = RuleSet.load(
        REPO / "etc" / "routing.toml",
        queues=("general",),
        grantable=grantable_features(adapters()),
    )
    webchat = Customer(attributes={"protocol": "jsonim", "client": "webchat-widget"})
    assert ruleset.classify(webchat).compatibility == "webchat"
