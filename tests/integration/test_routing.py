"""Routing over real JSON-IM sockets against a real gateway process (issue 3, first
"Done when" line): skill levels, IM compatibility, escalation after a target's timeout,
ring-no-answer, reject, transfer with history, closed hours, queue limits, sticky routing,
and the FAQ bot answering and then handing over to a human.

One gateway serves every test but the FAQ bot's. Its rules file has one rule per test,
chosen by the customer's topic, and each rule's agent expression names a skill only that
test's agents have, so a test's customers are never offered to another test's agents.
Every test closes its connections when it ends (``site`` fixture), so each starts with no
agent logged in and no customer waiting. The FAQ bot runs in a gateway of its own, as
enabling it adds an agent that any target without a skill or ``bots = false`` admits.

Timeouts that must pass are configured short (offers ring for 2 s, a target escalates
after 1 s, a queue's longest wait is 1 or 1.5 s) and awaited with a bound; a test that
says "no offer" checks it exactly, as ``routing_site.assert_no_offer`` explains.
"""

from __future__ import annotations

import datetime as dt

import pytest
from jsonim_client import exchange, set_presence
from routing_site import (
    QUICK,
    AgentSpec,
    RoutingSite,
    Stopwatch,
    accept,
    assert_no_offer,
    history,
    offered_conversations,
    reject,
    system_texts,
    take_offer,
    toml_string,
)

OFFER_TIMEOUT_S = 2
MAX_LAPSED_OFFERS = 2
ESCALATE_AFTER_S = 1
TINY_MAX_WAIT_S = 1
SPILL_MAX_WAIT_S = 1.5
# Timers do not fire early, but the two clocks (ours, the gateway's) are read at
# slightly different moments; a lower bound allows this much.
CLOCK_SLACK_S = 0.2

# What the gateway tells customers and agents (gateway.core.dispatch and gateway.core.gateway).
CLOSED_TEXT = "We are closed right now. Please come back during our opening hours."
QUEUE_FULL_TEXT = "We are sorry, too many customers are waiting. Please try again later."
WAIT_TIMEOUT_TEXT = "We are sorry, no agent could take your conversation in time."
TRANSFERRED_TEXT = "You are being transferred to another agent. Please stay with us."
SET_AWAY_TEXT = (
    f"You missed {MAX_LAPSED_OFFERS} offers in a row, so you were set away."
    " Set yourself available again."
)

CONFIG = """\
[gateway]
name = "imgateway-routing"
data_dir = {data_dir}
# Customers who hang up leave at once: these tests predate resuming (test_restart.py).
resume_grace_s = 0

[logging]
level = "debug"

[listeners]
jsonim = ["tcp:0:interface=127.0.0.1"]

[admin]
# Port 0: several gateways (and test suites) run at once.
listen = ["tcp:0:interface=127.0.0.1"]
metrics = ["tcp:0:interface=127.0.0.1"]

[jsonim]
heartbeat_s = 3600
hello_timeout_s = 60
messages_per_second = 100.0
message_burst = 100

[agents]
default_capacity = 2
offer_timeout_s = {offer_timeout_s}
wrap_up_s = 0
max_lapsed_offers = {max_lapsed_offers}

[routing]
default_queue = "general"
when_no_agents = "wait"
rules = {rules}
sticky_s = 30

[queues.general]
max_wait_s = 600

[queues.wide]
max_wait_s = 600

[queues.specialists]
max_wait_s = 600

[queues.closed]
topics = ["closed"]
hours = [{closed_hours}]
timezone = "UTC"

[queues.tiny]
topics = ["tiny"]
max_waiting = 1
max_wait_s = {tiny_max_wait_s}

[queues.spill]
topics = ["spill"]
max_waiting = 1
max_wait_s = {spill_max_wait_s}
overflow = "overflow"

[queues.overflow]
max_wait_s = 600

[interview]
answer_timeout_s = 600
greeting = "Welcome!"

[[interview.fields]]
name = "name"
prompt = "What is your name?"
kind = "text"
max_length = 80
"""

