"""The component hub on the real core: customers, agents, mapping, commands, IQs."""

from __future__ import annotations

from core_helpers import FakeParty
from xmpp_helpers import DOMAIN, SUPPORT, make_hub
from zope.interface.verify import verifyObject

from gateway.core import events as ev
from gateway.core.interfaces import IParty
from protocols.xmpp import ns
from protocols.xmpp.parties import AgentParty, CustomerParty

DANA = "dana@example.org/phone"
ANNA = "anna@corp.example/desk-42"


def version_query(h, jid=DANA):
    iqs = [s for s in h.sent if s.name == "iq" and s["to"] == jid]
    for iq in iqs:
        h.sent.remove(iq)  # the version query and the disco#info query
    (iq,) = [s for s in iqs if s.firstChildElement().uri == ns.VERSION]
    assert iq["type"] == "get" and iq["from"] == SUPPORT
    assert iq.firstChildElement().uri == ns.VERSION
    return iq["id"]


def answer_version(h, query_id, name="Conversations", version="2.16", jid=DANA):
    h.receive(
        f"<iq from='{jid}' to='{SUPPORT}' type='result' id='{query_id}'>"
        f"<query xmlns='jabber:iq:version'><name>{name}</name><version>{version}</version>"
        "</query></iq>"
    )


def through_interview(h, jid=DANA, name="Dana"):
    h.message(jid, "hello")
    query_id = version_query(h, jid)
    texts = h.bodies(jid)
    assert texts[-1] == "What is your name?"
    answer_version(h, query_id, jid=jid)
    h.message(jid, name)
    (topic,) = h.bodies(jid)
    assert topic.splitlines()[1:] == ["1. Billing", "2. Technical support", "3. Something else"]
    h.message(jid, "1")
    assert any("in line" in text for text in h.bodies(jid))


def conversation(h):
    (conv,) = h.core.gateway.conversations.values()
    return conv


def test_parties_provide_iparty():
    h = make_hub()
    verifyObject(IParty, CustomerParty(h.hub, DANA, "dana@example.org", None))
    verifyObject(IParty, AgentParty(h.hub, ANNA, "anna@corp.example"))


def test_customer_first_message_opens_a_conversation_and_asks_the_client():
    h = make_hub()
    h.message(DANA, "hello")
    sent = h.take()
    iq = [s for s in sent if s.name == "iq" and s.firstChildElement().uri == ns.VERSION]
    assert len(iq) == 1 and iq[0]["to"] == DANA
    bodies = [str(s.body) for s in sent if s.name == "message"]
    assert bodies[-1] == "What is your name?"
    assert all(s["from"] == SUPPORT for s in sent)
    assert conversation(h).protocol == "xmpp"
    answer_version(h, iq[0]["id"])
    assert conversation(h).client == ev.ClientInfo("Conversations", "2.16")


# XEP-0115 section 5.2's example: this disco#info hashes to QgayPKawpkPSDYmwT/WM94uAlu0=.
EXODUS_VER = "QgayPKawpkPSDYmwT/WM94uAlu0="
EXODUS_INFO = (
    "<identity category='client' name='Exodus 0.9.1' type='pc'/>"
    "<feature var='http://jabber.org/protocol/caps'/>"
    "<feature var='http://jabber.org/protocol/disco#info'/>"
    "<feature var='http://jabber.org/protocol/disco#items'/>"
    "<feature var='http://jabber.org/protocol/muc'/>"
)


def _caps_presence(h, ver=EXODUS_VER, jid=DANA):
    h.receive(
        f"<presence from='{jid}' to='{SUPPORT}'>"
        "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
        f"node='http://code.google.com/p/exodus' ver='{ver}'/></presence>"
    )


def _node_query(h, jid=DANA):
    (iq,) = [
        s
        for s in h.to(jid)
        if (
            s.name == "iq"
            and s.firstChildElement().getAttribute("node", "").endswith("#" + EXODUS_VER)
        )
        or (s.name == "iq" and "#" in s.firstChildElement().getAttribute("node", ""))
    ]
    return iq


