"""Routing rules: loading, validation with exact key paths, and classification."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import ConfigError
from gateway.routing.plan import LOCAL, Customer, Plan, Target
from gateway.routing.rules import RuleSet
from gateway.routing.versions import VersionRange, parse_version

EXAMPLE = Path(__file__).resolve().parents[3] / "etc" / "routing.toml"
QUEUES = ("general", "billing")
DEFAULT = "[default]\n[[default.targets]]\n"


def rules(text: str, queues=QUEUES) -> RuleSet:
    return RuleSet.parse(tomllib.loads(text), source="test.toml", queues=queues)


def customer(media: str = "chat", **attributes: str) -> Customer:
    # identity_tier="vip" stands for the attribute "identity.tier".
    return Customer(
        attributes={k.replace("identity_", "identity."): v for k, v in attributes.items()},
        media=media,
    )


def chat(protocol="jsonim", client="webchat", version="1.0", **answers: str) -> Customer:
    return Customer.of(protocol=protocol, client=client, version=version, answers=answers)


@pytest.fixture(scope="module")
def example() -> RuleSet:
    return RuleSet.load(EXAMPLE, queues=("general",))


# --- the packaged defaults and the example ------------------------------------------


def test_packaged_defaults():
    ruleset = RuleSet.load(None, queues=())
    assert ruleset.source == "packaged defaults"
    assert ruleset.rule_names == ()
    plan = ruleset.classify(chat(topic="billing"))
    assert plan == Plan(
        rule="default",
        targets=(Target(queue=None, strategy="longest_idle"),),
        priority=0,
        service="relay",
        requires=frozenset(),
        compatibility="default",
        fallback="translate",
        source=LOCAL,
        reason="rule default; compatibility default",
    )


def test_example_loads(example):
    assert example.source == str(EXAMPLE)
    assert example.rule_names == ("vip-billing", "tech-german", "tech", "faq-bot-first")


def test_example_vip_billing_on_modern_xmpp(example):
    plan = example.classify(
        chat("xmpp", "Conversations", "2.10.1", topic="billing", tier="Gold", name="Ann")
    )
    assert plan == Plan(
        rule="vip-billing",
        targets=(
            Target(
                skills={"billing": 4},
                location="lan",
                bots=False,
                strategy="highest_skill",
                timeout_s=30.0,
            ),
            Target(skills={"billing": 2}, bots=False, strategy="longest_idle", timeout_s=60.0),
            Target(queue="general", bots=False, strategy="broadcast", broadcast=3),
        ),
        priority=10,
        service="relay",
        requires=frozenset({"typing"}),
        compatibility="xmpp-modern",
        fallback="translate",
        source=LOCAL,
        reason="rule vip-billing; compatibility xmpp-modern",
    )


def test_example_german_tech_on_gajim(example):
    plan = example.classify(chat("xmpp", "Gajim", "1.8.4", topic="tech", language="DE"))
    assert plan == Plan(
        rule="tech-german",
        targets=(
            Target(skills={"tech": 2, "german": 3}, strategy="highest_skill", timeout_s=45.0),
            Target(skills={"tech": 1}, strategy="least_occupied"),
        ),
        priority=5,
        service="relay",
        requires=frozenset({"typing"}),
        compatibility="xmpp-desktop",
        fallback="translate",
        reason="rule tech-german; compatibility xmpp-desktop",
    )


def test_example_tech_on_irc(example):
    plan = example.classify(chat("irc", "irssi", "1.4.5", topic="tech", language="en"))
    assert (plan.rule, plan.compatibility, plan.service) == ("tech", "irc", "irc-relay")
    assert plan.requires == frozenset({"plain_text"})
    assert plan.reason == "rule tech; compatibility irc"


def test_example_faq_bot_first_on_webchat(example):
    plan = example.classify(chat("jsonim", "WebChat-3", "3.1", topic="Other"))
    assert plan == Plan(
        rule="faq-bot-first",
        targets=(
            Target(bots=True, strategy="round_robin", timeout_s=15.0),
            Target(queue="general", bots=False, strategy="longest_idle"),
        ),
        priority=0,
        service="relay",
        requires=frozenset({"rich_text", "typing"}),
        compatibility="webchat",
        fallback="wait",
        reason="rule faq-bot-first; compatibility webchat",
    )


def test_example_old_conversations_and_plain_billing_fall_through(example):
    plan = example.classify(chat("xmpp", "Conversations", "2.9.13", topic="billing"))
    assert (plan.rule, plan.compatibility) == ("default", "xmpp-other")
    assert plan.targets == (Target(bots=False),)
    assert plan.reason == "rule default; compatibility xmpp-other"


def test_example_unknown_protocol_gets_default_compatibility(example):
    plan = example.classify(chat("matrix", "Element", "1.11", topic="tech"))
    assert (plan.rule, plan.compatibility, plan.service) == ("tech", "default", "relay")
    assert plan.requires == frozenset() and plan.fallback == "translate"


def test_load_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError) as e:
        RuleSet.load(tmp_path / "none.toml", queues=QUEUES)
    assert str(e.value) == f"{tmp_path / 'none.toml'}: -: no such file"
    bad = tmp_path / "bad.toml"
    bad.write_text("[default\n")
    with pytest.raises(ConfigError) as e:
        RuleSet.load(bad, queues=QUEUES)
    assert (e.value.source, e.value.key) == (str(bad), "-")
    assert e.value.problem.startswith("not valid TOML")
    bad.write_text(DEFAULT + "strategy = 'fastest'\n")
    with pytest.raises(ConfigError) as e:
        RuleSet.load(bad, queues=QUEUES)
    assert e.value.source == str(bad) and e.value.key == "default.targets[0].strategy"


def test_parse_json_data():
    data = json.loads(
        '{"rules": [{"name": "mail", "match": {"media": "email"},'
        ' "targets": [{"queue": "billing", "timeout_s": 60}, {"strategy": "round_robin"}]}],'
        ' "default": {"targets": [{}]}}'
    )
    ruleset = RuleSet.parse(data, source="router", queues=QUEUES)
    plan = ruleset.classify_media("EMAIL", customer(topic="x"))
    assert plan.rule == "mail"
    assert plan.targets == (
        Target(queue="billing", timeout_s=60.0),
        Target(strategy="round_robin"),
    )
    assert ruleset.classify(customer(topic="x")).rule == "default"


# --- matching semantics --------------------------------------------------------------

MATCHING = (
    """