RULES = """\
[compatibility]
fallback = "translate"

[[compatibility.entries]]
# The acme widget needs an agent whose IM software shows typing; wait for one.
name = "acme-typing"
protocol = "jsonim"
client = "acme-widget"
requires = ["typing"]
fallback = "wait"

[[rules]]
name = "skill"
[rules.match]
topic = "skill"
[[rules.targets]]
skills = {{ sales = 4 }}
strategy = "highest_skill"

[[rules]]
name = "compat"
[rules.match]
topic = "compat"
[[rules.targets]]
skills = {{ compat = 1 }}

[[rules]]
name = "escalate"
[rules.match]
topic = "escalate"
[[rules.targets]]
skills = {{ escal = 4 }}
timeout_s = {escalate_after_s}
[[rules.targets]]
queue = "wide"
skills = {{ escal = 1 }}

[[rules]]
name = "ring"
[rules.match]
topic = "ring"
[[rules.targets]]
skills = {{ ring = 1 }}
strategy = "longest_idle"

[[rules]]
name = "reject"
[rules.match]
topic = "reject"
[[rules.targets]]
skills = {{ rej = 1 }}

[[rules]]
name = "transfer"
[rules.match]
topic = "transfer"
[[rules.targets]]
skills = {{ xfer = 1 }}

[[rules]]
name = "sticky"
[rules.match]
topic = "sticky"
[[rules.targets]]
skills = {{ stick = 1 }}
strategy = "highest_skill"

[[rules]]
name = "closed"
[rules.match]
topic = "closed"
[[rules.targets]]
skills = {{ closing = 1 }}

[[rules]]
# The queue is the topic's (tiny or spill); nobody has this skill.
name = "limits"
[rules.match]
topic = ["tiny", "spill"]
[[rules.targets]]
skills = {{ nobody = 5 }}

[default]
[[default.targets]]
skills = {{ nobody = 5 }}
"""

AGENTS = [
    AgentSpec("sam", "Sam", {"sales": 3}, capacity=1),
    AgentSpec("sid", "Sid", {"sales": 4}, capacity=1),
    AgentSpec("sue", "Sue", {"sales": 5}, capacity=1),
    AgentSpec("pat", "Pat", {"compat": 1}),
    AgentSpec("tia", "Tia", {"compat": 1}),
    AgentSpec("lou", "Lou", {"escal": 1}),
    AgentSpec("rex", "Rex", {"ring": 1}),
    AgentSpec("roy", "Roy", {"ring": 1}),
    AgentSpec("una", "Una", {"rej": 1}),
    AgentSpec("val", "Val", {"rej": 1}),
    AgentSpec("wes", "Wes", {"rej": 1}),
    AgentSpec("tom", "Tom", {"xfer": 1}),
    AgentSpec("tess", "Tess", {"xfer": 1}),
    AgentSpec("cole", "Cole", {"closing": 1}),
    AgentSpec("ola", "Ola"),
    AgentSpec("gus", "Gus", {"stick": 1}),
    AgentSpec("gil", "Gil", {"stick": 5}),
]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def never_open_now() -> str:
    """An opening window three weekdays from today (UTC), so closed all of today and
    tomorrow: a run that crosses midnight still finds the queue closed."""
    today = dt.datetime.now(dt.UTC).weekday()
    return f"{DAYS[(today + 3) % 7]} 09:00-17:00"


@pytest.fixture(scope="module")
def gateway_site(tmp_path_factory):
    """The gateway shared by every test but the FAQ bot's."""
    root = tmp_path_factory.mktemp("routing")
    site = RoutingSite.start(
        root,
        CONFIG,
        RULES.format(escalate_after_s=ESCALATE_AFTER_S),
        AGENTS,
        params={
            "offer_timeout_s": str(OFFER_TIMEOUT_S),
            "max_lapsed_offers": str(MAX_LAPSED_OFFERS),
            "closed_hours": toml_string(never_open_now()),
            "tiny_max_wait_s": str(TINY_MAX_WAIT_S),
            "spill_max_wait_s": str(SPILL_MAX_WAIT_S),
        },
    )
    yield site
    site.stop()


