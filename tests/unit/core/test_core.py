"""The conversation machinery, driven through the core's session API."""

from __future__ import annotations

import attrs
import pytest
from core_helpers import FakeParty, FaultyStore, make_harness, result_of
from twisted.internet.defer import Deferred, fail
from zope.interface.verify import verifyObject

from gateway.core import events as ev
from gateway.core.errors import AuthFailed, BadRequest, InternalError, NotAllowed, Unavailable
from gateway.core.interfaces import (
    IAgentSession,
    ICustomerSession,
    IDelivery,
    IGateway,
)
from gateway.directory.interfaces import IAgentDirectory
from gateway.routing.interfaces import IRouter
from gateway.store.errors import StoreBusy
from gateway.store.interfaces import IStore
from gateway.store.memory import MemoryStore
from gateway.store.records import AgentRecord


def test_interfaces_are_provided():
    h = make_harness()
    verifyObject(IStore, h.store)
    verifyObject(IAgentDirectory, h.gateway.core.directory)
    verifyObject(IRouter, h.gateway.dispatcher.plans)
    verifyObject(IGateway, h.gateway)
    verifyObject(IDelivery, h.gateway.core.delivery)
    _party, customer = h.customer()
    verifyObject(ICustomerSession, customer)
    _party, agent = h.agent("anna")
    verifyObject(IAgentSession, agent)


def test_interview_asks_each_field_then_queues():
    h = make_harness()
    party, session = h.customer()
    greeting, prompt = party.take()
    assert isinstance(greeting, ev.Message) and greeting.sender == ev.SYSTEM
    assert greeting.text == h.gateway.config.greeting
    assert prompt == ev.Prompt(field="name", text="What is your name?")

    assert result_of(session.say("Dana")).startswith("g-")
    (topic,) = party.take()
    assert topic.field == "topic"
    assert [c.value for c in topic.choices] == ["billing", "tech", "other"]
    assert topic.text.splitlines()[1:] == [
        "1. Billing",
        "2. Technical support",
        "3. Something else",
    ]

    result_of(session.say("2"))
    # No agent is logged in to serve it: no wait is promised.
    assert party.take() == [ev.Queued(position=1, eta_s=None)]
    conv = session.conversation
    assert conv.state == "queued" and conv.queue == "general"
    assert conv.answers == {"name": "Dana", "topic": "tech"}


def test_a_wrong_answer_is_asked_again():
    h = make_harness()
    party, session = h.customer({"name": "Dana"})
    party.take()
    result_of(session.say("astrology"))
    (again,) = party.take()
    assert again.field == "topic"
    assert again.text.startswith("Sorry, I didn't get that. What can we help you with?")
    result_of(session.say("billing"))
    # No agent is logged in to serve it: no wait is promised.
    assert party.take() == [ev.Queued(position=1, eta_s=None)]


def test_answers_given_up_front_are_not_asked():
    h = make_harness()
    party, _ = h.customer({"name": "Dana", "topic": "Billing", "email": "d@example.org"})
    # No greeting announcing questions, no questions: straight to the queue.
    # No agent is logged in to serve it: no wait is promised.
    assert party.take() == [ev.Queued(position=1, eta_s=None)]


