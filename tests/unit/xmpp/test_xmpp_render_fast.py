"""The chat message template writes what domish writes; JIDs parsed once stay right."""

from __future__ import annotations

import pytest
from twisted.words.xish import domish

from protocols.xmpp import ns, stanzas
from protocols.xmpp.c2s import _to_client
from protocols.xmpp.jid import InvalidJid, parse_jid

BODIES = ["hello", "a<b & 'c' \"d\" > e", "\x01 not XML", "emoji 😀 and ünïcode", " "]


def _domish(sender: str, to: str, body: str) -> domish.Element:
    element = domish.Element((ns.COMPONENT, "message"))
    element["from"], element["to"], element["type"] = sender, to, "chat"
    element.addElement("body", content=stanzas.xml_text(body))
    return element


@pytest.mark.parametrize("body", BODIES)
def test_a_chat_message_is_written_as_domish_writes_it_on_both_links(body):
    fast = stanzas.message("support@x.example/r", "c'<&>@d.example", body)
    slow = _domish("support@x.example/r", "c'<&>@d.example", body)
    assert type(fast) is not domish.Element
    assert fast.toXml(defaultUri=ns.COMPONENT) == slow.toXml(defaultUri=ns.COMPONENT)
    _to_client(fast)
    _to_client(slow)
    prefixes = {ns.STREAMS: "stream"}
    written = fast.toXml(prefixes=prefixes, defaultUri=ns.CLIENT)
    assert written == slow.toXml(prefixes=prefixes, defaultUri=ns.CLIENT)
    assert written.startswith("<message from='support@x.example/r' to='c&apos;&lt;&amp;&gt;@d")


def test_anything_added_or_another_namespace_takes_the_general_serialiser():
    fast = stanzas.message("a@x", "b@y", "hi")
    assert fast.toXml().startswith("<message xmlns='jabber:component:accept'")
    fast.addElement((ns.CHATSTATES, "active"))
    slow = _domish("a@x", "b@y", "hi")
    slow.addElement((ns.CHATSTATES, "active"))
    assert fast.toXml(defaultUri=ns.COMPONENT) == slow.toXml(defaultUri=ns.COMPONENT)
    assert "<active xmlns='http://jabber.org/protocol/chatstates'/>" in fast.toXml(
        defaultUri=ns.COMPONENT
    )
    with_id = stanzas.message("a@x", "b@y", "hi")
    with_id["id"] = "m1"
    assert "id='m1'" in with_id.toXml(defaultUri=ns.COMPONENT)


def test_a_jid_parsed_again_is_the_same_and_bad_ones_still_fail_every_time():
    first = parse_jid("Anna@Corp.Example/desk")
    assert first is parse_jid("Anna@Corp.Example/desk")
    assert (first.local, first.domain, first.resource) == ("anna", "corp.example", "desk")
    long_resource = "x" * 600
    assert parse_jid(f"a@b/{long_resource}").resource == long_resource
    for bad in ("", "@b", "a@b/", "a b@c", "a@" + "d" * 1024):
        for _ in range(2):
            with pytest.raises(InvalidJid):
                parse_jid(bad)