def test_caps_name_the_client_when_the_version_is_not_answered():
    h = make_hub()
    _caps_presence(h)
    h.message(DANA, "hello")
    query_id = version_query(h)
    h.receive(
        f"<iq from='{DANA}' to='{SUPPORT}' type='error' id='{query_id}'>"
        "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "</error></iq>"
    )
    iq = _node_query(h)
    assert iq.firstChildElement()["node"] == f"http://code.google.com/p/exodus#{EXODUS_VER}"
    node = iq.firstChildElement()["node"]
    h.receive(
        f"<iq from='{DANA}' to='{SUPPORT}' type='result' id='{iq['id']}'>"
        f"<query xmlns='http://jabber.org/protocol/disco#info' node='{node}'>"
        f"{EXODUS_INFO}</query></iq>"
    )
    assert conversation(h).client == ev.ClientInfo("Exodus 0.9.1", "")
    # A verified hash is known from then on: the next client announcing it is named at once.
    _caps_presence(h, jid="erin@example.org/pc")
    h.message("erin@example.org/pc", "hello")
    clients = {c.client.name for c in h.core.gateway.conversations.values()}
    assert clients == {"Exodus 0.9.1"}


def test_caps_whose_hash_does_not_verify_are_not_believed():
    h = make_hub(version_timeout_s=2)
    _caps_presence(h, ver="forged+ver+that+does+not+match=")
    h.message(DANA, "hello")
    version_query(h)
    h.core.clock.advance(3)  # no version answer: the caps are resolved instead
    (iq,) = [s for s in h.to(DANA) if s.name == "iq"]
    h.receive(
        f"<iq from='{DANA}' to='{SUPPORT}' type='result' id='{iq['id']}'>"
        f"<query xmlns='http://jabber.org/protocol/disco#info'>{EXODUS_INFO}</query></iq>"
    )
    assert conversation(h).client.name == "unknown"


def test_a_late_version_answer_is_taken_until_the_offer_goes_out():
    h = make_hub(version_timeout_s=2)
    h.message(DANA, "hello")
    query_id = version_query(h)
    h.core.clock.advance(3)  # routing does not wait; the answer is still welcome
    answer_version(h, query_id)
    assert conversation(h).client == ev.ClientInfo("Conversations", "2.16")


def test_version_answer_from_someone_else_is_ignored():
    h = make_hub()
    h.message(DANA, "hello")
    query_id = version_query(h)
    answer_version(h, query_id, name="Forged", jid="mallory@evil.example/x")
    assert conversation(h).client.name == "unknown"


def test_xmpp_customer_with_jsonim_agent_sees_only_the_alias():
    h = make_hub()
    agent_party, agent = h.core.agent("anna")
    through_interview(h)
    offer = agent_party.last(ev.Offer)
    assert offer.customer.client == ev.ClientInfo("Conversations", "2.16")
    agent.accept(offer.offer)
    assert h.bodies(DANA) == ["You are now chatting with Anna A.."]
    agent.say(offer.conversation, "Hi <b>Dana</b> & co")
    (reply,) = h.to(DANA)
    assert reply["from"] == SUPPORT
    assert str(reply.body) == "Hi <b>Dana</b> & co"
    assert "&lt;b&gt;" in reply.toXml()  # escaped, never spliced
    h.message(DANA, "thanks")
    assert agent_party.last(ev.Message).text == "thanks"
    agent.end(offer.conversation)
    assert h.bodies(DANA) == ["The agent has ended the conversation."]
    # A new message after the end opens a new conversation.
    h.message(DANA, "one more thing")
    assert h.bodies(DANA)[-1] == "What is your name?"


def test_typing_both_ways_as_chat_states():
    h = make_hub()
    agent_party, agent = h.core.agent("anna")
    through_interview(h)
    offer = agent_party.last(ev.Offer)
    agent.accept(offer.offer)
    h.take()
    h.receive(
        f"<message from='{DANA}' to='{SUPPORT}' type='chat'>"
        "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
    )
    assert agent_party.last(ev.Typing).state == "active"
    agent.typing(offer.conversation, "paused")
    (state,) = h.to(DANA)
    assert state.firstChildElement().name == "paused" and state.body is None


def attach_agent(h, show=None):
    extra = f"<show>{show}</show>" if show else ""
    h.receive(f"<presence from='{ANNA}' to='{SUPPORT}'>{extra}</presence>")
    return h.core.directory.get("xanna")


