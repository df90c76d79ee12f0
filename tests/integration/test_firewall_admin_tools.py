"""The admin tools nftables users reach for, against a running gateway over real sockets:
``fw check``/``fw trace`` (the verdict without a connection), handles that stay put with
comments, insert/replace at a position, single set elements, ``--persist``/``fw save``
and bans that outlive a restart, CIDR bans closing established connections,
``fw conntrack flush``, and the summary line of each connection that ends."""

from __future__ import annotations

import json
import re
import signal

import fw_site
import harness
import pytest
from fw_site import Client, dropped
from jsonim_client import hello_customer

RULES = """\
set scanners { type addr; elements = { 192.0.2.0/24 } }
chain input {
    policy accept;
    ip saddr @scanners drop comment "known scanners";
    ip saddr 127.0.0.90 reject;
    listener jsonim role agent ip saddr 127.0.0.91 accept;
    listener jsonim role agent drop;
}
limits { concurrent 5; }
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("firewall-tools")
    config, rules = fw_site.write_config(root, RULES, "log_connections = true\n")
    gateway = harness.start_gateway(root / "cwd", config)
    gateway.rules = rules
    gateway.root = root
    yield gateway
    gateway.stop()


def fw(site, *args, check=True):
    return fw_site.fw_of(site, *args, check=check)


def test_check_and_trace_give_the_verdict_and_its_rule_without_a_connection(site):
    out = fw(site, "check", "192.0.2.7", str(site.port)).stdout
    assert out == "drop (rule 1: ip saddr @scanners drop # known scanners)\n"
    assert fw(site, "check", "127.0.0.90", "--listener", "jsonim").stdout == (
        "reject (rule 2: ip saddr 127.0.0.90 reject)\n"
    )
    customer = fw(site, "check", "198.51.100.1", str(site.port), "--role", "customer").stdout
    assert customer == "accept (policy)\n"
    pending = fw(site, "check", "127.0.0.92", str(site.port)).stdout
    assert pending == (
        "waits for the role: customer: accept (policy);"
        " agent: drop (rule 4: listener jsonim role agent drop)\n"
    )
    agent = fw(site, "check", "127.0.0.91", "--listener", "jsonim", "--role", "agent").stdout
    assert agent == "accept (rule 3: listener jsonim role agent ip saddr 127.0.0.91 accept)\n"
    traced = fw(site, "trace", "127.0.0.92", str(site.port), "--role", "agent").stdout.splitlines()
    assert traced == [
        "bans: not banned",
        "index: 2 rules cannot match the address",
        "rule 1: ip saddr @scanners drop: no match (not in @scanners)",
        "rule 4: listener jsonim role agent drop: match: drop",
        "drop (rule 4: listener jsonim role agent drop)",
    ], traced
    answer = json.loads(fw(site, "check", "192.0.2.7", str(site.port), "--json").stdout)
    assert (answer["verdict"], answer["rule"]["handle"], answer["listener"]) == (
        "drop",
        1,
        "jsonim",
    )
    # Nothing was spent or counted by asking.
    rows = {r["handle"]: r["connections"] for r in fw_site.fw_json(site, "list")}
    assert rows[1] == 0 and rows[2] == 0


def test_handles_stay_put_and_rules_go_where_they_are_put(site):
    before = fw_site.fw_json(site, "list")
    first = fw(site, "insert", "ip", "saddr", "127.0.0.93", "drop", "--comment", "first").stdout
    handle = int(first.split()[1])
    after_two = fw(site, "add", "--after", "2", "ip", "saddr", "127.0.0.94", "drop").stdout
    placed = int(after_two.split()[1])
    rows = fw_site.fw_json(site, "list")
    order = [r["handle"] for r in rows if r["chain"] == "input"]
    assert order == [handle, 1, 2, placed, 3, 4]
    assert next(r for r in rows if r["handle"] == handle)["comment"] == "first"
    assert dropped(site.port, "127.0.0.93") and dropped(site.port, "127.0.0.94")
    # Replace in place: same handle, same place, new rule.
    fw(site, "replace", str(placed), "ip", "saddr", "127.0.0.95", "drop")
    assert [r["handle"] for r in fw_site.fw_json(site, "list") if r["chain"] == "input"] == order
    assert dropped(site.port, "127.0.0.95")
    hello_customer(Client(site.port, "127.0.0.94", "no longer dropped"))
    # An apply of the file (rules of the same text keep their handles) and a SIGHUP.
    site.rules.write_text(
        RULES.replace("ip saddr 127.0.0.90 reject;", "ip saddr 127.0.0.96 reject;")
    )
    fw(site, "apply", str(site.rules))
    rows = fw_site.fw_json(site, "list")
    kept = {r["rule"]: r["handle"] for r in rows}
    assert kept["ip saddr @scanners drop"] == 1 and kept["listener jsonim role agent drop"] == 4
    assert kept["ip saddr 127.0.0.96 reject"] not in {r["handle"] for r in before}
    mark = len(site.lines)
    site.proc.send_signal(signal.SIGHUP)
    site.wait_for_log(r"firewall rules applied from .*firewall\.rules", 10, mark)
    assert {r["rule"]: r["handle"] for r in fw_site.fw_json(site, "list")} == kept


def test_single_set_elements_without_an_apply(site):
    added = fw(site, "element", "add", "scanners", "127.0.0.97", "203.0.113.0/24").stdout
    assert added == "added 2 of 2; set scanners has 3\n"
    assert dropped(site.port, "127.0.0.97")
    assert fw(site, "list", "--set", "scanners").stdout.split() == [
        "192.0.2.0/24",
        "203.0.113.0/24",
        "127.0.0.97",
    ]
    fw(site, "element", "delete", "scanners", "127.0.0.97")
    hello_customer(Client(site.port, "127.0.0.97", "let in again"))


def test_persist_and_save_write_the_rules_file_with_handles(site):
    out = fw(site, "add", "--persist", "--comment", "kept", "ip", "saddr", "127.0.0.98", "drop")
    handle = int(out.stdout.split()[1])
    assert f"written to {site.rules}" in out.stdout
    text = site.rules.read_text()
    assert f'ip saddr 127.0.0.98 drop comment "kept" handle {handle};' in text
    fw(site, "element", "add", "--persist", "scanners", "198.18.0.0/15")
    assert "198.18.0.0/15" in site.rules.read_text()
    mark = len(site.lines)
    site.proc.send_signal(signal.SIGHUP)
    site.wait_for_log(r"firewall rules applied from .*firewall\.rules", 10, mark)
    rows = {r["rule"]: r["handle"] for r in fw_site.fw_json(site, "list")}
    assert rows["ip saddr 127.0.0.98 drop"] == handle
    saved = site.root / "copy.rules"
    fw(site, "save", str(saved))
    assert f"handle {handle};" in saved.read_text()


def test_cidr_bans_close_established_connections_and_conntrack_flush(site):
    held = Client(site.port, "127.0.8.1", "held")
    hello_customer(held)
    other = Client(site.port, "127.0.9.1", "other")
    hello_customer(other)
    assert fw(site, "bans", "add", "127.0.8.0/24", "--close").stdout == "banned 127.0.8.0/24\n"
    assert held.closed(10)
    assert dropped(site.port, "127.0.8.2")
    site.wait_for_log(r"firewall drop address=127\.0\.8\.2 listener=jsonim rule=banned", 10)
    other.sync()  # another network is not touched
    assert "127.0.8.0/24 until lifted" in fw(site, "bans", "list").stdout
    fw(site, "bans", "remove", "127.0.8.0/24")
    hello_customer(Client(site.port, "127.0.8.2", "let in again"))
    assert fw(site, "conntrack", "flush", "127.0.9.0/24").stdout == "closed 1 connections\n"
    assert other.closed(10)


def test_a_summary_line_when_a_connection_ends(site):
    mark = len(site.lines)
    client = Client(site.port, "127.0.0.99", "summary")
    hello_customer(client)
    client.hang_up()
    line = site.wait_for_log(r"firewall close address=127\.0\.0\.99 .*", 10, mark).group()
    match = re.fullmatch(
        r"firewall close address=127\.0\.0\.99 listener=jsonim duration=\d+\.\d{3}s"
        r" bytes_in=(\d+) bytes_out=(\d+) verdict=accept rule=- role=customer end=client",
        line,
    )
    assert match, line
    assert int(match.group(1)) > 0 and int(match.group(2)) > 0
    mark = len(site.lines)
    agent = Client(site.port, "127.0.0.100", "outside agent")
    agent.send(
        {
            "type": "hello",
            "protocol": "jsonim/1",
            "role": "agent",
            "client": {"name": "desk", "version": "1"},
            "auth": {"user": "nobody", "password": "x"},
        }
    )
    assert agent.closed(10)
    site.wait_for_log(
        r"firewall close address=127\.0\.0\.100 listener=jsonim duration=\S+ bytes_in=\d+"
        r" bytes_out=0 verdict=drop rule=4 role=agent end=local",
        10,
        mark,
    )


def test_bans_outlive_a_restart(tmp_path):
    config, _ = fw_site.write_config(tmp_path, "")
    gateway = harness.start_gateway(tmp_path / "cwd", config)
    try:
        fw_site.fw_of(gateway, "bans", "add", "127.0.7.0/24")
        fw_site.fw_of(gateway, "bans", "add", "127.0.6.1", "--for", "3600")
        gateway.wait_for_log(r"firewall ban address=127\.0\.6\.1", 10)
    finally:
        gateway.stop()
    assert "127.0.7.0/24 -" in (tmp_path / "data" / "firewall.bans").read_text()
    again = harness.start_gateway(tmp_path / "cwd2", config, "restarted")
    try:
        again.wait_for_log(r"firewall: 2 bans restored", 10)
        assert dropped(again.port, "127.0.7.5") and dropped(again.port, "127.0.6.1")
        listed = fw_site.fw_of(again, "bans", "list").stdout
        assert "127.0.7.0/24 until lifted" in listed and "127.0.6.1 expires in" in listed
    finally:
        again.stop()
