"""Holding and resuming conversations: after a drop, and after a restart (gateway.core.resume)."""

from __future__ import annotations

from core_helpers import FakeParty, make_harness, result_of

from gateway.core import events as ev
from gateway.core import resume
from gateway.core.errors import NotAllowed
from gateway.store.records import ConversationRecord, StoredMessage

GRACE = 120.0


def connected(h, name="anna"):
    """A customer connected to agent ``name``: (customer party, session, agent party, session)."""
    agent, agent_s = h.agent(name)
    customer, customer_s = h.queued_customer()
    agent_s.accept(agent.last(ev.Offer).offer)
    return customer, customer_s, agent, agent_s


def test_a_customer_is_given_a_resume_token_stored_hashed():
    h = make_harness(resume_grace_s=GRACE)
    _, session = h.queued_customer()
    conv = session.conversation
    assert session.resume_token and len(session.resume_token) >= 32
    assert h.store.resumes[conv.id] == (resume.token_hash(session.resume_token), None)


def test_a_dropped_customer_resumes_the_same_conversation():
    h = make_harness(resume_grace_s=GRACE)
    _, customer_s, agent, agent_s = connected(h)
    conv_id, token = customer_s.conversation.id, customer_s.resume_token
    customer_s.disconnected()
    assert h.gateway.conversations[conv_id].state == "connected"
    assert "lost the connection" in agent.last(ev.Notice).text
    # The agent writes on; it is stored now and delivered on resume.
    msg = result_of(agent_s.say(conv_id, "Are you still there?"))
    assert [m.id for m in h.store.messages[conv_id]][-1] == msg

    h.clock.advance(GRACE - 1)
    again = FakeParty()
    session = h.gateway.customer_arrived(
        again, protocol="jsonim", client=ev.ClientInfo("acme", "2"), answers={}, resume=token
    )
    assert session.conversation.id == conv_id
    assert session.resume_token not in (None, token)  # a token is good once
    texts = [e.text for e in again.of(ev.Message)]
    assert resume.RESUMED in texts and "Are you still there?" in texts
    assert again.last(ev.Connected) == ev.Connected(conv_id, "Anna A.")
    assert agent.last(ev.Notice).text == resume.BACK.format(alias=session.conversation.alias)
    # Both sides talk on, and the grace timer no longer ends it.
    result_of(session.say("Yes, sorry"))
    assert agent.last(ev.Message).text == "Yes, sorry"
    h.clock.advance(GRACE * 2)
    assert conv_id in h.gateway.conversations


def test_a_token_resumes_once():
    h = make_harness(resume_grace_s=GRACE)
    _, customer_s, _, _ = connected(h)
    token = customer_s.resume_token
    customer_s.disconnected()
    first = h.gateway.customer_arrived(
        FakeParty(), protocol="jsonim", client=ev.ClientInfo("a", "1"), answers={}, resume=token
    )
    first.disconnected()
    second = h.gateway.customer_arrived(
        FakeParty(), protocol="jsonim", client=ev.ClientInfo("a", "1"), answers={}, resume=token
    )
    assert second.conversation.id != first.conversation.id


def test_a_customer_who_does_not_come_back_is_ended_after_the_grace():
    h = make_harness(resume_grace_s=GRACE)
    _, customer_s, agent, _ = connected(h)
    conv_id = customer_s.conversation.id
    customer_s.disconnected()
    h.clock.advance(GRACE)
    assert conv_id not in h.gateway.conversations
    assert agent.last(ev.Ended) == ev.Ended(conv_id, "customer")
    assert h.store.conversations[conv_id].end_reason == "customer"
    assert len(h.gateway.holds) == 0


def test_an_unknown_token_opens_a_new_conversation():
    h = make_harness(resume_grace_s=GRACE)
    party = FakeParty()
    session = h.gateway.customer_arrived(
        party, protocol="jsonim", client=ev.ClientInfo("a", "1"), answers={}, resume="nope"
    )
    assert session.conversation.state == "interview"


def test_resume_by_address_key():
    h = make_harness(resume_grace_s=GRACE)
    agent, agent_s = h.agent("anna")
    first = h.gateway.customer_arrived(
        FakeParty(),
        protocol="xmpp",
        client=ev.ClientInfo("Gajim", "1.8"),
        answers={"name": "Dana", "topic": "billing"},
        key="xmpp:dana@example.org",
    )
    agent_s.accept(agent.last(ev.Offer).offer)
    first.disconnected()
    party = FakeParty()
    again = h.gateway.customer_arrived(
        party,
        protocol="xmpp",
        client=ev.ClientInfo("Gajim", "1.8"),
        answers={},
        key="xmpp:dana@example.org",
    )
    assert again.conversation is first.conversation
    assert party.last(ev.Connected).conversation == first.conversation.id