@pytest.fixture
def site(gateway_site):
    """The shared gateway; whatever the test connected is closed when it ends."""
    yield gateway_site
    gateway_site.hang_up_all()


def test_skill_levels_decide_who_is_offered(site):
    """Only agents at the target's minimum skill level are candidates, the highest
    first (``highest_skill``); a waiting customer goes to a qualified agent as soon as
    one frees up, never to the one below the level who was free all along."""
    sam = site.agent("sam")  # sales 3: below the minimum of 4; idle longest
    sid = site.agent("sid")  # sales 4
    sue = site.agent("sue")  # sales 5
    mark = site.log_mark()

    ann = site.customer("Ann", "skill")
    ann.expect("queued", QUICK)
    offer = take_offer(sue, "Ann")
    conv_ann = offer["conversation"]
    site.log_line(
        rf"offered {conv_ann} to sue \(rule skill, target 1, highest_skill,"
        r" service relay; local: rule skill; compatibility default\)",
        mark,
    )
    accept(sue, offer, ann)

    ben = site.customer("Ben", "skill")
    ben.expect("queued", QUICK)
    accept(sid, take_offer(sid, "Ben"), ben)

    # Both qualified agents are full (capacity 1); Sam has room but too little skill.
    cat = site.customer("Cat", "skill")
    cat.expect("queued", QUICK)
    assert_no_offer(sam, "sales 3 is below the target's minimum of 4")

    sue.send({"type": "end", "conversation": conv_ann})
    assert ann.expect("ended", QUICK, conversation=conv_ann)["reason"] == "agent"
    offer = take_offer(sue, "Cat")
    accept(sue, offer, cat)

    assert_no_offer(sam, "sales 3 is below the target's minimum of 4")
    assert offered_conversations(sam) == []


def test_im_compatibility_selects_agents_whose_software_fits(site):
    """A customer on ``acme-widget`` matches the compatibility entry requiring
    ``typing`` with fallback ``wait``: an agent without the typing feature gets nothing
    and the customer waits, an agent whose hello has ``features: ["typing"]`` gets the
    offer. The agent without typing still serves customers of other clients."""
    pat = site.agent("pat", features=())
    mark = site.log_mark()

    acme = site.customer("Ada", "compat", client=("acme-widget", "2.3.1"))
    acme.expect("queued", QUICK)
    site.log_line(
        r"routing decision source=local media=chat rule=compat .*"
        r": rule compat; compatibility acme-typing",
        mark,
    )
    assert_no_offer(pat, "pat's software lacks typing, which acme-widget requires")

    plain = site.customer("Bo", "compat", client=("other-widget", "1.0"))
    plain.expect("queued", QUICK)
    offer = take_offer(pat, "Bo")
    accept(pat, offer, plain)

    tia = site.agent("tia", features=("typing",))
    offer = take_offer(tia, "Ada")
    assert offer["customer"]["client"] == {"name": "acme-widget", "version": "2.3.1"}, offer
    connected = accept(tia, offer, acme)
    assert connected["conversation"] == offer["conversation"]

    assert_no_offer(pat, "Ada's conversation went to tia")
    assert offer["conversation"] not in offered_conversations(pat)