def test_whole_conversation_from_offer_to_end():
    h = make_harness()
    anna, anna_s = h.agent("anna")
    cust, cust_s = h.customer()
    cust.take()
    result_of(cust_s.say("Dana"))
    result_of(cust_s.say("billing"))
    offer = anna.last(ev.Offer)
    conv_id = cust_s.conversation.id
    assert offer.conversation == conv_id and offer.expires_in_s == 20
    assert offer.customer == ev.CustomerCard(
        alias=cust_s.conversation.alias,
        protocol="jsonim",
        client=ev.ClientInfo("acme", "2.3.1"),
        topic="billing",
        identity={"name": "Dana"},
    )
    assert cust_s.conversation.state == "offered"

    anna_s.accept(offer.offer)
    assert cust.last(ev.Connected) == ev.Connected(conv_id, "Anna A.")
    connected = anna.last(ev.Connected)
    assert connected.peer_alias == cust_s.conversation.alias
    said = [(e.sender, e.text) for e in connected.history]
    assert (ev.CUSTOMER, "Dana") in said and (ev.CUSTOMER, "billing") in said

    cust.take()
    anna.take()
    msg = result_of(cust_s.say("my bill is wrong"))
    (delivered,) = anna.take()
    assert delivered == ev.Message(conv_id, ev.CUSTOMER, msg, "my bill is wrong", h.clock.seconds())
    reply = result_of(anna_s.say(conv_id, "Let me look."))
    assert cust.take() == [ev.Message(conv_id, ev.AGENT, reply, "Let me look.", 0.0)]
    stored = [(m.sender, m.text, m.agent) for m in result_of(h.store.transcript(conv_id))]
    assert stored[-2:] == [
        ("customer", "my bill is wrong", None),
        ("agent", "Let me look.", "anna"),
    ]

    cust_s.typing("active")
    assert anna.take() == [ev.Typing(conv_id, "active")]
    anna_s.typing(conv_id, "paused")
    assert cust.take() == [ev.Typing(conv_id, "paused")]
    with pytest.raises(BadRequest):
        cust_s.typing("dancing")

    cust_s.end()
    assert cust.take() == [ev.Ended(conv_id, "customer")]
    assert anna.take() == [ev.Ended(conv_id, "customer")]
    assert result_of(h.store.get_conversation(conv_id)).end_reason == "customer"
    with pytest.raises(NotAllowed):
        cust_s.end()
    with pytest.raises(NotAllowed):
        result_of(cust_s.say("hello?"))
    assert anna_s.agent.load == 0


def connect(h, agent_party, agent_session, name="Dana"):
    cust, cust_s = h.queued_customer(name)
    offer = agent_party.last(ev.Offer)
    assert offer.conversation == cust_s.conversation.id
    agent_session.accept(offer.offer)
    return cust, cust_s


def test_agent_drop_requeues_with_history_to_next_agent():
    h = make_harness()
    anna, anna_s = h.agent("anna")
    cust, cust_s = connect(h, anna, anna_s)
    conv_id = cust_s.conversation.id
    result_of(cust_s.say("the invoice is double"))
    result_of(anna_s.say(conv_id, "checking"))
    cust.take()

    anna_s.disconnected()
    dropped, queued = cust.take()
    assert dropped.sender == ev.SYSTEM and "disconnected" in dropped.text
    # Nobody else is logged in: no wait is promised. Anna held it 0 s: the
    # handle-time estimate moved from 60 s to 48 s.
    assert queued == ev.Queued(position=1, eta_s=None)
    assert h.gateway.queues["general"].eta(1) == 48

    bob, bob_s = h.agent("bob")
    offer = bob.last(ev.Offer)
    bob_s.accept(offer.offer)
    history = [(e.sender, e.text) for e in bob.last(ev.Connected).history]
    assert history[-3:] == [
        (ev.CUSTOMER, "the invoice is double"),
        (ev.AGENT, "checking"),
        (ev.SYSTEM, dropped.text),
    ]
    assert cust.last(ev.Connected) == ev.Connected(conv_id, "Bob A.")


def test_offer_times_out_then_next_agent_then_rings_again():
    h = make_harness()
    anna, anna_s = h.agent("anna")
    h.clock.advance(1)
    bob, _bob_s = h.agent("bob")
    _, cust_s = h.queued_customer()
    first = anna.last(ev.Offer)  # idle longest
    assert not bob.of(ev.Offer)
    h.clock.advance(20)
    assert anna.last(ev.Revoked) == ev.Revoked(first.offer, "timeout")
    second = bob.last(ev.Offer)
    assert second.conversation == first.conversation
    h.clock.advance(20)
    assert bob.last(ev.Revoked) == ev.Revoked(second.offer, "timeout")
    # Nobody else: both are rung again rather than the customer waiting forever.
    assert len(anna.of(ev.Offer)) == 2
    with pytest.raises(NotAllowed):
        anna_s.accept(first.offer)
    anna_s.accept(anna.last(ev.Offer).offer)
    assert cust_s.conversation.state == "connected"


def test_rejecting_agent_is_not_offered_again():
    h = make_harness()
    anna, anna_s = h.agent("anna")
    _, cust_s = h.queued_customer()
    anna_s.reject(anna.last(ev.Offer).offer)
    assert cust_s.conversation.state == "queued"
    h.clock.advance(100)
    assert len(anna.of(ev.Offer)) == 1
    bob, _bob_s = h.agent("bob")
    assert bob.last(ev.Offer).conversation == cust_s.conversation.id