def test_a_queued_customer_keeps_its_place():
    h = make_harness(resume_grace_s=GRACE)
    _, first = h.queued_customer("Dana")
    h.queued_customer("Eve")
    queue = h.gateway.queues[first.conversation.queue]
    assert queue.position(first.conversation) == 1
    first.disconnected()
    h.clock.advance(10)
    party = FakeParty()
    again = h.gateway.customer_arrived(
        party,
        protocol="jsonim",
        client=ev.ClientInfo("a", "1"),
        answers={},
        resume=first.resume_token,
    )
    assert again.conversation is first.conversation
    assert queue.position(again.conversation) == 1
    assert party.last(ev.Queued).position == 1


def test_a_queued_customer_who_is_away_is_offered_to_no_agent_until_back():
    h = make_harness(resume_grace_s=GRACE)
    agent, agent_s = h.agent("anna")
    _, customer_s = h.queued_customer()
    first = agent.last(ev.Offer).offer
    customer_s.disconnected()
    # The ringing offer is withdrawn, and none follows while the customer is away.
    assert agent.last(ev.Revoked) == ev.Revoked(first, "customer_left")
    h.clock.advance(GRACE / 2)
    assert agent.of(ev.Offer)[-1].offer == first
    party = FakeParty()
    h.gateway.customer_arrived(
        party,
        protocol="jsonim",
        client=ev.ClientInfo("a", "1"),
        answers={},
        resume=customer_s.resume_token,
    )
    offer = agent.last(ev.Offer)
    assert offer.offer != first and offer.conversation == customer_s.conversation.id
    agent_s.accept(offer.offer)
    assert party.last(ev.Connected) == ev.Connected(customer_s.conversation.id, "Anna A.")
    assert len(party.of(ev.Connected)) == 1


def test_an_agent_logging_in_is_not_offered_a_customer_who_is_away():
    h = make_harness(resume_grace_s=GRACE)
    _, customer_s = h.queued_customer()
    customer_s.disconnected()
    agent, _ = h.agent("anna")
    assert agent.of(ev.Offer) == []
    h.clock.advance(GRACE)
    assert customer_s.conversation.id not in h.gateway.conversations
    assert agent.of(ev.Offer) == []


def test_a_customer_who_quits_is_not_held():
    h = make_harness(resume_grace_s=GRACE)
    _, customer_s, agent, agent_s = connected(h)
    conv_id = customer_s.conversation.id
    customer_s.disconnected(quit=True)
    assert conv_id not in h.gateway.conversations
    assert agent.last(ev.Ended) == ev.Ended(conv_id, "customer")
    assert agent.of(ev.Notice) == []
    # The agent's next line is refused, not acknowledged.
    d = agent_s.say(conv_id, "Hello?")
    assert isinstance(d.result.value, NotAllowed)
    d.addErrback(lambda _: None)


def test_what_the_agent_wrote_meanwhile_follows_the_reconnection_notice():
    h = make_harness(resume_grace_s=GRACE)
    _, customer_s, _, agent_s = connected(h)
    conv_id = customer_s.conversation.id
    customer_s.disconnected()
    result_of(agent_s.say(conv_id, "Still there?"))
    party = FakeParty()
    h.gateway.customer_arrived(
        party,
        protocol="jsonim",
        client=ev.ClientInfo("a", "1"),
        answers={},
        resume=customer_s.resume_token,
    )
    kinds = [(type(e).__name__, getattr(e, "text", "")) for e in party.events]
    assert kinds == [
        ("Message", resume.RESUMED),
        ("Connected", ""),
        ("Message", "Still there?"),
    ]


def test_the_line_a_returning_customer_opens_with_reaches_the_agent():
    h = make_harness(resume_grace_s=GRACE)
    _, customer_s, agent, _ = connected(h)
    conv_id = customer_s.conversation.id
    customer_s.disconnected()
    h.gateway.customer_arrived(
        FakeParty(),
        protocol="jsonim",
        client=ev.ClientInfo("a", "1"),
        answers={},
        resume=customer_s.resume_token,
        opening="I am back, sorry",
    )
    assert agent.last(ev.Message).text == "I am back, sorry"
    assert [m.text for m in h.store.messages[conv_id]][-1] == "I am back, sorry"