def test_escalation_widens_to_the_next_target_after_its_timeout(site):
    """The first target (escal >= 4) has no candidate; after its ``timeout_s`` the
    conversation moves to the second target (escal >= 1, queue ``wide``) and only then
    is Lou (escal 1) offered it."""
    lou = site.agent("lou")
    mark = site.log_mark()

    dee = site.customer("Dee", "escalate")
    dee.expect("queued", QUICK)
    waited = Stopwatch()
    assert_no_offer(lou, "escal 1 is below the first target's minimum of 4")

    offer = take_offer(lou, "Dee", timeout=ESCALATE_AFTER_S + QUICK)
    assert waited.elapsed() >= ESCALATE_AFTER_S - CLOCK_SLACK_S, (
        f"offered {waited.elapsed():.2f}s after queueing, before the target's"
        f" {ESCALATE_AFTER_S}s timeout"
    )
    conv = offer["conversation"]
    escalated = site.log_line(rf"conversation {conv} escalates to target 2 of rule escalate", mark)
    offered = site.log_line(rf"offered {conv} to lou \(rule escalate, target 2,", mark)
    assert escalated < offered
    site.log_line(rf"conversation {conv} queued in wide \(rule escalate", escalated)
    accept(lou, offer, dee)
    exchange(dee, lou, conv, "Still there?", "Yes, sorry for the wait.")


def test_ring_no_answer_moves_on_and_repeated_lapses_set_the_agent_away(site):
    """An offer nobody answers is revoked (``timeout``) after ``offer_timeout_s`` and
    goes to the next agent; an agent who lets ``max_lapsed_offers`` offers lapse in a row
    is set away, told so by a system message outside any conversation, and offered
    nothing until available again."""
    rex = site.agent("rex")  # idle longest: offered first
    roy = site.agent("roy")
    mark = site.log_mark()

    eve = site.customer("Eve", "ring")
    eve.expect("queued", QUICK)
    first = take_offer(rex, "Eve")
    assert first["expires_in_s"] == OFFER_TIMEOUT_S, first
    rang = Stopwatch()
    assert_no_offer(roy, "Eve rings at rex alone")
    revoked = rex.expect("revoked", OFFER_TIMEOUT_S + QUICK)
    assert revoked == {"type": "revoked", "offer": first["offer"], "reason": "timeout"}
    offer = take_offer(roy, "Eve")
    assert rang.elapsed() >= OFFER_TIMEOUT_S - CLOCK_SLACK_S, rang.elapsed()
    assert offer["conversation"] == first["conversation"]
    accept(roy, offer, eve)
    site.log_line(rf"offer of {first['conversation']} to rex timed out", mark)

    # Rex has no conversation, Roy one: Rex is offered first again, and lapses again.
    fay = site.customer("Fay", "ring")
    fay.expect("queued", QUICK)
    second = take_offer(rex, "Fay")
    revoked = rex.expect("revoked", OFFER_TIMEOUT_S + QUICK)
    assert revoked == {"type": "revoked", "offer": second["offer"], "reason": "timeout"}
    notice = rex.expect("message", QUICK)
    assert notice == {"type": "message", "from": "system", "text": SET_AWAY_TEXT}, notice
    site.log_line(r"agent rex set away after lapsed offers", mark)
    accept(roy, take_offer(roy, "Fay"), fay)

    # Roy is full (capacity 2), Rex away: the next customer waits.
    gia = site.customer("Gia", "ring")
    gia.expect("queued", QUICK)
    assert_no_offer(rex, "rex is away")
    set_presence(rex, "available")
    third = take_offer(rex, "Gia")
    accept(rex, third, gia)
    assert offered_conversations(rex) == [
        first["conversation"],
        second["conversation"],
        third["conversation"],
    ]


