"""The web listener without sockets: HTTP resources and headers, the WebSocket handshake
handing the connection to autobahn, JSON-IM frames as messages, the origin policy and a
close code for every refusal, and the firewall's hooks."""

from __future__ import annotations

import json
import re

import pytest
from jsonim_helpers import FakeGateway
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from web_helpers import HOST, SHOP, Site, hello_agent, hello_customer
from ws_frames import BINARY, PONG, TEXT, client_frame
from zope.interface.verify import verifyObject

from firewall.interfaces import IFirewalledProtocol
from gateway.core.interfaces import IParty
from protocols.jsonim.interfaces import IFrameLink
from protocols.jsonim.settings import JsonImSettings
from protocols.web.settings import WebSettings
from protocols.web.socket import WebChatProtocol


def test_the_websocket_protocol_provides_its_interfaces():
    wire = Site().connect()
    ws = wire.open()
    assert verifyObject(IFrameLink, ws)
    assert verifyObject(IFirewalledProtocol, ws)
    assert verifyObject(IFirewalledProtocol, wire.channel)
    assert verifyObject(IParty, ws.session)


# -- HTTP -------------------------------------------------------------------------


def get(wire, path: str, *headers: str) -> tuple[int, dict[str, str], bytes]:
    extra = "".join(f"{h}\r\n" for h in headers)
    raw = wire.http(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n{extra}\r\n".encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return status, {k.lower(): v for k, v in fields.items()}, body


def test_the_widget_script_is_one_file_any_site_may_load():
    wire = Site().connect()
    status, headers, body = get(wire, "/widget.js")
    assert status == 200
    assert headers["content-type"] == "text/javascript; charset=utf-8"
    assert headers["access-control-allow-origin"] == "*"
    assert headers["x-content-type-options"] == "nosniff"
    assert body.startswith(b"(function () {\n'use strict';")
    assert b"var ImgatewayMarkup" in body and b"attachShadow" in body
    assert body.endswith(b"})();\n")
    # Cached copies are revalidated with the ETag.
    status, _, body = get(wire, "/widget.js", f"If-None-Match: {headers['etag']}")
    assert (status, body) == (304, b"")
    status, headers, body = get(wire, "/widget.css")
    assert status == 200 and headers["content-type"] == "text/css; charset=utf-8"


@pytest.mark.parametrize("path", ["/console", "/demo"])
def test_pages_forbid_inline_script_and_framing(path):
    wire = Site().connect()
    status, headers, body = get(wire, path)
    assert status == 200
    policy = headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"
    assert "set-cookie" not in headers
    # Every script is a file of the gateway's own; no event handler attributes.
    html = body.decode()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert re.findall(r"\son[a-z]+\s*=", html) == []
    assert "javascript:" not in html


def test_console_settings_and_files():
    web = WebSettings(away_reasons=("Coffee", "Training"))
    wire = Site(web).connect()
    status, _, body = get(wire, "/console.json")
    assert status == 200
    assert json.loads(body) == {"server": "gw-test", "away_reasons": ["Coffee", "Training"]}
    for path in ("/console.js", "/console-desk.js", "/console.css", "/markup.js"):
        assert get(wire, path)[0] == 200, path
    # The demo page is off unless enabled.
    assert get(wire, "/demo")[0] == 404


def test_console_and_demo_can_be_turned_off():
    wire = Site(WebSettings(console=False, demo=False)).connect()
    for path in ("/console", "/console.js", "/console.json", "/demo", "/", "/nothing", "/ws/x"):
        status, _, body = get(wire, path)
        assert (status, body) == (404, b"not found\n"), path
    assert get(wire, "/widget.js")[0] == 200


def test_each_request_is_one_message_to_the_firewall():
    wire = Site().connect()
    for _ in range(3):
        get(wire, "/widget.css")
    assert wire.transport.messages == 3
    wire.transport.message_limit = 3
    raw = wire.http(f"GET /widget.css HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    assert raw == b""  # the firewall drops it; nothing is answered


def test_a_request_body_is_refused():
    wire = Site().connect()
    raw = wire.http(
        f"POST /ws HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100000\r\n\r\n".encode()
        + b"x" * 1000
    )
    assert raw.startswith(b"HTTP/1.1 413 Payload Too Large\r\n"), raw
    assert wire.transport.disconnecting
    wire.channel.dataReceived(b"x" * 100000)
    assert wire.take() == b""


def test_a_chunked_body_is_refused():
    wire = Site().connect()
    raw = wire.http(
        f"POST /widget.js HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    )
    assert raw.startswith(b"HTTP/1.1 413 "), raw


def test_the_firewall_refusal_is_an_http_403():
    wire = Site().connect()
    wire.channel.firewall_reject("refused by the firewall")
    raw = wire.take()
    assert raw.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert raw.endswith(b"\r\n\r\nrefused by the firewall\n")


def test_a_get_on_ws_without_upgrade_is_refused():
    wire = Site().connect()
    status, _, _ = get(wire, "/ws")
    assert status in (400, 426)


# -- the WebSocket -------------------------------------------------------------------


def test_a_customer_hello_and_welcome_as_websocket_messages():
    site = Site()
    wire = site.connect()
    ws = wire.open()
    wire.send(hello_customer())
    [welcome] = wire.received()
    assert welcome["type"] == "welcome"
    assert welcome["features"] == ["typing", "rich_text", "receipts"]
    [arrival] = site.gateway.arrivals
    assert arrival["protocol"] == "web"
    assert arrival["client"].name == "webchat"
    assert ws.peer == "web 127.0.0.1:40000" and ws.peer_host == "127.0.0.1"
    # One frame per message, each counted by the firewall.
    wire.send({"type": "ping", "id": "p1"}, {"type": "ping", "id": "p2"})
    assert wire.received() == [{"type": "pong", "id": "p1"}, {"type": "pong", "id": "p2"}]
    assert wire.transport.messages == 1 + 3  # the handshake's request, then three frames


def test_websocket_pings_are_answered():
    wire = Site().connect()
    wire.open()
    wire.send(client_frame(b"are you there", 0x9))
    assert wire.frames() == [(PONG, b"are you there")]


def test_the_firewall_message_limit_stops_reading():
    site = Site()
    wire = site.connect()
    ws = wire.open()
    wire.send(hello_customer())
    wire.received()
    wire.transport.message_limit = wire.transport.messages + 1
    wire.send({"type": "ping", "id": "a"}, {"type": "ping", "id": "b"})
    assert wire.received() == [{"type": "pong", "id": "a"}]
    assert ws.session.closing


def test_a_role_the_firewall_refuses_is_not_served():
    site = Site()
    wire = site.connect()
    wire.open()
    wire.transport.role_ok = False
    wire.send(hello_customer())
    assert wire.transport.roles == ["customer"]
    assert site.gateway.arrivals == []


def test_the_firewall_reject_is_an_error_and_a_policy_close():
    wire = Site().connect()
    ws = wire.open()
    ws.firewall_reject("refused by the firewall")
    texts, code, reason = wire.closed_with()
    assert texts == [{"type": "error", "code": "not_allowed", "text": "refused by the firewall"}]
    assert (code, reason) == (1008, "refused by the firewall")


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("https://shop.example", HOST, True),  # listed
        ("http://gw.example:8080", HOST, True),  # the listener's own (console, demo)
        ("https://gw.example:8080", HOST, True),  # ... behind a TLS proxy
        ("https://evil.example", HOST, False),
        ("https://shop.example.evil.example", HOST, False),
        ("null", HOST, False),
        (None, HOST, True),  # a program, not a browser
    ],
)
def test_origins(origin, host, allowed):
    site = Site()
    wire = site.connect()
    wire.open(origin=origin, host=host)
    if allowed:
        wire.send(hello_customer())
        assert wire.received()[0]["type"] == "welcome"
        return
    texts, code, reason = wire.closed_with()
    assert (texts, code) == ([], 1008)
    assert reason == f"origin not allowed: {origin}"
    assert site.gateway.arrivals == []
    # Nothing the page sends is read.
    wire.send(hello_customer())
    assert site.gateway.arrivals == []


def test_any_origin_and_a_required_origin():
    site = Site(WebSettings(allowed_origins=("*",), allow_missing_origin=False))
    wire = site.connect()
    wire.open(origin="https://anywhere.example")
    wire.send(hello_customer())
    assert wire.received()[0]["type"] == "welcome"
    wire = site.connect()
    wire.open(origin=None)
    assert wire.closed_with() == ([], 1008, "an Origin header is required")


def test_connections_per_origin_are_limited():
    site = Site(WebSettings(allowed_origins=(SHOP,), max_connections_per_origin=2))
    wires = [site.connect() for _ in range(3)]
    for wire in wires[:2]:
        wire.open()
        wire.send(hello_customer())
        assert wire.received()[0]["type"] == "welcome"
    wires[2].open()
    assert wires[2].closed_with() == (
        [],
        1013,
        "too many connections from this origin; try again later",
    )
    assert site.sockets.connections_from(SHOP) == 2
    # Other origins are counted apart; a closed connection frees its place.
    own = site.connect()
    own.open(origin="http://gw.example:8080")
    own.send(hello_customer())
    assert own.received()[0]["type"] == "welcome"
    wires[0].ws.connectionLost(Failure(ConnectionDone()))
    assert site.sockets.connections_from(SHOP) == 1
    again = site.connect()
    again.open()
    again.send(hello_customer())
    assert again.received()[0]["type"] == "welcome"


def test_agents_log_in_only_from_the_consoles_origin():
    site = Site(WebSettings(allowed_origins=(SHOP,), console_origins=("https://desk.example",)))
    shop = site.connect()
    shop.open(origin=SHOP)
    shop.send(hello_agent())
    texts, code, reason = shop.closed_with()
    assert texts == [
        {
            "type": "error",
            "code": "not_allowed",
            "text": "agents log in from the console's own origin",
        }
    ]
    assert (code, reason) == (1008, "not_allowed: agents log in from the console's own origin")
    assert site.gateway.logins == []
    for origin in ("http://gw.example:8080", "https://desk.example", None):
        wire = site.connect()
        wire.open(origin=origin)
        wire.send(hello_agent())
        assert wire.received()[0]["type"] == "welcome", origin
    assert [login["protocol"] for login in site.gateway.logins] == ["web"] * 3


def test_a_message_over_max_frame_is_too_large_and_closes():
    site = Site(jsonim=JsonImSettings(max_frame=1024))
    wire = site.connect()
    wire.open()
    wire.send(hello_customer())
    wire.received()
    wire.send(client_frame(b"x" * 1025))
    texts, code, reason = wire.closed_with()
    assert texts == [{"type": "error", "code": "too_large", "text": "frame exceeds 1024 bytes"}]
    assert (code, reason) == (1009, "too_large: frame exceeds 1024 bytes")


def test_a_message_over_max_frame_in_fragments_is_too_large():
    site = Site(jsonim=JsonImSettings(max_frame=1024))
    wire = site.connect()
    wire.open()
    wire.send(hello_customer())
    wire.received()
    wire.send(client_frame(b"x" * 600, fin=False), client_frame(b"y" * 600, 0x0))
    texts, code, _ = wire.closed_with()
    assert [t["code"] for t in texts] == ["too_large"] and code == 1009


def test_a_stated_length_over_the_limit_is_refused_before_its_payload():
    site = Site(jsonim=JsonImSettings(max_frame=1024))
    wire = site.connect()
    wire.open()
    wire.send(hello_customer())
    wire.received()
    # Only the header of a 1 GiB frame: refused at once, nothing buffered.
    wire.send(client_frame(b"", length=1 << 30)[:14])
    texts, code, _ = wire.closed_with()
    assert [t["code"] for t in texts] == ["too_large"] and code == 1009


def test_bad_utf8_closes_with_1007():
    wire = Site().connect()
    wire.open()
    wire.send(hello_customer())
    wire.received()
    wire.send(client_frame(b'{"type":"message","text":"\xff\xfe"}'))
    texts, code, reason = wire.closed_with()
    assert texts == [] and code == 1007, reason
    assert "UTF-8" in reason


def test_a_binary_message_closes_with_1003():
    site = Site()
    wire = site.connect()
    wire.open()
    wire.send(hello_customer())
    wire.received()
    wire.send({"type": "ping", "id": "x"}, opcode=BINARY)
    assert wire.closed_with() == ([], 1003, "JSON-IM frames travel as text messages")


@pytest.mark.parametrize(
    ("frames", "errors", "code"),
    [
        ([b"not json"] * 3, ["bad_frame"] * 3, 1007),  # max_bad_frames
        ([{"type": "message", "text": "hi"}], ["not_allowed"], 1008),
        ([{"type": "hello", "protocol": "jsonim/9", "role": "customer"}], ["unavailable"], 1013),
    ],
)
def test_a_session_closing_after_an_error_closes_with_its_code(frames, errors, code):
    wire = Site().connect()
    wire.open()
    for f in frames:
        wire.send(f if isinstance(f, dict) else client_frame(f))
    texts, close, reason = wire.closed_with()
    assert [t["code"] for t in texts] == errors
    assert close == code and reason.startswith(f"{errors[-1]}: ")


def test_a_failed_agent_login_closes_with_1008():
    from twisted.internet.defer import fail

    from gateway.core.errors import AuthFailed

    gateway = FakeGateway()
    gateway.login = fail(AuthFailed("authentication failed"))
    wire = Site(gateway=gateway).connect()
    wire.open(origin=None)
    wire.send(hello_agent())
    texts, code, reason = wire.closed_with()
    assert [t["code"] for t in texts] == ["auth_failed"]
    assert (code, reason) == (1008, "auth_failed: authentication failed")


def test_the_hello_timeout_closes():
    site = Site(jsonim=JsonImSettings(hello_timeout_s=5))
    wire = site.connect()
    wire.open()
    site.clock.advance(5)
    texts, code, _ = wire.closed_with()
    assert [t["code"] for t in texts] == ["not_allowed"] and code == 1008


def test_shutdown_closes_with_1001():
    from gateway.core.events import Ended

    site = Site()
    wire = site.connect()
    ws = wire.open()
    wire.send(hello_customer())
    wire.received()
    ws.session.deliver(Ended("c-1", "shutdown"))
    ws.session.close("shutdown")
    texts, code, reason = wire.closed_with()
    assert texts == [{"type": "ended", "conversation": "c-1", "reason": "shutdown"}]
    assert (code, reason) == (1001, "the service is restarting")


def test_a_session_ends_with_its_connection():
    site = Site()
    wire = site.connect()
    ws = wire.open()
    wire.send(hello_customer())
    wire.received()
    ws.connectionLost(Failure(ConnectionDone()))
    assert site.gateway.customer.calls[-1] == ("disconnected",)
    # What the core says meanwhile goes nowhere, and breaks nothing.
    ws.send({"type": "ping", "id": "late"})
    assert wire.take() == b""


def test_frames_as_the_widget_sends_them_are_whole_messages():
    wire = Site().connect()
    wire.open()
    wire.send(hello_customer())
    wire.received()
    data = client_frame(json.dumps({"type": "ping", "id": "split"}).encode())
    for byte in data:
        wire.ws.dataReceived(bytes([byte]))
    assert wire.received() == [{"type": "pong", "id": "split"}]
    assert isinstance(wire.ws, WebChatProtocol)
    assert TEXT == 1


def test_request_headers_must_arrive_in_time():
    site = Site(WebSettings(handshake_timeout_s=5, http_timeout_s=30))
    slow = site.connect()
    slow.http(b"GET /widget.css HTTP/1.1\r\nHost: gw")
    site.clock.advance(4)
    slow.channel.dataReceived(b".example")  # each byte restarts the idle timeout, not this
    site.clock.advance(1)
    assert slow.take().startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert slow.transport.disconnecting
    # A keep-alive connection's next request has a deadline of its own.
    wire = site.connect()
    assert get(wire, "/widget.css")[0] == 200
    site.clock.advance(4)
    assert get(wire, "/widget.css")[0] == 200
    site.clock.advance(4.9)
    assert not wire.transport.disconnecting
    site.clock.advance(0.1)
    assert wire.take().startswith(b"HTTP/1.1 408 ")


def test_a_websocket_outlives_the_request_deadline():
    site = Site(
        WebSettings(allowed_origins=(SHOP,), handshake_timeout_s=5, http_timeout_s=30),
        JsonImSettings(heartbeat_s=86400),
    )
    wire = site.connect()
    wire.open()
    wire.send(hello_customer())
    site.clock.advance(3600)
    wire.send({"type": "ping", "id": "late"})
    assert [f["type"] for f in wire.received()] == ["welcome", "pong"]