def test_customer_leaving_revokes_the_offer():
    h = make_harness()
    anna, anna_s = h.agent("anna")
    _, cust_s = h.queued_customer()
    offer = anna.last(ev.Offer)
    cust_s.disconnected()
    assert anna.last(ev.Revoked) == ev.Revoked(offer.offer, "customer_left")
    assert anna_s.agent.load == 0
    assert h.gateway.conversations == {}


def test_customer_leaving_in_each_state_ends_it():
    h = make_harness()
    party, session = h.customer()
    session.disconnected()
    assert session.conversation.state == "ended"
    assert not party.of(ev.Ended)  # nobody left to tell
    party, session = h.queued_customer()
    session.end()
    assert party.last(ev.Ended).reason == "customer"
    assert len(h.gateway.queues["general"]) == 0


def test_capacity_and_queue_positions():
    h = make_harness()
    anna, anna_s = h.agent("anna")
    anna_s.agent.change(capacity=1)
    _c1, s1 = connect(h, anna, anna_s)
    c2, s2 = h.queued_customer("Two")
    c3, s3 = h.queued_customer("Three")
    # 60 s a conversation (the configured estimate), one agent busy in this queue.
    assert c2.last(ev.Queued) == ev.Queued(1, 60)
    assert c3.last(ev.Queued) == ev.Queued(2, 120)
    assert len(anna.of(ev.Offer)) == 1
    s2.end()
    assert c3.last(ev.Queued) == ev.Queued(1, 60)
    anna_s.end(s1.conversation.id)
    assert anna.last(ev.Offer).conversation == s3.conversation.id


def test_an_agent_at_capacity_hears_of_the_end_before_the_next_offer():
    # A client counting its seats must never see an offer beyond its capacity.
    h = make_harness()
    anna, anna_s = h.agent("anna")
    anna_s.agent.change(capacity=1)
    _c1, s1 = connect(h, anna, anna_s)
    _c2, s2 = h.queued_customer("Two")
    anna.take()
    s1.end()
    told = [e for e in anna.take() if isinstance(e, ev.Ended | ev.Offer)]
    assert [type(e) for e in told] == [ev.Ended, ev.Offer]
    assert told[1].conversation == s2.conversation.id


def test_transfer_to_queue_and_to_agent():
    h = make_harness()
    anna, anna_s = h.agent("anna")
    cust, cust_s = connect(h, anna, anna_s)
    conv_id = cust_s.conversation.id
    bob, bob_s = h.agent("bob")
    with pytest.raises(Unavailable):
        anna_s.transfer(conv_id, queue="nowhere")
    with pytest.raises(Unavailable):
        anna_s.transfer(conv_id, agent="carl")  # not logged in
    with pytest.raises(BadRequest):
        anna_s.transfer(conv_id, agent="anna")
    anna_s.transfer(conv_id, agent="bob")
    assert anna.last(ev.Ended) == ev.Ended(conv_id, "agent")
    bob_s.accept(bob.last(ev.Offer).offer)
    assert cust.last(ev.Connected).peer_alias == "Bob A."
    bob_s.transfer(conv_id, queue="general")
    # Anna transferred it away once: she is not offered it back.
    assert not [o for o in anna.of(ev.Offer) if o.conversation == conv_id][1:]
    carl, _carl_s = h.agent("carl")
    assert carl.last(ev.Offer).conversation == conv_id


def test_wait_timeout_and_no_agents_policy():
    h = make_harness()
    cust, _cust_s = h.queued_customer()
    h.clock.advance(900)
    # Past max_wait_s with no overflow queue: a polite end, reason no_agents.
    assert cust.last(ev.Ended).reason == "no_agents"
    h = make_harness(when_no_agents="end")
    cust, _ = h.queued_customer()
    assert cust.last(ev.Ended).reason == "no_agents"


def test_interview_answer_timeout():
    h = make_harness()
    cust, _ = h.customer()
    h.clock.advance(600)
    assert cust.last(ev.Ended).reason == "timeout"


def test_agent_authentication():
    h = make_harness()
    _, result = h.agent("anna", password="wrong")
    assert result.check(AuthFailed)
    _, result = h.agent("mallory")
    assert result.check(AuthFailed)
    _, anna_s = h.agent("anna")
    with pytest.raises(BadRequest):
        anna_s.set_presence("dancing")