def test_provisioned_xmpp_agent_attaches_by_presence():
    h = make_hub()
    state = attach_agent(h)
    assert state is not None and state.status == "available"
    sent = h.to(ANNA)
    assert [s.name for s in sent] == ["presence", "iq", "iq"]
    # Its software is asked too, as a customer's is.
    version = next(s for s in sent if s.name == "iq" and s.firstChildElement().uri == ns.VERSION)
    answer_version(h, version["id"], name="Gajim", version="1.8.4", jid=ANNA)
    assert (state.client_name, state.client_version) == ("Gajim", "1.8.4")
    attach_agent(h, show="dnd")
    assert state.status == "away"
    h.receive(f"<presence from='{ANNA}' to='{SUPPORT}' type='unavailable'/>")
    assert h.core.directory.get("xanna") is None


def test_xmpp_agent_accepts_and_chats_through_the_translated_address():
    h = make_hub()
    attach_agent(h)
    h.take()
    through_interview(h)
    (offer,) = h.bodies(ANNA)
    assert "Client: xmpp, Conversations 2.16" in offer
    conv = conversation(h)
    alias_jid = f"{conv.alias}@{DOMAIN}"
    assert alias_jid in offer
    h.message(ANNA, "/accept")
    (hello,) = h.to(ANNA)
    assert hello["from"] == alias_jid
    assert "[customer] Dana" in str(hello.body)  # the history so far
    assert h.bodies(DANA) == ["You are now chatting with Anna X.."]

    h.message(DANA, "my bill")
    (got,) = h.to(ANNA)
    assert (got["from"], str(got.body)) == (alias_jid, "my bill")
    h.message(ANNA, "On it.", to=alias_jid)
    (answer,) = h.to(DANA)
    assert (answer["from"], str(answer.body)) == (SUPPORT, "On it.")

    h.message(ANNA, "/status")
    assert alias_jid in h.bodies(ANNA)[0]
    h.message(ANNA, "/end", to=alias_jid)
    assert h.bodies(DANA) == ["The agent has ended the conversation."]
    assert "You left" in h.bodies(ANNA)[0]
    # Nothing the customer got names the agent's account, JID or resource.
    assert not any("anna" in s.toXml() or "desk-42" in s.toXml() for s in h.sent)


def test_agent_commands_errors_are_chat_replies():
    h = make_hub()
    attach_agent(h)
    h.take()
    h.message(ANNA, "/accept")
    assert h.bodies(ANNA) == ["No offer to accept."]
    h.message(ANNA, "/frobnicate")
    assert "unknown command" in h.bodies(ANNA)[0]
    h.message(ANNA, "/accept o-nope")
    assert h.bodies(ANNA)[0].startswith("Error: no such offer")
    h.message(ANNA, "hello there")
    assert "help lists the commands" in h.bodies(ANNA)[0]
    h.message(ANNA, "accept")  # no slash needed to the support address
    assert h.bodies(ANNA) == ["No offer to accept."]
    h.message(ANNA, "/end")
    assert "name the chat" in h.bodies(ANNA)[0]


def test_agent_transfer_to_a_queue():
    h = make_hub()
    attach_agent(h)
    through_interview(h)
    h.message(ANNA, "/accept")
    conv = conversation(h)
    h.take()
    h.message(ANNA, "/transfer general", to=f"{conv.alias}@{DOMAIN}")
    assert conv.state in ("queued", "offered")
    assert any("transferred" in text for text in h.bodies(DANA))


def test_strangers_cannot_write_to_a_translated_address():
    h = make_hub()
    _agent_party, _agent = h.core.agent("anna")
    through_interview(h)
    conv = conversation(h)
    h.take()
    h.message("mallory@evil.example/x", "hi", to=f"{conv.alias}@{DOMAIN}")
    (error,) = h.take()
    assert error["type"] == "error"
    assert error.error.firstChildElement().name == "item-not-found"


def test_customer_rate_limit():
    h = make_hub(messages_per_second=0.01, message_burst=2)
    h.message(DANA, "hello")
    h.message(DANA, "Dana")
    h.message(DANA, "2")
    h.take()
    h.message(DANA, "3")
    (error,) = h.take()
    assert error.error.firstChildElement().name == "resource-constraint"