def test_a_customer_back_mid_interview_is_asked_again():
    h = make_harness(resume_grace_s=GRACE)
    _, session = h.customer()
    session.disconnected()
    party = FakeParty()
    h.gateway.customer_arrived(
        party,
        protocol="jsonim",
        client=ev.ClientInfo("a", "1"),
        answers={},
        resume=session.resume_token,
    )
    assert party.last(ev.Prompt).field == "name"


def test_grace_zero_ends_at_once():
    h = make_harness(resume_grace_s=0)
    _, customer_s, agent, _ = connected(h)
    customer_s.disconnected()
    assert agent.last(ev.Ended).reason == "customer"


# After a restart.


def _left_open(store, cid, state, *, agent=None, started=100.0, token="tok-" + "x" * 28):
    store.open_conversation(
        ConversationRecord(
            id=cid,
            customer_alias=f"a-{cid}",
            protocol="jsonim",
            client_name="acme",
            client_version="2",
            started=started,
            queue="general",
            topic="billing",
            identity={"name": "Dana", "topic": "billing"},
            state=state,
            agent=agent,
        )
    )
    store.set_resume(cid, resume.token_hash(token), None)
    store.append(StoredMessage(id=f"m-{cid}", conversation=cid, sender="customer", text="hi", ts=1))
    return token


def test_restore_holds_what_can_resume_and_interrupts_the_rest():
    h = make_harness(resume_grace_s=GRACE)
    token = _left_open(h.store, "c-live", "connected", agent="anna")
    _left_open(h.store, "c-wait", "queued", started=50.0, token="tok-wait")
    _left_open(h.store, "c-new", "interview", token="tok-new")
    assert result_of(h.gateway.restore()) == 2
    assert h.store.conversations["c-new"].end_reason == "interrupted"
    assert h.gateway.conversations["c-wait"].state == "queued"
    assert h.gateway.conversations["c-live"].state == "connected"

    # The agent logs in again and gets its conversation back, with history.
    agent, agent_s = h.agent("anna")
    got = agent.of(ev.Connected)
    assert [c.conversation for c in got] == ["c-live"]
    assert [e.text for e in got[0].history] == ["hi"]
    # The customer comes back with its token.
    party = FakeParty()
    session = h.gateway.customer_arrived(
        party, protocol="jsonim", client=ev.ClientInfo("a", "1"), answers={}, resume=token
    )
    assert session.conversation.id == "c-live"
    assert party.last(ev.Connected) == ev.Connected("c-live", "Anna A.")
    result_of(agent_s.say("c-live", "Welcome back"))
    assert party.last(ev.Message).text == "Welcome back"
    h.clock.advance(GRACE * 2)
    assert "c-live" in h.gateway.conversations


def test_restored_conversations_nobody_comes_back_to():
    h = make_harness(resume_grace_s=GRACE)
    _left_open(h.store, "c-live", "connected", agent="anna")
    result_of(h.gateway.restore())
    h.clock.advance(GRACE)
    assert "c-live" not in h.gateway.conversations
    assert h.store.conversations["c-live"].end_reason == "interrupted"


def test_a_restored_conversation_is_requeued_when_its_agent_stays_away():
    h = make_harness(resume_grace_s=GRACE)
    token = _left_open(h.store, "c-live", "connected", agent="carl")
    result_of(h.gateway.restore())
    party = FakeParty()
    h.gateway.customer_arrived(
        party, protocol="jsonim", client=ev.ClientInfo("a", "1"), answers={}, resume=token
    )
    bob, bob_s = h.agent("bob")
    h.clock.advance(GRACE)
    bob_s.accept(bob.last(ev.Offer).offer)
    assert party.last(ev.Connected) == ev.Connected("c-live", "Bob A.")


def test_restore_with_no_grace_interrupts_everything():
    h = make_harness(resume_grace_s=0)
    _left_open(h.store, "c-live", "connected", agent="anna")
    assert result_of(h.gateway.restore()) == 0
    assert h.store.conversations["c-live"].end_reason == "interrupted"


# JSON-IM: welcome.resume and hello.resume (a proposed extension of JSON-IM/1).