def test_second_login_replaces_the_first_and_requeues():
    h = make_harness()
    anna, anna_s = h.agent("anna")
    _cust, cust_s = connect(h, anna, anna_s)
    anna2, _anna2_s = h.agent("anna")
    assert anna.closed == "logged in from another connection (jsonim)"
    assert (
        anna.last(ev.Notice).text
        == "You are logged out: logged in from another connection (jsonim)."
    )
    assert anna2.last(ev.Offer).conversation == cust_s.conversation.id


def test_agent_cannot_touch_a_conversation_it_is_not_in():
    h = make_harness()
    anna, anna_s = h.agent("anna")
    _bob, bob_s = h.agent("bob")
    _, cust_s = connect(h, anna, anna_s)
    conv_id = cust_s.conversation.id
    with pytest.raises(NotAllowed):
        result_of(bob_s.say(conv_id, "hi"))
    with pytest.raises(NotAllowed):
        bob_s.end(conv_id)
    with pytest.raises(NotAllowed):
        bob_s.accept("o-unknown")


def test_store_failure_is_internal_and_the_message_is_not_delivered():
    h = make_harness(store=FaultyStore())
    anna, anna_s = h.agent("anna")
    _cust, cust_s = connect(h, anna, anna_s)
    anna.take()
    with pytest.raises(InternalError):
        result_of(cust_s.say("poison"))
    assert anna.take() == []
    assert result_of(cust_s.say("fine")).startswith("g-")