def test_a_rejecting_agent_is_never_offered_that_conversation_again(site):
    """Una and Val both reject Hal's conversation: it waits rather than ring either
    again, and goes to Wes when he logs in. Una still gets the next customer."""
    una = site.agent("una")
    val = site.agent("val")

    hal = site.customer("Hal", "reject")
    hal.expect("queued", QUICK)
    offer = take_offer(una, "Hal")
    conv = offer["conversation"]
    reject(una, offer)
    offer = take_offer(val, "Hal")
    assert offer["conversation"] == conv
    reject(val, offer)

    assert_no_offer(una, "una rejected it")
    assert_no_offer(val, "val rejected it")
    hal.sync()
    assert hal.frames_of("ended") == [], hal.frames_of("ended")

    wes = site.agent("wes")
    offer = take_offer(wes, "Hal")
    assert offer["conversation"] == conv
    accept(wes, offer, hal)
    assert hal.frames_of("connected")[-1]["agent"] == {"alias": "Wes"}

    ivy = site.customer("Ivy", "reject")
    ivy.expect("queued", QUICK)
    accept(una, take_offer(una, "Ivy"), ivy)
    assert offered_conversations(una).count(conv) == 1
    assert offered_conversations(val).count(conv) == 1


def test_transfer_to_a_queue_carries_the_history(site):
    """Tom transfers to the ``specialists`` queue: he leaves the conversation, Tess is
    offered it and connected with everything said so far, and the customer sees her."""
    tom = site.agent("tom")
    tess = site.agent("tess", status="away")  # so that Tom gets the first offer

    jo = site.customer("Jo", "transfer")
    jo.expect("queued", QUICK)
    offer = take_offer(tom, "Jo")
    conv = offer["conversation"]
    accept(tom, offer, jo)
    asked, answered = "My parcel never arrived", "Our specialists will trace it for you."
    exchange(jo, tom, conv, asked, answered)

    set_presence(tess, "available")
    mark = jo.mark()
    tom.send({"type": "transfer", "conversation": conv, "to": {"queue": "specialists"}})
    assert tom.expect("ended", QUICK, conversation=conv)["reason"] == "agent"
    offer = take_offer(tess, "Jo")
    assert offer["conversation"] == conv
    connected = accept(tess, offer)
    assert history(connected) == [
        ("customer", asked),
        ("agent", answered),
        ("system", TRANSFERRED_TEXT),
    ], connected
    assert jo.expect("connected", QUICK, since=mark) == {
        "type": "connected",
        "conversation": conv,
        "agent": {"alias": "Tess"},
    }
    assert TRANSFERRED_TEXT in system_texts(jo)
    exchange(jo, tess, conv, "Hello Tess", "Found it: it is at the depot.")
    assert_no_offer(tom, "tom transferred it away")


def test_transfer_to_a_named_agent_back_to_the_first_one(site):
    """Tom hands Kit to Tess by queue, and Tess hands her back to Tom by name: Tom,
    who transferred (not rejected) the conversation and has room, is offered it with
    its history. The gateway accepts such a transfer, so it must deliver it (or refuse
    it with an error, and this test would say so)."""
    tom = site.agent("tom")
    tess = site.agent("tess", status="away")

    kit = site.customer("Kit", "transfer")
    kit.expect("queued", QUICK)
    offer = take_offer(tom, "Kit")
    conv = offer["conversation"]
    accept(tom, offer, kit)
    exchange(kit, tom, conv, "I need a refund", "Tess handles refunds.")
    set_presence(tess, "available")
    tom.send({"type": "transfer", "conversation": conv, "to": {"queue": "specialists"}})
    accept(tess, take_offer(tess, "Kit"))
    exchange(kit, tess, conv, "Refund please", "Done. Tom will confirm the details.")

    tess.send({"type": "transfer", "conversation": conv, "to": {"agent": "tom"}, "id": "t1"})
    tess.sync()
    assert [f for f in tess.received if f.get("type") == "error"] == [], tess.received
    assert tess.expect("ended", QUICK, conversation=conv)["reason"] == "agent"
    offer = take_offer(tom, "Kit")
    connected = accept(tom, offer, kit)
    said = history(connected)
    assert ("customer", "Refund please") in said, connected
    assert ("agent", "Done. Tom will confirm the details.") in said, connected


