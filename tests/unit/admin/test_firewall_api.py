"""/v1/fw/… (gateway.admin.firewall_api) with DummyRequest, and ``imgateway-admin fw``."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace
from urllib.parse import parse_qs

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from firewall.engine import Firewall
from firewall.wrapper import wrap
from gateway.admin import cli as admin
from gateway.admin import firewall_api as api
from gateway.admin import firewall_cli as cli

RULES = "chain input { policy accept; ip saddr 192.0.2.0/24 drop; }\n"


def call(resource, method: str, path: str, body=None):
    path, _, query = path.partition("?")
    request = DummyRequest([p.encode() for p in path.split("/")])
    request.args = {k.encode(): [v.encode() for v in vs] for k, vs in parse_qs(query).items()}
    request.method = method.encode()
    request.content = io.BytesIO(b"" if body is None else json.dumps(body).encode())
    out = resource.render(request)
    if out == NOT_DONE_YET:
        assert request.finished, "the answer is given later"
        out = b"".join(request.written)
    return request.responseCode or 200, json.loads(out)


@pytest.fixture
def fw():
    firewall = Firewall(Clock())
    firewall.apply(RULES, "etc/firewall.rules")
    return firewall


def test_ruleset_lists_rules_with_handles_and_counters(fw):
    fw.counters[1].connections = 3
    status, answer = call(api.FirewallResource(fw), "GET", "ruleset")
    assert status == 200
    assert answer["rules"] == [
        {
            "chain": "input",
            "handle": 1,
            "rule": "ip saddr 192.0.2.0/24 drop",
            "connections": 3,
            "messages": 0,
            "bytes": 0,
        }
    ]
    assert (
        "ip saddr 192.0.2.0/24 drop; # counter connections 3 messages 0 bytes 0 # handle 1"
        in (answer["text"])
    )


def test_check_shows_the_diff_and_changes_nothing(fw):
    resource = api.FirewallResource(fw)
    before = fw.ruleset
    status, answer = call(resource, "POST", "check", {"text": RULES.replace("drop;", "reject;")})
    assert status == 200 and "+    ip saddr 192.0.2.0/24 reject;" in answer["diff"]
    assert fw.ruleset is before
    status, answer = call(resource, "POST", "check", {"text": "chain input { nonsense; }"})
    assert status == 422 and answer["error"].startswith("new:1: unknown rule word")


def test_the_gateway_parses_in_its_thread_pool(fw):
    from twisted.internet.testing import MemoryReactorClock
    from twisted.python.threadpool import ThreadPool

    class Inline(ThreadPool):
        def callInThreadWithCallback(self, on_result, func, *args, **kw):  # noqa: N802
            on_result(True, func(*args, **kw))

    reactor = MemoryReactorClock()
    reactor.getThreadPool = lambda: Inline()
    reactor.callFromThread = lambda f, *a, **kw: f(*a, **kw)
    resource = api.resource(SimpleNamespace(firewall=fw, reactor=reactor))
    status, answer = call(resource, "POST", "apply", {"text": "chain input { policy drop; }"})
    assert (status, answer) == (200, {"applied": True, "rules": 0})
    assert fw.ruleset.chains["input"].policy == "drop"


def test_apply_is_all_or_nothing(fw):
    resource = api.FirewallResource(fw)
    before = fw.ruleset
    status, answer = call(resource, "POST", "apply", {"text": RULES + "wat"})
    assert status == 422 and fw.ruleset is before
    status, answer = call(resource, "POST", "apply", {"text": "chain input { policy drop; }"})
    assert (status, answer) == (200, {"applied": True, "rules": 0})
    assert fw.ruleset.chains["input"].policy == "drop"
    assert call(resource, "POST", "apply", {"text": 5})[0] == 400


def test_add_and_delete_rules(fw):
    resource = api.FirewallResource(fw)
    status, answer = call(
        resource, "POST", "rules", {"chain": "input", "rule": "ip saddr 10.0.0.1 drop"}
    )
    assert (status, answer) == (201, {"handle": 2})
    assert call(resource, "POST", "rules", {"rule": "bogus"})[0] == 422
    assert call(resource, "DELETE", "rules/2") == (200, {"deleted": 2})
    assert call(resource, "DELETE", "rules/2")[0] == 404
    fw.counters[1].connections = 9
    assert call(resource, "POST", "reset-counters")[0] == 200
    assert fw.counters[1].connections == 0


def test_conntrack_list_and_kill(fw):
    resource = api.FirewallResource(fw)
    factory = wrap(
        Factory.forProtocol(Protocol),
        listener="jsonim",
        max_connections=9,
        max_connections_per_address=9,
        firewall=fw,
    )
    addr = IPv4Address("TCP", "10.0.0.1", 4444)
    protocol = factory.buildProtocol(addr)
    transport = StringTransport(peerAddress=addr, hostAddress=IPv4Address("TCP", "127.0.0.1", 7070))
    protocol.makeConnection(transport)
    _status, answer = call(resource, "GET", "conntrack")
    (entry,) = answer["connections"]
    assert entry["original"] == {"src": "10.0.0.1:4444", "dst": "127.0.0.1:7070"}
    assert (entry["state"], entry["protocol"], entry["listener"]) == ("new", "tcp", "jsonim")
    assert call(resource, "DELETE", f"conntrack/{entry['id']}")[0] == 200
    assert transport.disconnecting or transport.disconnected
    assert call(resource, "DELETE", "conntrack/999")[0] == 404


def test_bans(fw):
    resource = api.FirewallResource(fw)
    assert call(resource, "POST", "bans", {"address": "10.0.0.7", "for_s": 60}) == (
        201,
        {"banned": "10.0.0.7"},
    )
    assert call(resource, "POST", "bans", {"address": "2001:db8::9"})[1] == {
        "banned": "2001:db8::/64"
    }
    assert call(resource, "POST", "bans", {"address": "nonsense"})[0] == 400
    assert call(resource, "POST", "bans", {"address": "10.0.0.8", "for_s": -1})[0] == 400
    assert call(resource, "GET", "bans")[1] == {
        "bans": [
            {"address": "10.0.0.7", "expires_in_s": 60.0},
            {"address": "2001:db8::/64", "expires_in_s": None},
        ]
    }
    assert call(resource, "DELETE", "bans/2001:db8::%2F64")[0] == 200
    assert call(resource, "DELETE", "bans/10.0.0.99")[0] == 404
    assert call(resource, "GET", "nothing")[0] == 404


class FakeClient:
    """Answers the CLI's requests from a FirewallResource, as the real API would."""

    def __init__(self, resource):
        self.resource = resource
        self.calls: list = []

    def request(self, method, path, body=None):
        self.calls.append((method, path, body))
        return call(self.resource, method, path.removeprefix("/v1/fw/"), body)


