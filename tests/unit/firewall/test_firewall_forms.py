"""One canonical form of an address (rules, sets, bans, peers) and every form of an
internal address found by the identity translation."""

from __future__ import annotations

import ipaddress

import pytest
from twisted.internet.address import IPv4Address, IPv6Address

from firewall.addrset import canonical, parse_network
from firewall.ruleset import parse
from firewall.translate import Translator
from firewall.wrapper import canonical_peer

TRANSLATE = """translate {
    host db01.corp.internal -> "our systems";
    host *.corp.example -> "[host]";
    addr 10.0.0.0/8 -> "[internal]";
    addr fd00::/8 -> "[internal]";
}"""


def test_ipv4_mapped_networks_are_the_ipv4_networks_they_map():
    assert parse_network("::ffff:198.51.100.7") == ipaddress.IPv4Network("198.51.100.7/32")
    assert parse_network("::FFFF:198.51.100.0/120") == ipaddress.IPv4Network("198.51.100.0/24")
    assert parse_network("::ffff:0:0/96") == ipaddress.IPv4Network("0.0.0.0/0")
    assert parse_network("2001:db8::/32").version == 6


def test_peer_addresses_have_one_form():
    assert canonical("::ffff:127.0.0.1") == "127.0.0.1"
    assert canonical("2001:DB8:0:0::1") == "2001:db8::1"
    assert canonical("fe80::1%eth0") == "fe80::1"
    assert canonical("127.0.0.1") == "127.0.0.1"
    assert canonical_peer(IPv6Address("TCP", "::ffff:127.0.0.5", 4)) == IPv4Address(
        "TCP", "127.0.0.5", 4
    )
    v6 = IPv6Address("TCP", "::1", 4)
    assert canonical_peer(v6) is v6


@pytest.mark.parametrize(
    ("said", "seen"),
    [
        ("mapped ::ffff:10.20.30.40.", "mapped [internal]."),
        (
            "hex ::FFFF:0a14:1e28, full 0:0:0:0:0:ffff:10.20.30.40",
            "hex [internal], full [internal]",
        ),
        (
            "compatible ::10.20.30.40, nat64 64:ff9b::a14:1e28",
            "compatible [internal], nat64 [internal]",
        ),
        ("6to4 2002:a14:1e28::1", "6to4 [internal]"),
        ("host_10.20.30.40 10.20.30.40_backup", "host_[internal] [internal]_backup"),
        ("10.20.30.40.nip.io x10.20.30.40y", "[internal].nip.io x[internal]y"),
        ("padded 010.020.030.040", "padded [internal]"),
        ("octal as inet_aton reads it 012.0.0.1", "octal as inet_aton reads it [internal]"),
        ("ip-10-20-30-40.ec2.internal", "ip-[internal].ec2.internal"),
        (
            "[FD00::17]:5222 fd00::17%eth0 host_fd00::17_x",
            "[[internal]]:5222 [internal] host_[internal]_x",
        ),
        ("at fd00::5: down", "at [internal]: down"),
        ("at 10:30:10.20.30.40", "at 10:30:[internal]"),
        (
            "x_db01.corp.internal DB01.CORP.INTERNAL. db01.corp.internal_old",
            "x_our systems our systems. our systems_old",
        ),
        ("mail.corp.example_x", "[host]_x"),
        # Not internal, or not an address: left alone.
        ("192.168.1.10 8.8.8.8 ::1 12:30:45 1.10.20.30.40 2024-01-02-03", None),
        ("db01.corp.internalx sub.db01.corp.internal.x", None),
    ],
)
def test_every_form_of_an_internal_address_is_translated(said, seen):
    translator = Translator(parse(TRANSLATE).translations)
    assert translator.translate(said) == (said if seen is None else seen)