def test_iq_disco_ping_version_and_unsupported():
    h = make_hub()
    h.receive(
        f"<iq from='{DANA}' to='{SUPPORT}' type='get' id='d1'>"
        "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        f"<iq from='{DANA}' to='{DOMAIN}' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>"
        f"<iq from='{DANA}' to='{SUPPORT}' type='get' id='v1'>"
        "<query xmlns='jabber:iq:version'/></iq>"
        f"<iq from='{DANA}' to='{SUPPORT}' type='set' id='x1'>"
        "<query xmlns='jabber:iq:roster'/></iq>"
        f"<iq from='{DANA}' to='nobody@{DOMAIN}' type='get' id='n1'>"
        "<ping xmlns='urn:xmpp:ping'/></iq>"
        f"<iq from='{DANA}' to='{SUPPORT}' type='get' id='e1'/>"
    )
    disco, ping, version, roster, nobody, empty = h.take()
    features = [f["var"] for f in disco.query.elements() if f.name == "feature"]
    assert ns.PING in features and ns.VERSION in features
    assert (ping["type"], ping["id"], ping["to"]) == ("result", "p1", DANA)
    names = [str(e) for e in version.firstChildElement().elements() if e.name == "name"]
    assert names == ["imgateway"]
    assert roster["type"] == "error"
    assert roster.error["type"] == "cancel"
    assert roster.error.firstChildElement().name == "service-unavailable"
    assert nobody.error.firstChildElement().name == "item-not-found"
    assert empty.error.firstChildElement().name == "bad-request"


def test_malformed_addresses_get_jid_malformed():
    h = make_hub()
    h.receive(f"<message from='a@b/' to='{SUPPORT}'><body>x</body></message>")
    (error,) = h.take()
    assert error.error.firstChildElement().name == "jid-malformed"


def test_errors_are_never_answered():
    h = make_hub()
    h.receive(f"<message from='{DANA}' to='{SUPPORT}' type='error'><body>x</body></message>")
    assert h.take() == []


def test_link_lost_ends_every_party():
    h = make_hub()
    attach_agent(h)
    through_interview(h)
    conv = conversation(h)
    h.hub.detached()
    assert conv.state == "ended"
    assert h.core.directory.get("xanna") is None
    assert h.hub.customers == {} and h.hub.agents == {}


def test_a_non_agent_presence_stays_a_stranger():
    h = make_hub()
    h.receive(f"<presence from='{DANA}' to='{SUPPORT}'/>")
    assert h.hub.agents == {} and h.hub.customers == {}
    h.receive(f"<presence from='{DANA}' to='{SUPPORT}' type='subscribe'/>")
    kinds = [s.getAttribute("type") for s in h.take()]
    assert kinds == ["subscribed", None]


def test_shutdown_closes_xmpp_parties():
    h = make_hub()
    attach_agent(h)
    through_interview(h)
    h.core.gateway.shutdown()
    assert h.hub.customers == {} and h.hub.agents == {}


def test_jsonim_customer_to_xmpp_agent_uses_the_alias_address():
    h = make_hub()
    attach_agent(h)
    h.take()
    web = FakeParty()
    h.core.gateway.customer_arrived(
        web,
        protocol="jsonim",
        client=ev.ClientInfo("widget", "1"),
        answers={"name": "Gus", "topic": "billing"},
    )
    (offer,) = h.bodies(ANNA)
    assert "jsonim, widget 1" in offer
    h.message(ANNA, "/accept")
    assert web.last(ev.Connected).peer_alias == "Anna X."


def test_clients_with_forms_get_choices_as_a_data_form():
    h = make_hub()
    h.message(DANA, "hello")
    disco = [s for s in h.take() if s.name == "iq" and s.firstChildElement().uri == ns.DISCO_INFO]
    (query,) = disco
    h.receive(
        f"<iq from='{DANA}' to='{SUPPORT}' type='result' id='{query['id']}'>"
        "<query xmlns='http://jabber.org/protocol/disco#info'>"
        "<feature var='jabber:x:data'/></query></iq>"
    )
    h.message(DANA, "Dana")
    (prompt,) = h.to(DANA)
    form = [e for e in prompt.elements() if e.uri == ns.DATA_FORMS]
    assert form and form[0]["type"] == "form"
    values = [
        str(v)
        for f in form[0].elements()
        if f.name == "field"
        for o in f.elements()
        if o.name == "option"
        for v in o.elements()
    ]
    assert values == ["billing", "tech", "other"]
    h.receive(
        f"<message from='{DANA}' to='{SUPPORT}' type='chat'>"
        "<x xmlns='jabber:x:data' type='submit'><field var='topic'><value>tech</value>"
        "</field></x></message>"
    )
    assert conversation(h).topic == "tech"