def test_outside_service_hours_the_conversation_ends_closed(site):
    """A customer whose queue is outside its hours is told so and the conversation ends
    with reason ``closed``, although an agent who could take it is available."""
    cole = site.agent("cole")

    lee = site.customer("Lee", "closed")
    ended = lee.expect("ended", QUICK)
    assert ended["reason"] == "closed", ended
    assert system_texts(lee) == [CLOSED_TEXT], lee.received
    assert lee.frames_of("queued") == [], lee.received
    assert_no_offer(cole, "the queue is closed")


def test_a_full_queue_and_a_long_wait_end_with_no_agents(site):
    """Queue ``tiny`` holds one customer for at most 1 s and has no overflow: a second
    customer is turned away at once, and the first when the wait runs out; both end with
    reason ``no_agents`` and a polite line."""
    mia = site.customer("Mia", "tiny")
    queued = mia.expect("queued", QUICK)
    waited = Stopwatch()
    assert queued["position"] == 1, queued

    ned = site.customer("Ned", "tiny")
    ended = ned.expect("ended", QUICK)
    assert ended["reason"] == "no_agents", ended
    assert system_texts(ned) == [QUEUE_FULL_TEXT], ned.received
    assert ned.frames_of("queued") == [], ned.received

    ended = mia.expect("ended", TINY_MAX_WAIT_S + QUICK)
    assert ended["reason"] == "no_agents", ended
    assert waited.elapsed() >= TINY_MAX_WAIT_S - CLOCK_SLACK_S, waited.elapsed()
    assert system_texts(mia) == [WAIT_TIMEOUT_TEXT], mia.received


def test_a_full_queue_and_a_long_wait_overflow_to_another_queue(site):
    """Queue ``spill`` holds one customer for at most 1.5 s and overflows to queue
    ``overflow``, where any agent may take it: the second customer overflows at once,
    the first when its wait runs out; Ola, whom ``spill``'s target does not admit, is
    offered each only after it overflowed."""
    ola = site.agent("ola")
    mark = site.log_mark()

    oli = site.customer("Oli", "spill")
    oli.expect("queued", QUICK)
    waited = Stopwatch()
    assert_no_offer(ola, "ola has no skill for spill's target")

    pam = site.customer("Pam", "spill")
    pam.expect("queued", QUICK)
    offer = take_offer(ola, "Pam")
    site.log_line(rf"spill is full: {offer['conversation']} overflows to overflow", mark)
    accept(ola, offer, pam)

    offer = take_offer(ola, "Oli", timeout=SPILL_MAX_WAIT_S + QUICK)
    assert waited.elapsed() >= SPILL_MAX_WAIT_S - CLOCK_SLACK_S, waited.elapsed()
    accept(ola, offer, oli)
    assert oli.frames_of("ended") == [] and pam.frames_of("ended") == []


def test_sticky_routing_prefers_the_customer_s_previous_agent(site):
    """Within ``sticky_s``, a returning customer (same identity e-mail) is offered to the
    agent who served them last, although the rule's strategy (``highest_skill``) picks
    Gil for everyone else."""
    gus = site.agent("gus")  # stick 1
    gil = site.agent("gil", status="away")  # stick 5: away, so that Gus serves Uma first

    uma = site.customer("Uma", "sticky", email="uma@example.org")
    uma.expect("queued", QUICK)
    offer = take_offer(gus, "Uma")
    first = offer["conversation"]
    accept(gus, offer, uma)
    exchange(uma, gus, first, "Where is my order?", "On its way.")
    uma.send({"type": "end"})
    assert gus.expect("ended", QUICK, conversation=first)["reason"] == "customer"
    uma.close()

    set_presence(gil, "available")
    vic = site.customer("Vic", "sticky", email="vic@example.org")
    vic.expect("queued", QUICK)
    accept(gil, take_offer(gil, "Vic"), vic)  # highest skill; Gil still has room (2)
    assert_no_offer(gus, "Vic is new: highest skill wins")

    mark = site.log_mark()
    back = site.customer("Uma", "sticky", email="uma@example.org")
    back.expect("queued", QUICK)
    offer = take_offer(gus, "Uma")
    again = offer["conversation"]
    assert again != first
    assert_no_offer(gil, "Uma returns within sticky_s: her previous agent first")
    site.log_line(rf"offered {again} to gus \(rule sticky, target 1,", mark)
    accept(gus, offer, back)
    assert back.frames_of("connected")[-1]["agent"] == {"alias": "Gus"}