@pytest.fixture
def client(fw, monkeypatch, tmp_path):
    fake = FakeClient(api.FirewallResource(fw))
    monkeypatch.setattr(cli, "client_factory", lambda cfg: fake)
    monkeypatch.chdir(tmp_path)
    return fake


def test_cli_list_check_apply(client, fw, tmp_path, capsys):
    assert admin.main(["fw", "list"]) == 0
    assert "ip saddr 192.0.2.0/24 drop; # counter connections 0" in capsys.readouterr().out
    rules = tmp_path / "new.rules"
    rules.write_text(RULES.replace("drop;", "reject;"))
    assert admin.main(["fw", "check", str(rules)]) == 0
    assert "+    ip saddr 192.0.2.0/24 reject;" in capsys.readouterr().out
    assert fw.ruleset.chains["input"].rules[0][1].verdict == "drop"
    assert admin.main(["fw", "apply", str(rules)]) == 0
    assert fw.ruleset.chains["input"].rules[0][1].verdict == "reject"
    rules.write_text("chain input { bogus; }")
    assert admin.main(["fw", "apply", str(rules)]) == 1
    assert "422" in capsys.readouterr().err


def test_cli_add_delete_conntrack_bans(client, capsys):
    assert admin.main(["fw", "add", "ip", "saddr", "10.0.0.1", "drop"]) == 0
    assert capsys.readouterr().out == "handle 2\n"
    assert admin.main(["fw", "delete", "2"]) == 0
    assert admin.main(["fw", "reset-counters"]) == 0
    assert admin.main(["fw", "conntrack", "list"]) == 0
    assert admin.main(["fw", "conntrack", "kill", "5"]) == 1
    assert admin.main(["fw", "bans", "add", "10.0.0.3", "--for", "30"]) == 0
    assert admin.main(["fw", "bans", "list"]) == 0
    assert "10.0.0.3 expires in 30s" in capsys.readouterr().out
    assert admin.main(["fw", "bans", "remove", "10.0.0.3"]) == 0
    assert client.calls[-1] == ("DELETE", "/v1/fw/bans/10.0.0.3", None)