[[rules]]
name = "vip"
priority = 7
[rules.match]
topic = "billing"
"identity.tier" = ["vip", "Gold"]
[[rules.targets]]

[[rules]]
name = "any-language"
[rules.match]
language = "*"
[[rules.targets]]

[[rules]]
name = "email"
[rules.match]
media = "email"
[[rules.targets]]
"""
    + DEFAULT
)


@pytest.mark.parametrize(
    ("attributes", "media", "rule"),
    [
        ({"topic": "billing", "identity.tier": "vip"}, "chat", "vip"),
        ({"topic": "BILLING ", "identity.tier": "gold"}, "chat", "vip"),  # case, space
        ({"topic": "billing", "identity.tier": "silver"}, "chat", "default"),  # OR list
        ({"topic": "billing"}, "chat", "default"),  # AND: tier absent
        ({"identity.tier": "vip"}, "chat", "default"),
        ({"topic": "billing", "identity.tier": "vip", "language": "fr"}, "chat", "vip"),
        ({"language": "fr"}, "chat", "any-language"),  # "*": any present value
        ({"language": ""}, "chat", "default"),  # empty counts as absent
        ({"language": "   "}, "chat", "default"),
        ({}, "Email", "email"),
        ({"media": "email"}, "chat", "default"),  # the media argument decides
        ({"tier": "vip", "topic": "billing"}, "chat", "default"),  # identity. prefix
    ],
)
def test_matching(attributes, media, rule):
    assert rules(MATCHING).classify(Customer(attributes=attributes, media=media)).rule == rule


def test_first_matching_rule_wins_priority_is_the_queue_priority():
    ruleset = rules(
        """