def test_jsonim_welcome_carries_the_token_and_hello_passes_it_on():
    import json

    from jsonim_helpers import CUSTOMER_HELLO, FakeGateway, connect

    class Conv:
        id = "c-1"

    class Session:
        id = "s-c1"
        resume_token = "tok-1"
        conversation = Conv()

    gateway = FakeGateway()
    gateway.customer = Session()
    conn = connect(gateway)
    conn.send({**CUSTOMER_HELLO, "resume": "tok-0"})
    welcome = json.loads(conn.raw().splitlines()[0])
    assert (welcome["resume"], welcome["conversation"]) == ("tok-1", "c-1")
    assert gateway.arrivals[0]["resume"] == "tok-0"


def test_jsonim_ignores_a_resume_that_is_not_a_token():
    from jsonim_helpers import CUSTOMER_HELLO, FakeGateway, connect

    gateway = FakeGateway()
    conn = connect(gateway)
    conn.send({**CUSTOMER_HELLO, "resume": 42})
    assert "resume" not in gateway.arrivals[0]
    assert b'"resume"' not in conn.raw()


def test_jsonim_round_trip_through_the_core():
    import json

    from jsonim_helpers import CUSTOMER_HELLO

    from protocols.jsonim.protocol import JsonImFactory
    from protocols.jsonim.settings import JsonImSettings

    h = make_harness(resume_grace_s=GRACE)
    agent, agent_s = h.agent("anna")
    factory = JsonImFactory(h.gateway, JsonImSettings(), server_name="gw", clock=h.clock)

    def dial():
        from twisted.internet.testing import StringTransport

        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    first, wire = dial()
    hello = {**CUSTOMER_HELLO, "identity": {"name": "Dana"}, "topic": "billing"}
    first.dataReceived(json.dumps(hello).encode() + b"\n")
    welcome = json.loads(wire.value().splitlines()[0])
    agent_s.accept(agent.last(ev.Offer).offer)
    first.connectionLost(None)

    second, wire = dial()
    second.dataReceived(
        json.dumps({**CUSTOMER_HELLO, "resume": welcome["resume"]}).encode() + b"\n"
    )
    frames = [json.loads(line) for line in wire.value().splitlines()]
    assert frames[0]["type"] == "welcome"
    assert frames[0]["conversation"] == welcome["conversation"]
    assert frames[0]["resume"] != welcome["resume"]
    assert {"type": "connected", "conversation": welcome["conversation"]}.items() <= next(
        f for f in frames if f["type"] == "connected"
    ).items()


# IRC (listener): the same nick and ident from the same address.


def test_irc_customer_back_with_the_same_nick_and_ident_resumes():
    from irc_helpers import server

    h = make_harness(resume_grace_s=GRACE)
    srv = server(harness=h)
    agent = srv.agent("anna", nick="anna_real")
    customer = srv.register("dana")
    customer.send("PRIVMSG Support :hello?", "PRIVMSG Support :Dana", "PRIVMSG Support :1")
    agent.send("ACCEPT")
    (conv_id,) = h.gateway.conversations
    customer.lose()
    assert h.gateway.conversations[conv_id].state == "connected"
    assert any("lost the connection" in line for line in agent.lines())

    # Another nick from the same ident and address is someone else.
    other = srv.register("eve")
    other.send("PRIVMSG Support :hi")
    assert len(h.gateway.conversations) == 2
    again = srv.connect()
    again.send("NICK Dana", "USER dana 0 * :Dana Doe")  # nicks compare without case
    again.send("PRIVMSG Support :I am back")
    assert len(h.gateway.conversations) == 2
    assert any("You are now talking with" in line for line in again.lines())
    assert h.gateway.conversations[conv_id].customer.party is again.protocol


# XMPP (component): the same bare JID, from any resource.


def test_xmpp_customer_back_from_the_same_bare_jid_resumes():
    from xmpp_helpers import SUPPORT, make_hub

    h = make_hub({"resume_grace_s": GRACE})
    gateway = h.core.gateway
    h.message("dana@example.org/phone", "hello")
    (conv_id,) = gateway.conversations
    # A message bounced: the client is gone, it may come back (going offline would
    # be leaving, and end the conversation).
    h.receive(
        f"<message from='dana@example.org/phone' to='{SUPPORT}' type='error'><error type='cancel'>"
        "<recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
    )
    assert conv_id in gateway.conversations
    h.message("dana@example.org/laptop", "back again")
    assert list(gateway.conversations) == [conv_id]
    assert gateway.conversations[conv_id].customer.party.jid == "dana@example.org/laptop"
    h.message("erin@example.org/phone", "hi")
    assert len(gateway.conversations) == 2