def test_trace_insert_replace_elements_save_and_flush(fw, tmp_path):
    listeners = [("jsonim", "jsonim", 7070), ("desk", "tcp", 5280)]
    resource = api.FirewallResource(fw, listeners=lambda: listeners)
    status, answer = call(resource, "POST", "trace", {"address": "192.0.2.9", "port": 7070})
    assert (status, answer["verdict"], answer["listener"]) == (200, "drop", "jsonim")
    assert answer["rule"] == {"handle": 1, "rule": "ip saddr 192.0.2.0/24 drop"}
    assert call(resource, "POST", "trace", {"address": "192.0.2.9", "port": 1})[0] == 404
    assert call(resource, "POST", "trace", {"address": "x"})[0] == 400
    assert call(resource, "POST", "trace", {"address": "10.0.0.1", "role": "boss"})[0] == 400
    body = {"rule": "ip saddr 10.0.0.1 drop", "index": 0, "comment": "first"}
    assert call(resource, "POST", "rules", body) == (201, {"handle": 2})
    assert [r["handle"] for r in fw.listing()] == [2, 1]
    assert call(resource, "PUT", "rules/2", {"rule": "ip saddr 10.0.0.2 drop"}) == (
        200,
        {"replaced": 2},
    )
    assert fw.listing()[0]["comment"] == "first"
    assert call(resource, "PUT", "rules/9", {"rule": "drop"})[0] == 404
    # Nothing changes when it could not be written.
    assert call(resource, "POST", "rules", {"rule": "drop", "persist": True})[0] == 409
    assert [r["handle"] for r in fw.listing()] == [2, 1]
    fw.rules_file = tmp_path / "fw.rules"
    elements = {"add": ["198.51.100.7"], "delete": ["192.0.2.0/24"], "persist": True}
    status, answer = call(resource, "POST", "sets/none/elements", elements)
    assert status == 404
    fw.apply("set bad { type addr; elements = { 192.0.2.0/24 } }\n" + RULES)
    status, answer = call(resource, "POST", "sets/bad/elements", elements)
    assert (status, answer["size"], answer["saved"]) == (200, 1, str(fw.rules_file))
    assert "elements = { 198.51.100.7 }" in fw.rules_file.read_text()
    assert call(resource, "GET", "sets/bad")[1]["elements"] == ["198.51.100.7"]
    assert call(resource, "POST", "save") == (200, {"saved": str(fw.rules_file)})
    saved = call(resource, "GET", "ruleset?full=1&format=rules")[1]["text"]
    assert "ip saddr 192.0.2.0/24 drop handle" in saved
    assert call(resource, "POST", "conntrack/flush", {"address": "10.0.0.0/8"}) == (
        200,
        {"flushed": 0},
    )
    assert call(resource, "POST", "conntrack/flush", {"address": "nope"})[0] == 400
    assert call(resource, "GET", "dnat") == (200, {"dnat": []})


def test_cli_trace_elements_bans_and_dnat(client, fw, capsys):
    assert admin.main(["fw", "check", "192.0.2.1", "--listener", "jsonim"]) == 0
    assert capsys.readouterr().out == "drop (rule 1: ip saddr 192.0.2.0/24 drop)\n"
    assert admin.main(["fw", "trace", "198.51.100.1", "--listener", "jsonim"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "bans: not banned",
        "index: 1 rules cannot match the address",
        "policy: accept",
        "limits: under every limit",
        "accept (policy)",
    ]
    assert admin.main(["fw", "insert", "--before", "1", "--comment", "c", "drop"]) == 0
    assert client.calls[-1][2] == {"chain": "input", "rule": "drop", "comment": "c", "before": 1}
    assert admin.main(["fw", "bans", "add", "10.9.0.0/16", "--close"]) == 0
    assert client.calls[-1][2] == {"address": "10.9.0.0/16", "close": True}
    assert admin.main(["fw", "dnat", "list"]) == 0
    assert admin.main(["fw", "element", "add", "missing", "10.0.0.1"]) == 1
    assert "no set named" in capsys.readouterr().err