[[rules]]
name = "low"
priority = -5
match = { topic = "billing" }
targets = [{}]
[[rules]]
name = "high"
priority = 100
match = { topic = "billing" }
targets = [{}]
"""
        + DEFAULT
    )
    plan = ruleset.classify(customer(topic="billing"))
    assert (plan.rule, plan.priority) == ("low", -5)


def test_classify_media_overrides_the_customers_media():
    ruleset = rules(MATCHING)
    email = customer(media="chat")
    assert ruleset.classify_media("email", email).rule == "email"
    assert ruleset.classify(email).rule == "default"


def test_plans_are_reused():
    ruleset = rules(MATCHING)
    a = ruleset.classify(customer(topic="billing", identity_tier="vip"))
    b = ruleset.classify(customer(topic="Billing", identity_tier="GOLD"))
    assert a is b


# --- compatibility: versions and globs ----------------------------------------------


def compat(entry: str) -> RuleSet:
    return rules(f"[[compatibility.entries]]\nname = 'hit'\n{entry}\n" + DEFAULT)


@pytest.mark.parametrize(
    ("versions", "version", "hit"),
    [
        (">=2.10, <3", "2.10", True),
        (">=2.10, <3", "2.10.0", True),
        (">=2.10, <3", "2.9", False),  # numeric, not text, comparison
        (">=2.10, <3", "2.9.99", False),
        (">=2.10, <3", "2.99999", True),
        (">=2.10, <3", "3", False),
        (">=2.10, <3", "3.0.0", False),
        (">=2.10, <3", "2.10-beta", False),  # not numeric: only "*" matches
        (">=2.10, <3", "v2.10", False),
        (">=2.10, <3", " 2.10 ", True),
        (">=2.10, <3", "02.010", True),
        (">=2.10, <3", None, False),  # no version sent
        (">=2.10, <3", "", False),
        ("==2", "2.0.0", True),
        ("2", "2.0", True),  # a bare version means ==
        ("!=2.0", "2", False),
        ("!=2.0", "2.0.1", True),
        (">1", "1.0.0.1", True),
        (">1", "1.0.0", False),
        ("<=1.0", "1", True),
        ("<1", "0.9", True),
        ("<1", "1.0", False),
        (">=1.2, !=1.5", "1.5.0", False),
        (">=1.2, !=1.5", "1.6", True),
        (">= 1.2 ,<  2", "1.9", True),  # spaces are allowed around parts
        ("*", "banana", True),
        ("*", None, True),
        (">=1", "1." * 200 + "1", False),  # absurdly long: not numeric
        (">=1", "9" * 5000, False),  # beyond int()'s digit limit: no crash
    ],
)
def test_version_ranges(versions, version, hit):
    attributes = {"protocol": "xmpp", "client": "x"}
    if version is not None:
        attributes["version"] = version
    plan = compat(f"versions = {versions!r}").classify(Customer(attributes=attributes))
    assert (plan.compatibility == "hit") is hit


def test_version_parsing_is_canonical():
    assert parse_version("2.10.0") == (2, 10)
    assert parse_version("0.0") == ()
    assert parse_version("1.2a") is None
    assert parse_version("\u0661.\u0662") is None  # Arabic-Indic digits are not versions here
    assert VersionRange.parse("*").is_any
    assert VersionRange.parse(">=1").holds((1,)) and not VersionRange.parse(">=1").holds(None)


@pytest.mark.parametrize(
    ("pattern", "client", "hit"),
    [
        ("Gajim", "gajim", True),
        ("Gajim", "GAJIM", True),
        ("Gajim", "Gajim2", False),  # a glob matches the whole name
        ("Conv*", "Conversations", True),
        ("Conv*", "conversations legacy", True),
        ("Conv*", "Quicksy", False),
        ("Gaj?m", "Gajim", True),
        ("[GD]*", "dino", True),
        ("[!G]*", "gajim", False),
        ("*.exe", "pidgin.exe", True),
        ("*.exe", "pidginXexe", False),  # the dot is literal
        ("C++ (web)", "c++ (web)", True),  # regex characters are literal
        ("*", "anything", True),
        ("*", None, True),  # "*" is the same as no client key
        ("Gajim", None, False),
    ],
)
def test_client_globs(pattern, client, hit):
    attributes = {"protocol": "xmpp", "version": "1"}
    if client is not None:
        attributes["client"] = client
    plan = compat(f"client = {pattern!r}").classify(Customer(attributes=attributes))
    assert (plan.compatibility == "hit") is hit


def test_protocol_is_exact_and_case_insensitive():
    ruleset = compat("protocol = 'XMPP'")
    assert ruleset.classify(customer(protocol="xmpp")).compatibility == "hit"
    assert ruleset.classify(customer(protocol="xmpps")).compatibility == "default"
    assert ruleset.classify(customer()).compatibility == "default"


def test_first_matching_entry_wins_with_its_own_fallback_and_service():
    ruleset = rules(
        """