# -- the FAQ bot, in a gateway of its own ----------------------------------------

FAQ_CONFIG = """\
[gateway]
name = "imgateway-faq"
data_dir = {data_dir}
# Customers who hang up leave at once: these tests predate resuming (test_restart.py).
resume_grace_s = 0

[logging]
level = "debug"

[listeners]
jsonim = ["tcp:0:interface=127.0.0.1"]

[admin]
# Port 0: several gateways (and test suites) run at once.
listen = ["tcp:0:interface=127.0.0.1"]
metrics = ["tcp:0:interface=127.0.0.1"]

[jsonim]
heartbeat_s = 3600
hello_timeout_s = 60
messages_per_second = 100.0
message_burst = 100

[agents]
default_capacity = 2
offer_timeout_s = 5

[routing]
default_queue = "general"
when_no_agents = "wait"
rules = {rules}

[queues.general]
max_wait_s = 600

[queues.humans]
max_wait_s = 600

[interview]
answer_timeout_s = 600
greeting = "Welcome!"

[[interview.fields]]
name = "name"
prompt = "What is your name?"
kind = "text"
max_length = 80

[bots.faq]
enabled = true
name = "faq-bot"
alias = "Help Bot"
knowledge = {knowledge}
handover_queue = "humans"
greeting = {greeting}
follow_up = {follow_up}
no_answer = {no_answer}
handover_text = {handover}
max_misses = 2
"""

FAQ_RULES = """\
[[rules]]
# The bot first; people only when it hands over (or if it does not accept in 5 s).
name = "faq-first"
[rules.match]
topic = "faq"
[[rules.targets]]
bots = true
timeout_s = 5
[[rules.targets]]
queue = "humans"
bots = false

[default]
[[default.targets]]
bots = false
"""

FAQ_KNOWLEDGE = """\
[[faq]]
question = "How do I reset my password?"
keywords = ["password", "reset", "forgot"]
answer = "Choose 'Forgot password?' on the sign-in page; the link we send is valid for an hour."

[[faq]]
question = "What are your opening hours?"
keywords = ["opening hours", "open", "hours"]
answer = "Monday to Friday, 8:00 to 20:00."
"""
FAQ_GREETING = "Hello, I am the help bot."
FAQ_FOLLOW_UP = "Anything else?"
FAQ_NO_ANSWER = "Sorry, I do not know that one."
FAQ_HANDOVER = "Connecting you with a person now."
# `from` is a keyword in Python: the field filter for JsonImClient.expect.
FROM_AGENT = {"from": "agent"}
PASSWORD_ANSWER = (
    "Choose 'Forgot password?' on the sign-in page; the link we send is valid for an hour."
)


@pytest.fixture(scope="module")
def faq_site(tmp_path_factory):
    """A gateway whose FAQ bot is enabled, with one human agent."""
    root = tmp_path_factory.mktemp("faq")
    site = RoutingSite.start(
        root,
        FAQ_CONFIG,
        FAQ_RULES,
        [AgentSpec("hal", "Hal", {"billing": 3})],
        params={
            "knowledge": toml_string(str(root / "faq.toml")),
            "greeting": toml_string(FAQ_GREETING),
            "follow_up": toml_string(FAQ_FOLLOW_UP),
            "no_answer": toml_string(FAQ_NO_ANSWER),
            "handover": toml_string(FAQ_HANDOVER),
        },
        extra_files={"faq.toml": FAQ_KNOWLEDGE},
    )
    yield site
    site.stop()