class DeferredAppends(MemoryStore):
    """A MemoryStore whose appends commit (or fail) only when the test says so."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[tuple[Deferred, object]] = []

    def append(self, message):
        d = Deferred()
        self.pending.append((d, message))
        return d

    def commit(self, ok: bool = True) -> None:
        pending, self.pending = self.pending, []
        for d, message in pending:
            if ok:
                self.messages[message.conversation].append(message)
                d.callback(None)
            else:
                d.errback(OSError("disk I/O error"))


def test_a_message_is_delivered_on_accept_and_acknowledged_after_the_commit():
    store = DeferredAppends()
    h = make_harness(store=store)
    anna, anna_s = h.agent("anna")
    cust, cust_s = connect(h, anna, anna_s)
    conv_id = cust_s.conversation.id
    store.commit()
    anna.take()
    cust.take()
    acks = []
    cust_s.say("one").addBoth(acks.append)
    anna_s.say(conv_id, "two").addBoth(acks.append)
    cust_s.say("three").addBoth(acks.append)
    one, three = anna.take()
    (two,) = cust.take()
    assert [(e.sender, e.text) for e in (one, two, three)] == [
        ("customer", "one"),
        ("agent", "two"),
        ("customer", "three"),
    ]
    assert [e.text for e in cust_s.conversation.history[-3:]] == ["one", "two", "three"]
    assert acks == []
    store.commit()
    assert acks == [one.msg, two.msg, three.msg]
    # The transcript's order is the order delivered.
    assert [m.id for m in store.messages[conv_id][-3:]] == acks


def test_a_commit_failing_after_delivery_fails_the_sender_not_the_delivery():
    store = DeferredAppends()
    h = make_harness(store=store)
    anna, anna_s = h.agent("anna")
    _cust, cust_s = connect(h, anna, anna_s)
    store.commit()
    anna.take()
    results = []
    cust_s.say("lost on disk").addBoth(results.append)
    (delivered,) = anna.take()
    assert delivered.text == "lost on disk"
    store.commit(ok=False)
    (failure,) = results
    assert failure.check(InternalError)
    # Not "send it again": the agent has it already, and would see it twice.
    assert failure.value.text == "the message was delivered but could not be stored"


def test_a_message_is_refused_undelivered_while_the_store_is_busy():
    h = make_harness()
    anna, anna_s = h.agent("anna")
    _cust, cust_s = connect(h, anna, anna_s)
    anna.take()
    h.store.append = lambda entry: fail(StoreBusy("50000 operations wait for the database"))
    results = []
    cust_s.say("too much").addBoth(results.append)
    (failure,) = results
    assert failure.check(Unavailable)
    assert failure.value.text == "the service is busy; please send it again"
    assert anna.take() == []
    assert [e.text for e in cust_s.conversation.history if e.text == "too much"] == []


def test_an_interview_answer_counts_once_stored():
    store = DeferredAppends()
    h = make_harness(store=store)
    party, session = h.customer()
    store.commit()
    party.take()
    failed = []
    session.say("Dana").addErrback(failed.append)
    assert party.take() == []
    store.commit(ok=False)
    assert failed[0].check(InternalError)
    # Told to send it again, the customer is still answering the same question.
    assert session.conversation.interview.current().field == "name"
    assert party.take() == []
    acks = []
    session.say("Dana").addCallback(acks.append)
    assert party.take() == []
    store.commit()
    (topic,) = party.take()
    assert topic.field == "topic"
    assert [e.text for e in session.conversation.history] == [
        h.gateway.config.greeting,
        "What is your name?",
        "Dana",
        topic.text,
    ]
    assert acks == [m.id for m in store.messages[session.conversation.id] if m.text == "Dana"]


def test_shutdown_ends_everything_and_refuses_newcomers():
    h = make_harness()
    anna, anna_s = h.agent("anna")
    cust, _cust_s = connect(h, anna, anna_s)
    h.gateway.shutdown()
    assert cust.last(ev.Ended).reason == "shutdown"
    assert anna.last(ev.Ended).reason == "shutdown"
    assert cust.closed == anna.closed == "shutdown"
    with pytest.raises(Unavailable):
        h.customer()


def test_a_full_queue_ends_the_newcomer_politely():
    h = make_harness()
    queue = h.gateway.queues["general"]
    queue.config = attrs.evolve(queue.config, max_waiting=2)
    h.queued_customer("One")
    h.queued_customer("Two")
    third, third_s = h.queued_customer("Three")
    told = third.of(ev.Message)[-1]
    assert told.sender == ev.SYSTEM and "too many customers" in told.text
    assert third.last(ev.Ended) == ev.Ended(third_s.conversation.id, "no_agents")
    assert len(queue) == 2


def test_client_identified_after_arrival_is_offered_and_stored():
    h = make_harness()
    _, session = h.customer(client=("unknown", ""))
    session.identify(ev.ClientInfo("Gajim", "1.8.4"))
    result_of(session.say("Dana"))
    result_of(session.say("billing"))
    anna, _ = h.agent("anna")
    assert anna.last(ev.Offer).customer.client == ev.ClientInfo("Gajim", "1.8.4")
    record = result_of(h.store.get_conversation(session.conversation.id))
    assert (record.client_name, record.client_version) == ("Gajim", "1.8.4")


def test_agent_attached_by_its_upstream_address():
    h = make_harness(agents=())
    h.store.add_agent(
        AgentRecord(
            name="anna",
            display_name="Anna",
            password_hash="-",
            capacity=1,
            addresses=("xmpp:anna@corp.example",),
        )
    )
    party = FakeParty()
    session = result_of(
        h.gateway.agent_attach(
            party,
            protocol="xmpp",
            address="xmpp:anna@corp.example",
            client=ev.ClientInfo("Gajim", "1.8"),
        )
    )
    assert session.name == "anna" and h.directory.get("anna").protocol == "xmpp"
    with pytest.raises(AuthFailed):
        result_of(
            h.gateway.agent_attach(
                FakeParty(),
                protocol="xmpp",
                address="xmpp:eve@corp.example",
                client=ev.ClientInfo(),
            )
        )


def test_message_ids_are_unique_per_process_and_across_processes():
    from gateway.core.ids import IdFactory

    first, second = IdFactory(), IdFactory()
    ids = [first.message() for _ in range(1000)] + [second.message() for _ in range(1000)]
    assert len(set(ids)) == 2000
    assert all(i.startswith("g-") and len(i) == 22 for i in ids)


def test_the_opening_line_is_stored_and_given_to_the_agent_but_answers_nothing():
    h = make_harness()
    agent, agent_s = h.agent("anna")
    party = FakeParty()
    session = h.gateway.customer_arrived(
        party,
        protocol="xmpp",
        client=ev.ClientInfo("Gajim", "1.8"),
        answers={},
        opening="hello, I have a billing question",
    )
    conv_id = session.conversation.id
    stored = h.store.messages[conv_id]
    assert (stored[0].sender, stored[0].text) == ("customer", "hello, I have a billing question")
    # The interview still asks the first question: the opening line answered nothing.
    assert party.last(ev.Prompt).field == "name"
    result_of(session.say("Dana"))
    result_of(session.say("billing"))
    agent_s.accept(agent.last(ev.Offer).offer)
    history = agent.last(ev.Connected).history
    assert history[0] == ev.HistoryEntry("customer", "hello, I have a billing question", 0.0)
    assert session.conversation.answers["name"] == "Dana"


class _Narrow(FakeParty):
    """A party whose wire carries at most 10 characters of text."""

    def refuses(self, event):
        return "at most 10 characters" if len(event.text) > 10 else None


def test_a_line_the_recipient_cannot_carry_is_refused_to_the_sender():
    from zope.interface import directlyProvides

    from gateway.core.interfaces import IPartyLimits

    h = make_harness()
    agent = _Narrow()
    directlyProvides(agent, IPartyLimits)
    results = []
    h.gateway.agent_login(
        agent, protocol="jsonim", name="anna", password="secret", client=ev.ClientInfo()
    ).addBoth(results.append)
    agent_s = results[0]
    agent_s.set_presence("available")
    _, customer_s = h.queued_customer()
    agent_s.accept(agent.last(ev.Offer).offer)
    conv_id = customer_s.conversation.id
    before = len(h.store.messages[conv_id])
    d = customer_s.say("far too long for it")
    failure = []
    d.addErrback(failure.append)
    assert isinstance(failure[0].value, BadRequest)
    assert failure[0].value.text == "not sent: at most 10 characters"
    assert len(h.store.messages[conv_id]) == before
    assert result_of(customer_s.say("short")).startswith("g-")


def test_say_then_tells_the_sender_after_the_commit_and_the_other_side_at_once():
    store = DeferredAppends()
    h = make_harness(store=store)
    anna, anna_s = h.agent("anna")
    cust, cust_s = connect(h, anna, anna_s)
    conv_id = cust_s.conversation.id
    store.commit()
    anna.take()
    cust.take()
    told = []
    cust_s.say_then("one", lambda msg, error: told.append(("customer", msg, error)))
    anna_s.say_then(conv_id, "two", lambda msg, error: told.append(("agent", msg, error)))
    (one,) = anna.take()
    (two,) = cust.take()
    assert (one.text, two.text) == ("one", "two")
    assert told == []
    store.commit()
    assert told == [("customer", one.msg, None), ("agent", two.msg, None)]
    # A store that commits within the call (MemoryStore): delivered first, then told.
    h2 = make_harness()
    anna2, anna2_s = h2.agent("anna")
    _c2, c2_s = connect(h2, anna2, anna2_s)
    anna2.take()
    order = []
    anna2.deliver = lambda event: order.append(("delivered", event.text))
    c2_s.say_then("now", lambda msg, error: order.append(("told", error)))
    assert order == [("delivered", "now"), ("told", None)]


def test_say_then_refusals_reach_done_as_gateway_errors_and_are_not_delivered():
    h = make_harness()
    anna, anna_s = h.agent("anna")
    _cust, cust_s = connect(h, anna, anna_s)
    anna.take()
    h.store.append = lambda entry: fail(StoreBusy("50000 operations wait for the database"))
    told = []
    cust_s.say_then("too much", lambda msg, error: told.append((msg, error)))
    ((msg, error),) = told
    assert msg is None and isinstance(error, Unavailable)
    assert anna.take() == []
    told.clear()
    anna_s.say_then("c-unknown", "hi", lambda msg, error: told.append((msg, error)))
    ((msg, error),) = told
    assert msg is None and isinstance(error, NotAllowed)


def test_a_store_raising_on_append_fails_the_sender_and_delivers_nothing():
    h = make_harness()
    anna, anna_s = h.agent("anna")
    _cust, cust_s = connect(h, anna, anna_s)
    anna.take()

    def broken(entry, done):
        raise OSError("the database went away")

    h.store.append_then = broken
    told = []
    cust_s.say_then("lost", lambda msg, error: told.append((msg, error)))
    ((msg, error),) = told
    assert msg is None and isinstance(error, InternalError)
    assert error.text == "the message could not be stored; please send it again"
    assert anna.take() == []
