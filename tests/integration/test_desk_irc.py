"""The service desk's agent commands on IRC: agents and a supervisor on the gateway's IRC
listener (SASL), a customer on the ``irc`` library; commands written to the service
nick, and as raw commands (``/barge c-7f3a`` in a client arrives as ``BARGE c-7f3a``).
"""

from __future__ import annotations

import re

import desk_site
import harness
import pytest
from irc_peers import LibClient, RawIrc, irc_ports
from leaks import assert_unseen


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("desk-irc")
    config = desk_site.write(
        root,
        extra_listeners='irc = ["tcp:0:interface=127.0.0.1"]',
        extra='\n[irc]\nserver_name = "irc.itest"\nallow_plaintext_auth = true\n'
        "lines_per_second = 50.0\nline_burst = 100\n",
    )
    harness.admin(config, "canned", "add", "hello", "--text", "Hello {customer}, I am {agent}.")
    gateway = harness.start_gateway(root / "cwd", config)
    yield gateway, irc_ports(gateway, 1)["tcp"]
    gateway.stop()


def agent(port: int, name: str) -> RawIrc:
    client = RawIrc(port, name=name)
    client.register(name, caps="sasl", sasl=(name, desk_site.PASSWORDS[name]))
    client.expect(r"NOTICE \S+ :Commands")
    return client


def test_supervise_consult_hand_over_wrap_up_and_canned_from_irc(site):
    gateway, port = site
    anna = agent(port, "anna")
    dana = LibClient(port, "dana")
    dana.wait(lambda e: e.type == "welcome")
    dana.say("Support", "hi")
    dana.wait_privmsg("What is your name")
    dana.say("Support", "Dana")
    dana.wait_privmsg("What can we help you with")
    dana.say("Support", "1")
    alias = anna.expect(r"NOTICE anna :Offer o-\S+: (c-[0-9a-f]+) ").group(1)
    anna.send("PRIVMSG Support :accept")
    anna.expect(rf"You are now talking with {alias}")
    dana.wait_privmsg("You are now talking with Anna", source="Support")

    bob = agent(port, "bob")
    bob.send("PRIVMSG Support :away meeting")
    bob.expect(r"NOTICE bob :You are away \(meeting\): no new offers\.")
    sue = agent(port, "sue")
    sue.send("PRIVMSG Support :away")
    sue.expect("You are away")
    sue.send("PRIVMSG Support :live")
    sue.expect(rf"NOTICE sue :{alias} \(c-[0-9a-f]+\) connected, queue general, agent Anna")
    sue.send(f"PRIVMSG Support :monitor {alias}")
    sue.expect(r"NOTICE sue :You are monitoring .* with Anna\.")
    gateway.wait_for_log(r"sue joins c-[0-9a-f]+ as monitor", 5)
    dana.say("Anna", "anybody there?")
    sue.expect(rf"^:{alias}!customer@gateway\.invalid PRIVMSG sue :anybody there\?$")
    sue.send(f"PRIVMSG {alias} :WHISPER-i1 mention the voucher")
    anna.expect(rf"^:{alias}!\S+ NOTICE anna :\[Sue, agents only\] WHISPER-i1 mention the voucher$")
    sue.send(f"PRIVMSG Support :whisper {alias} WHISPER-i2 quickly")
    anna.expect(r"\[Sue, agents only\] WHISPER-i2 quickly")
    anna.send(f"PRIVMSG Support :whisper {alias} WHISPER-i3 on it")
    sue.expect(r"\[Anna, agents only\] WHISPER-i3 on it")
    sue.send(f"BARGE {alias}")
    dana.wait_privmsg("A supervisor, Sue, joined the conversation.", source="Support")
    sue.send(f"PRIVMSG {alias} :Sorry for the wait, Dana")
    dana.wait_privmsg(r"^\[Sue\] Sorry for the wait, Dana$", source="Support")
    sue.send(f"PRIVMSG Support :leave {alias}")
    dana.wait_privmsg("Sue left the conversation.", source="Support")

    anna.send(f"PRIVMSG Support :consult {alias} @bob WHISPER-i4 voucher question")
    bob.expect(r"NOTICE bob :You are consulting")
    bob.expect(r"\[Anna, agents only\] WHISPER-i4 voucher question")
    anna.send(f"PRIVMSG Support :handover {alias} @bob Bob handles vouchers.")
    dana.wait_privmsg("^Bob handles vouchers.$", source="Anna")
    dana.wait_privmsg("You are now talking with Bob", source="Support")
    anna.expect(r"NOTICE anna :bob took the conversation over\.")
    bob.expect(rf"You are now talking with {alias}")
    bob.send(f"PRIVMSG Support :canned {alias} hello")
    dana.wait_privmsg("^Hello Dana, I am Bob.$", source="Bob")
    bob.send(f"PRIVMSG Support :history {alias}")
    bob.expect(rf"NOTICE bob :{alias} is not recognised")
    bob.send(f"PRIVMSG Support :note {alias} WHISPER-i5 wants it by Friday")
    bob.expect("NOTICE bob :Noted.")
    bob.send(f"PRIVMSG Support :end {alias}")
    dana.wait_privmsg("The conversation has ended", source="Support")
    bob.expect(rf"NOTICE bob :Wrap up {alias} .*disposition optional")
    bob.send(f"PRIVMSG Support :wrapup {alias} follow_up #voucher")
    bob.expect(r"NOTICE bob :Wrapped up c-[0-9a-f]+: follow_up #voucher")
    bob.send("PRIVMSG Support :tasks")
    bob.expect("NOTICE bob :No message to answer.")
    bob.send("PRIVMSG Support :wrapup")
    bob.expect("NOTICE bob :not_allowed: no wrap-up is due")

    raw = dana.raw_text()
    assert_unseen(raw, "WHISPER", "agents only", "monitor", "consult", "anna", "bob", "sue")
    assert re.search(r"\[Sue\] Sorry for the wait", raw)
    for client in (anna, bob, sue):
        client.close()
    dana.close()