@pytest.fixture
def faq(faq_site):
    """The FAQ gateway; whatever the test connected is closed when it ends."""
    yield faq_site
    faq_site.hang_up_all()


def test_faq_bot_answers_then_hands_over_to_a_human_with_the_history(faq):
    """The rule sends topic ``faq`` to bots first: the FAQ bot (alias Help Bot) greets,
    answers a password question from its knowledge file, and when asked for a person
    transfers to its handover queue, where Hal is offered the conversation with the
    customer's questions and the bot's answers."""
    site = faq
    hal = site.agent("hal")
    mark = site.log_mark()

    zoe = site.customer("Zoe", "faq")
    connected = zoe.expect("connected", QUICK)
    conv = connected["conversation"]
    assert connected["agent"] == {"alias": "Help Bot"}, connected
    site.log_line(rf"offered {conv} to faq-bot \(rule faq-first, target 1,", mark)
    greeting = zoe.expect("message", QUICK, conversation=conv, **FROM_AGENT)
    assert greeting["text"] == FAQ_GREETING, greeting
    assert_no_offer(hal, "the bot takes the conversation first")

    question = "I forgot my password, how do I reset it?"
    zoe.send({"type": "message", "text": question, "id": "q1"})
    zoe.expect("ack", QUICK, id="q1")
    answer = zoe.expect("message", QUICK, conversation=conv, **FROM_AGENT)
    assert answer["text"] == PASSWORD_ANSWER, answer
    follow_up = zoe.expect("message", QUICK, conversation=conv, **FROM_AGENT)
    assert follow_up["text"] == FAQ_FOLLOW_UP, follow_up

    request = "Thanks, but I want to talk to a person about my account"
    zoe.send({"type": "message", "text": request, "id": "q2"})
    handover = zoe.expect("message", QUICK, conversation=conv, **FROM_AGENT)
    assert handover["text"] == FAQ_HANDOVER, handover

    offer = take_offer(hal, "Zoe")
    assert offer["conversation"] == conv
    site.log_line(rf"FAQ bot hands {conv} over to queue humans", mark)
    connected = accept(hal, offer)
    assert history(connected) == [
        ("agent", FAQ_GREETING),
        ("customer", question),
        ("agent", PASSWORD_ANSWER),
        ("agent", FAQ_FOLLOW_UP),
        ("customer", request),
        ("agent", FAQ_HANDOVER),
        ("system", TRANSFERRED_TEXT),
    ], connected
    assert zoe.expect("connected", QUICK, conversation=conv)["agent"] == {"alias": "Hal"}
    exchange(zoe, hal, conv, "Hello Hal", "Hello Zoe, let us look at your account.")


def test_faq_bot_hands_over_after_questions_it_cannot_answer(faq):
    """Two lines in a row that match no FAQ entry (``max_misses = 2``): the bot says it
    does not know once, then hands over; the human sees both questions."""
    site = faq
    hal = site.agent("hal")

    ray = site.customer("Ray", "faq")
    conv = ray.expect("connected", QUICK)["conversation"]
    assert ray.expect("message", QUICK, **FROM_AGENT)["text"] == FAQ_GREETING

    first, second = "My spaceship's warp drive rattles", "It rattles louder at warp nine"
    ray.send({"type": "message", "text": first, "id": "q1"})
    assert ray.expect("message", QUICK, **FROM_AGENT)["text"] == FAQ_NO_ANSWER
    ray.send({"type": "message", "text": second, "id": "q2"})
    assert ray.expect("message", QUICK, **FROM_AGENT)["text"] == FAQ_HANDOVER

    offer = take_offer(hal, "Ray")
    assert offer["conversation"] == conv
    connected = accept(hal, offer, ray)
    assert history(connected) == [
        ("agent", FAQ_GREETING),
        ("customer", first),
        ("agent", FAQ_NO_ANSWER),
        ("customer", second),
        ("agent", FAQ_HANDOVER),
        ("system", TRANSFERRED_TEXT),
    ], connected
