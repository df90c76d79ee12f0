"""Agent chat commands and the lines events render to."""

from __future__ import annotations

import pytest

from gateway.core import events as ev
from protocols.xmpp import commands, render
from protocols.xmpp.commands import Command, CommandError
from protocols.xmpp.jid import InvalidJid, parse_jid
from protocols.xmpp.stanzas import xml_text


def test_commands_parse():
    assert commands.parse("hello") is None
    assert commands.parse("//not a command") is None
    assert commands.parse(" /Accept o-1 ") == Command("accept", ("o-1",))
    assert commands.parse("/transfer c-7f3a billing") == Command("transfer", ("c-7f3a", "billing"))
    assert commands.parse("/status") == Command("status")
    for bad in ("/", "/frob", "/transfer", "/accept a b", "/status now"):
        with pytest.raises(CommandError):
            commands.parse(bad)
    assert commands.is_command("/end") and not commands.is_command("/etc/passwd is gone")


def test_commands_need_no_slash_to_the_support_address():
    # Desktop clients eat a leading "/" (Profanity: "Unknown command: /end").
    assert commands.parse("accept o-1", bare=True) == Command("accept", ("o-1",))
    assert commands.parse("!accept o-1") == Command("accept", ("o-1",))
    assert commands.parse("!end", bare=True) == Command("end")
    assert commands.parse("Status", bare=True) == Command("status")
    # To a customer's address, plain words are chat: only ! and / make commands.
    assert commands.parse("end of story") is None
    assert commands.is_command("!end") and not commands.is_command("end")
    assert commands.parse("hello there", bare=True) is None
    with pytest.raises(CommandError):
        commands.parse("!frob", bare=True)


def test_offer_shows_client_and_how_to_answer():
    card = ev.CustomerCard(
        "c-7f3a", "xmpp", ev.ClientInfo("Gajim", "1.8"), "billing", {"name": "Dana"}
    )
    text = render.offer(ev.Offer("o-1", "c-1", 20, card), "c-7f3a@support.example.com")
    assert "Client: xmpp, Gajim 1.8" in text and "Topic: billing" in text and "name: Dana" in text
    assert "Reply accept o-1 or reject o-1" in text and "c-7f3a@support.example.com" in text
    assert "with or without a leading / or !" in text


def test_customer_lines():
    prompt = ev.Prompt("topic", "Why?", (ev.Choice("a", "Alpha"), ev.Choice("b", "Beta")))
    assert render.customer_line(prompt) == "Why?\n1. Alpha\n2. Beta"
    assert render.customer_line(ev.Queued(2, 90)) == "You are number 2 in line (about 2 min)."
    assert render.customer_line(ev.Connected("c", "Anna")) == "You are now chatting with Anna."
    assert render.customer_line(ev.Ended("c", "weird")) == render.END_TEXTS["closed"]
    assert render.customer_line(ev.Revoked("o", "timeout")) is None


def test_text_xml_cannot_carry_is_replaced():
    assert xml_text("a\x00b\x1bc\ud800d\ufffee") == "a\ufffdb\ufffdc\ufffdd\ufffde"
    assert xml_text("tab\tnewline\n") == "tab\tnewline\n"


def test_jids():
    jid = parse_jid("Dana@Example.ORG/Phone 2")
    assert (jid.bare, jid.full) == ("dana@example.org", "dana@example.org/Phone 2")
    assert parse_jid("example.org").bare == "example.org"
    for bad in ("", "a@", "@b", "a@b/", "a b@c", "a@b@c"):
        with pytest.raises(InvalidJid):
            parse_jid(bad)