[compatibility]
fallback = "close"
default_service = "gw"
[[compatibility.entries]]
name = "a"
protocol = "irc"
requires = ["plain_text"]
[[compatibility.entries]]
name = "b"
client = "*"
versions = ">=1"
service = "other"
fallback = "wait"
"""
        + DEFAULT
    )
    a = ruleset.classify(customer(protocol="irc", version="5"))
    assert (a.compatibility, a.service, a.fallback, a.requires) == (
        "a",
        "gw",
        "close",
        frozenset({"plain_text"}),
    )
    b = ruleset.classify(customer(protocol="xmpp", version="5"))
    assert (b.compatibility, b.service, b.fallback) == ("b", "other", "wait")
    none = ruleset.classify(customer(protocol="xmpp", version="0.5"))
    assert (none.compatibility, none.service, none.fallback) == ("default", "gw", "close")


# --- validation: every error names its key path -------------------------------------

RULE = "[[rules]]\nname = 'r'\n"
TARGET = RULE + "[[rules.targets]]\n"
ENTRY = "[[compatibility.entries]]\nname = 'e'\n"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        # the file
        ("colour = 1\n" + DEFAULT, "colour", "unknown key"),
        ("", "default", "is required"),
        ("rules = 1\n" + DEFAULT, "rules", "must be a list"),
        ("rules = [1]\n" + DEFAULT, "rules[0]", "must be a table"),
        # the default workflow
        ("[default]\n", "default.targets", "is required"),
        ("[default]\ntargets = []\n", "default.targets", "at least one target"),
        (DEFAULT.replace("]\n[", "]\nname = 'd'\n[", 1), "default.name", "unknown key"),
        ("[default]\nmatch = {}\n[[default.targets]]\n", "default.match", "unknown key"),
        ("[default]\npriority = 1.5\n[[default.targets]]\n", "default.priority", "integer"),
        ("[default]\npriority = true\n[[default.targets]]\n", "default.priority", "boolean"),
        ("[default]\npriority = 5000\n[[default.targets]]\n", "default.priority", "between"),
        (DEFAULT + "strategy = 'fastest'\n", "default.targets[0].strategy", "must be one of"),
        # rules
        ("[[rules]]\n[[rules.targets]]\n" + DEFAULT, "rules[0].name", "is required"),
        (
            RULE.replace("'r'", "'Bad Name'") + "[[rules.targets]]\n" + DEFAULT,
            "rules[0].name",
            "not a valid name",
        ),
        (
            RULE.replace("'r'", "'default'") + "[[rules.targets]]\n" + DEFAULT,
            "rules[0].name",
            "reserved",
        ),
        (
            TARGET + "[rules.match]\ntopic = 'a'\n" + TARGET + DEFAULT,
            "rules[1].name",
            "duplicate rule 'r' (also rules[0])",
        ),
        (RULE + DEFAULT, "rules[0].targets", "is required"),
        (RULE + "targets = []\n" + DEFAULT, "rules[0].targets", "at least one target"),
        (RULE + "targets = 'x'\n" + DEFAULT, "rules[0].targets", "must be a list"),
        (RULE + "targets = [1]\n" + DEFAULT, "rules[0].targets[0]", "must be a table"),
        (RULE + "when = 1\n[[rules.targets]]\n" + DEFAULT, "rules[0].when", "unknown key"),
        (
            TARGET + "[[rules]]\nname = 's'\n[[rules.targets]]\n" + DEFAULT,
            "rules[1]",
            "never applies: rules[0] has no match",
        ),
        # match
        (
            TARGET + "[rules.match]\ncolour = 'red'\n" + DEFAULT,
            "rules[0].match.colour",
            "unknown key",
        ),
        (
            TARGET + "[rules.match]\n'identity.Tier' = 'x'\n" + DEFAULT,
            'rules[0].match."identity.Tier"',
            "identity field",
        ),
        (
            TARGET + "[rules.match]\npriority = 1\n" + DEFAULT,
            "rules[0].match.priority",
            "must be a string or a list of strings, not int",
        ),
        (
            TARGET + "[rules.match]\ntopic = []\n" + DEFAULT,
            "rules[0].match.topic",
            "must not be an empty list",
        ),
        (
            TARGET + "[rules.match]\ntopic = ['a', 2]\n" + DEFAULT,
            "rules[0].match.topic[1]",
            "must be a string",
        ),
        (
            TARGET + "[rules.match]\n'identity.tier' = ['a', '']\n" + DEFAULT,
            'rules[0].match."identity.tier"[1]',
            "must not be empty",
        ),
        (RULE + "match = 'x'\n[[rules.targets]]\n" + DEFAULT, "rules[0].match", "must be a table"),
        # targets
        (
            TARGET + "strategy = 'fastest'\n" + DEFAULT,
            "rules[0].targets[0].strategy",
            "must be one of longest_idle, least_occupied, round_robin, highest_skill, broadcast",
        ),
        (TARGET + "strategy = 1\n" + DEFAULT, "rules[0].targets[0].strategy", "a string"),
        (
            TARGET + "broadcast = 3\n" + DEFAULT,
            "rules[0].targets[0].broadcast",
            'only with strategy = "broadcast"',
        ),
        (
            TARGET + "strategy = 'broadcast'\n" + DEFAULT,
            "rules[0].targets[0].broadcast",
            "is required with strategy broadcast",
        ),
        (
            TARGET + "strategy = 'broadcast'\nbroadcast = 1\n" + DEFAULT,
            "rules[0].targets[0].broadcast",
            "between 2 and 100, not 1",
        ),
        (
            TARGET + "strategy = 'broadcast'\nbroadcast = 101\n" + DEFAULT,
            "rules[0].targets[0].broadcast",
            "between 2 and 100, not 101",
        ),
        (
            TARGET + "skills = { billing = 6 }\n" + DEFAULT,
            "rules[0].targets[0].skills.billing",
            "between 0 and 5, not 6",
        ),
        (
            TARGET + "skills = { billing = -1 }\n" + DEFAULT,
            "rules[0].targets[0].skills.billing",
            "between 0 and 5, not -1",
        ),
        (
            TARGET + "skills = { billing = '4' }\n" + DEFAULT,
            "rules[0].targets[0].skills.billing",
            "integer level",
        ),
        (
            TARGET + "skills = { billing = true }\n" + DEFAULT,
            "rules[0].targets[0].skills.billing",
            "integer level",
        ),
        (
            TARGET + "skills = { 'Bill ing' = 1 }\n" + DEFAULT,
            'rules[0].targets[0].skills."Bill ing"',
            "for a skill",
        ),
        (
            TARGET + "skills = ['billing']\n" + DEFAULT,
            "rules[0].targets[0].skills",
            "must be a table",
        ),
        (
            TARGET + "queue = 'nope'\n" + DEFAULT,
            "rules[0].targets[0].queue",
            "names no configured queue: 'nope' (queues: billing, general)",
        ),
        (
            TARGET + "location = 'moon'\n" + DEFAULT,
            "rules[0].targets[0].location",
            "must be one of lan, remote",
        ),
        (
            TARGET + "protocols = 'xmpp'\n" + DEFAULT,
            "rules[0].targets[0].protocols",
            "must be a list",
        ),
        (
            TARGET + "protocols = ['xmpp', 1]\n" + DEFAULT,
            "rules[0].targets[0].protocols[1]",
            "must be a string",
        ),
        (
            TARGET + "agents = ['Anna']\n" + DEFAULT,
            "rules[0].targets[0].agents[0]",
            "not a valid name",
        ),
        (TARGET + "bots = 'yes'\n" + DEFAULT, "rules[0].targets[0].bots", "must be a boolean"),
        (TARGET + "skill = {}\n" + DEFAULT, "rules[0].targets[0].skill", "unknown key"),
        (
            TARGET + "timeout_s = 30\n" + DEFAULT,
            "rules[0].targets[0].timeout_s",
            "not allowed on the last target",
        ),
        (
            TARGET + "[[rules.targets]]\n" + DEFAULT,
            "rules[0].targets[0].timeout_s",
            "is required on every target but the last",
        ),
        (
            TARGET + "timeout_s = 0\n[[rules.targets]]\n" + DEFAULT,
            "rules[0].targets[0].timeout_s",
            "must be greater than 0",
        ),
        (
            TARGET + "timeout_s = -5\n[[rules.targets]]\n" + DEFAULT,
            "rules[0].targets[0].timeout_s",
            "between",
        ),
        (
            TARGET + "timeout_s = '30'\n[[rules.targets]]\n" + DEFAULT,
            "rules[0].targets[0].timeout_s",
            "must be an integer or a number",
        ),
        (
            TARGET + "timeout_s = 5\n[[rules.targets]]\nqueue = 'x'\n" + DEFAULT,
            "rules[0].targets[1].queue",
            "names no configured queue",
        ),
        # compatibility
        (
            "[compatibility]\nfallback = 'drop'\n" + DEFAULT,
            "compatibility.fallback",
            "must be one of translate, wait, close",
        ),
        (
            "[compatibility]\ndefault_service = ''\n" + DEFAULT,
            "compatibility.default_service",
            "not a valid name",
        ),
        ("[compatibility]\nentries = {}\n" + DEFAULT, "compatibility.entries", "must be a list"),
        ("[compatibility]\nmode = 1\n" + DEFAULT, "compatibility.mode", "unknown key"),
        (
            "[[compatibility.entries]]\nprotocol = 'x'\n" + DEFAULT,
            "compatibility.entries[0].name",
            "is required",
        ),
        (ENTRY.replace("'e'", "'default'") + DEFAULT, "compatibility.entries[0].name", "reserved"),
        (
            ENTRY + "protocol = 'a'\n" + ENTRY + "protocol = 'b'\n" + DEFAULT,
            "compatibility.entries[1].name",
            "duplicate compatibility entry 'e'",
        ),
        (ENTRY + "colour = 1\n" + DEFAULT, "compatibility.entries[0].colour", "unknown key"),
        (
            ENTRY + "protocol = ''\n" + DEFAULT,
            "compatibility.entries[0].protocol",
            "must not be empty",
        ),
        (
            ENTRY + "client = ' '\n" + DEFAULT,
            "compatibility.entries[0].client",
            "must not be empty",
        ),
        (
            ENTRY + "versions = '>=x'\n" + DEFAULT,
            "compatibility.entries[0].versions",
            "not a version range: '>=x' is not a comparison",
        ),
        (
            ENTRY + "versions = ''\n" + DEFAULT,
            "compatibility.entries[0].versions",
            "an empty comparison",
        ),
        (
            ENTRY + "versions = '>=1,,<2'\n" + DEFAULT,
            "compatibility.entries[0].versions",
            "an empty comparison",
        ),
        (
            ENTRY + "versions = '>=1,'\n" + DEFAULT,
            "compatibility.entries[0].versions",
            "an empty comparison",
        ),
        (
            ENTRY + "versions = '*, >=1'\n" + DEFAULT,
            "compatibility.entries[0].versions",
            "'*' stands alone",
        ),
        (
            ENTRY + "versions = '~=1.2'\n" + DEFAULT,
            "compatibility.entries[0].versions",
            "'~=1.2' is not a comparison",
        ),
        (
            ENTRY + "versions = '=1'\n" + DEFAULT,
            "compatibility.entries[0].versions",
            "'=1' is not a comparison",
        ),
        (
            ENTRY + "versions = '>=1.x'\n" + DEFAULT,
            "compatibility.entries[0].versions",
            "is not a comparison",
        ),
        (ENTRY + "versions = 2\n" + DEFAULT, "compatibility.entries[0].versions", "a string"),
        (
            ENTRY + "requires = ['Typing']\n" + DEFAULT,
            "compatibility.entries[0].requires[0]",
            "not a valid name",
        ),
        (
            ENTRY + "requires = 'typing'\n" + DEFAULT,
            "compatibility.entries[0].requires",
            "must be a list",
        ),
        (
            ENTRY + "fallback = 'x'\n" + DEFAULT,
            "compatibility.entries[0].fallback",
            "must be one of",
        ),
        (
            ENTRY + "service = 'A B'\n" + DEFAULT,
            "compatibility.entries[0].service",
            "not a valid name",
        ),
        (
            ENTRY + ENTRY.replace("'e'", "'f'") + "protocol = 'x'\n" + DEFAULT,
            "compatibility.entries[1]",
            "never applies: compatibility.entries[0]",
        ),
        (
            ENTRY + "client = '*'\nversions = '*'\n" + ENTRY.replace("'e'", "'f'") + DEFAULT,
            "compatibility.entries[1]",
            "never applies",
        ),
    ],
)
def test_validation_errors(text, key, problem):
    with pytest.raises(ConfigError) as e:
        rules(text)
    assert (e.value.source, e.value.key) == ("test.toml", key), str(e.value)
    assert problem in e.value.problem
    assert str(e.value) == f"test.toml: {key}: {e.value.problem}"


def test_parse_rejects_non_tables():
    with pytest.raises(ConfigError) as e:
        RuleSet.parse([], source="router", queues=QUEUES)  # type: ignore[arg-type]
    assert str(e.value) == "router: -: must be a table, not list"


def test_a_catch_all_rule_may_come_last():
    ruleset = rules(RULE.replace("'r'", "'all'") + "priority = 3\n[[rules.targets]]\n" + DEFAULT)
    plan = ruleset.classify(customer())
    assert (plan.rule, plan.priority) == ("all", 3)


# --- robustness -----------------------------------------------------------------------

_KEYS = st.sampled_from(
    [
        "topic",
        "protocol",
        "client",
        "version",
        "language",
        "priority",
        "media",
        "identity.tier",
    ]
)
_VALUES = st.one_of(
    st.text(),
    st.sampled_from(["billing", "tech", "other", "VIP", "gold", "de", "xmpp", "irc", "jsonim"]),
    st.sampled_from(["Conversations", "Gajim", "webchat-2", "2.10", "2.9", "1.8.4", "3"]),
    st.from_regex(r"[0-9]{1,12}(\.[0-9]{1,12}){0,6}", fullmatch=True),
)


@given(
    attributes=st.dictionaries(st.one_of(_KEYS, st.text()), _VALUES, max_size=12),
    media=st.text(),
)
def test_classify_never_raises(example, attributes, media):
    plan = example.classify(Customer(attributes=attributes, media=media))
    assert plan.rule in (*example.rule_names, "default")
    assert plan.source == LOCAL and plan.targets
    assert plan.reason == f"rule {plan.rule}; compatibility {plan.compatibility}"
    assert example.classify_media(media, Customer(attributes=attributes)) == plan