def test_chat_states_alone_and_an_end_with_nothing_open_start_nothing():
    h = make_hub()
    h.receive(
        f"<message from='{DANA}' to='{SUPPORT}' type='chat'>"
        "<inactive xmlns='http://jabber.org/protocol/chatstates'/></message>"
    )
    assert h.core.gateway.conversations == {} and h.take() == []
    h.message(DANA, "/end")
    assert h.core.gateway.conversations == {}
    (reply,) = h.take()
    assert str(reply.body).startswith("There is no conversation to end")


def test_the_opening_line_is_kept_for_the_agent():
    h = make_hub()
    agent_party, agent = h.core.agent("anna")
    h.message(DANA, "hello, I have a billing question")
    conv = conversation(h)
    first = h.core.store.messages[conv.id][0]
    assert first.text == "hello, I have a billing question"
    h.message(DANA, "Dana")
    h.message(DANA, "1")
    agent.accept(agent_party.last(ev.Offer).offer)
    history = [e.text for e in agent_party.last(ev.Connected).history]
    assert history[0] == "hello, I have a billing question"
    assert conv.answers["name"] == "Dana"


def test_a_new_customer_is_asked_for_its_presence_and_probed():
    h = make_hub()
    h.message(DANA, "hello")
    to_bare = [(s.name, s.getAttribute("type")) for s in h.to("dana@example.org")]
    assert to_bare == [("presence", "subscribe"), ("presence", "probe")]
    # Approving a subscription sends the contact's presence at once (RFC 6121).
    h.receive(f"<presence from='dana@example.org' to='{SUPPORT}' type='subscribe'/>")
    answered = [(s.name, s.getAttribute("type")) for s in h.to("dana@example.org")]
    assert answered == [("presence", "subscribed"), ("presence", None)]


def test_going_offline_ends_and_a_bounce_holds():
    h = make_hub(core_changes={"resume_grace_s": 60.0})
    agent_party, _ = h.core.agent("anna")
    h.message(DANA, "hello")
    conv = conversation(h)
    h.receive(
        f"<message from='{DANA}' to='{SUPPORT}' type='error'>"
        "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "</error></message>"
    )
    # A bounce is a lost connection: held, and offered to nobody.
    assert conv.id in h.core.gateway.conversations and conv.customer.gone
    assert agent_party.of(ev.Offer) == []
    h.message(DANA, "back again")
    conv = conversation(h)
    assert not conv.customer.gone
    h.receive(f"<presence from='{DANA}' to='{SUPPORT}' type='unavailable'/>")
    assert h.core.gateway.conversations == {}  # going offline is leaving


def test_the_gateways_own_lines_are_not_for_offline_storage():
    h = make_hub()
    agent_party, agent = h.core.agent("anna")
    through_interview(h)
    agent.accept(agent_party.last(ev.Offer).offer)
    (connected,) = h.to(DANA)
    assert connected.firstChildElement().name == "body"
    assert [e.name for e in connected.elements() if e.uri == ns.HINTS] == [
        "no-store",
        "no-permanent-store",
    ]
    agent.say(conversation(h).id, "Hello Dana")
    (line,) = h.to(DANA)
    assert [e for e in line.elements() if e.uri == ns.HINTS] == []


def test_a_bounced_line_is_delivered_again_on_resume_after_the_reconnection_notice():
    h = make_hub(core_changes={"resume_grace_s": 60.0})
    agent_party, agent = h.core.agent("anna")
    through_interview(h)
    agent.accept(agent_party.last(ev.Offer).offer)
    conv = conversation(h)
    h.take()
    agent.say(conv.id, "Your refund is on its way")
    (line,) = h.to(DANA)
    h.receive(
        f"<message from='{DANA}' to='{SUPPORT}' type='error' id='{line['id']}'>"
        "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "</error></message>"
    )
    assert conv.customer.gone and "lost the connection" in agent_party.last(ev.Notice).text
    h.message("dana@example.org/laptop", "sorry, I was cut off")
    assert h.bodies("dana@example.org/laptop") == [
        "Welcome back. Your conversation continues.",
        "You are now chatting with Anna A..",
        "Your refund is on its way",
    ]
    assert agent_party.last(ev.Message).text == "sorry, I was cut off"
