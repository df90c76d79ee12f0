"""The routing server's HTTP/JSON API, rendered on DummyRequests (no sockets)."""

from __future__ import annotations

import json
from io import BytesIO

import pytest
from twisted.web.test.requesthelper import DummyRequest

from gateway.routerd.api import BoundedRequest, RouterApi, request_factory
from gateway.routerd.rulebook import RuleBook
from gateway.routing.wire import plan_from_json

TOKEN = "s3cret-token-0123456789"
MAX_BODY = 1024

RULES = """\
[[rules]]
name = "{name}"
priority = 7

[rules.match]
topic = "billing"

[[rules.targets]]
queue = "general"
skills = {{ billing = 3 }}
strategy = "highest_skill"
timeout_s = 30

[[rules.targets]]
strategy = "broadcast"
broadcast = 3

[default]
[[default.targets]]
strategy = "longest_idle"
"""


@pytest.fixture
def rules_file(tmp_path):
    path = tmp_path / "chat.toml"
    path.write_text(RULES.format(name="billing"))
    return path


@pytest.fixture
def book(rules_file):
    book = RuleBook(media={"chat": rules_file, "email": None}, queues=["general"])
    book.load()
    return book


@pytest.fixture
def api(book):
    def reload() -> int:
        book.load()
        return book.generation

    return RouterApi(book, token=TOKEN, max_body=MAX_BODY, reload=reload)


def request(
    path: str, method: bytes = b"POST", body: bytes | None = None, token: str | None = TOKEN
) -> DummyRequest:
    req = DummyRequest(path.strip("/").encode().split(b"/"))
    req.method = method
    req.content = BytesIO(body or b"")
    if token is not None:
        req.requestHeaders.setRawHeaders(b"authorization", [f"Bearer {token}".encode()])
    return req


def render(api: RouterApi, req: DummyRequest) -> tuple[int, dict]:
    body = api.render(req)
    assert req.responseHeaders.getRawHeaders(b"content-type") == [b"application/json"]
    return req.responseCode, json.loads(body)


def classify_body(media="chat", **attributes) -> bytes:
    return json.dumps({"media": media, "attributes": attributes}).encode()


def test_classify_returns_the_plan_with_source_remote(api):
    code, reply = render(api, request("/v1/classify", body=classify_body(topic="billing")))
    assert code == 200
    assert reply["source"] == "remote"
    assert reply["rule"] == "billing"
    assert reply["priority"] == 7
    first, second = reply["targets"]
    assert first == {
        "queue": "general",
        "skills": {"billing": 3},
        "location": None,
        "protocols": [],
        "agents": [],
        "bots": None,
        "strategy": "highest_skill",
        "timeout_s": 30.0,
        "broadcast": 1,
    }
    assert (second["strategy"], second["broadcast"]) == ("broadcast", 3)
    assert {"service", "requires", "compatibility", "fallback", "reason"} <= reply.keys()
    # The gateway's client parses exactly what the server renders.
    assert plan_from_json(reply).rule == "billing"


def test_classify_other_attributes_get_the_default_rule(api):
    code, reply = render(api, request("/v1/classify", body=classify_body(topic="tech")))
    assert (code, reply["rule"]) == (200, "default")


def test_each_media_has_its_own_rules(api):
    code, reply = render(api, request("/v1/classify", body=classify_body("email", topic="billing")))
    # email uses the packaged default rules, which have no billing rule.
    assert (code, reply["rule"]) == (200, "default")


@pytest.mark.parametrize(
    "token", [None, "", "wrong-token-0123456789", TOKEN + "x", TOKEN[:-1], "Basic " + TOKEN]
)
def test_classify_without_the_right_token_is_401(api, token):
    req = request("/v1/classify", body=classify_body(topic="billing"), token=token)
    code, reply = render(api, req)
    assert code == 401
    assert "token" in reply["error"]
    assert req.responseHeaders.getRawHeaders(b"www-authenticate") == [b'Bearer realm="imrouter"']


def test_the_scheme_is_case_insensitive(api):
    req = request("/v1/classify", body=classify_body(topic="billing"), token=None)
    req.requestHeaders.setRawHeaders(b"authorization", [f"bearer {TOKEN}".encode()])
    assert render(api, req)[0] == 200


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[" * 500 + b"]" * 500, "must be an object"),
        (b"[]", "body: must be an object"),
        (b'{"attributes": {}}', "body.media: missing"),
        (b'{"media": 3, "attributes": {}}', "body.media: has the wrong type int"),
        (b'{"media": "chat"}', "body.attributes: missing"),
        (b'{"media": "chat", "attributes": {"topic": 1}}', "attributes.topic: must be a string"),
        (b'{"media": "chat", "attributes": []}', "body.attributes: has the wrong type list"),
    ],
)
def test_bad_bodies_are_400_with_a_json_error(api, body, problem):
    code, reply = render(api, request("/v1/classify", body=body))
    assert code == 400
    assert problem in reply["error"]


def test_unknown_fields_are_ignored(api):
    body = json.dumps({"media": "chat", "attributes": {}, "later": 1}).encode()
    assert render(api, request("/v1/classify", body=body))[0] == 200


def test_unknown_media_is_404(api):
    code, reply = render(api, request("/v1/classify", body=classify_body("fax")))
    assert code == 404
    assert reply == {"error": "unknown media 'fax'"}


def test_a_body_over_the_limit_is_413(api):
    body = classify_body(topic="x" * MAX_BODY)
    code, reply = render(api, request("/v1/classify", body=body))
    assert code == 413
    assert str(MAX_BODY) in reply["error"]


def test_the_request_class_keeps_no_more_than_the_limit():
    cls = request_factory(100)
    assert issubclass(cls, BoundedRequest) and cls.max_body == 100
    req = cls.__new__(cls)  # only the body-staging methods are exercised
    req.content = None
    req.gotLength(None)
    req.handleContentChunk(b"x" * 60)
    assert not req.body_too_large
    req.handleContentChunk(b"x" * 60)
    assert req.body_too_large
    req.content.seek(0)
    assert req.content.read() == b"x" * 60

    declared = cls.__new__(cls)
    declared.gotLength(10_000_000)
    assert declared.body_too_large


def test_the_api_answers_413_for_an_oversize_request_whatever_its_content(api):
    req = request("/v1/classify", body=classify_body(topic="billing"))
    req.body_too_large = True
    assert render(api, req)[0] == 413


def test_health_needs_no_token_and_names_the_rules(api, rules_file):
    code, reply = render(api, request("/v1/health", method=b"GET", token=None))
    assert code == 200
    assert reply == {
        "status": "ok",
        "media": ["chat", "email"],
        "rules": {"chat": str(rules_file), "email": "packaged defaults"},
        "generation": 1,
    }


def test_reload_swaps_the_rules(api, rules_file):
    rules_file.write_text(RULES.format(name="billing-v2"))
    code, reply = render(api, request("/v1/reload"))
    assert code == 200
    assert reply["status"] == "reloaded" and reply["generation"] == 2
    code, plan = render(api, request("/v1/classify", body=classify_body(topic="billing")))
    assert plan["rule"] == "billing-v2"


def test_a_bad_rules_file_is_422_and_the_old_rules_stay(api, rules_file):
    rules_file.write_text("[[rules]]\nname = 3\n")
    code, reply = render(api, request("/v1/reload"))
    assert code == 422
    assert reply["error"].startswith(f"{rules_file}: ")
    assert "\n" not in reply["error"]
    code, plan = render(api, request("/v1/classify", body=classify_body(topic="billing")))
    assert (code, plan["rule"]) == (200, "billing")
    assert render(api, request("/v1/health", method=b"GET"))[1]["generation"] == 1


def test_reload_needs_the_token(api):
    assert render(api, request("/v1/reload", token="nope-nope-nope-nope"))[0] == 401


@pytest.mark.parametrize(
    ("path", "method", "code", "allow"),
    [
        ("/v1/classify", b"GET", 405, b"POST"),
        ("/v1/health", b"POST", 405, b"GET"),
        ("/v1/reload", b"GET", 405, b"POST"),
        ("/v1/nothing", b"GET", 404, None),
        ("/v2/classify", b"POST", 404, None),
        ("/", b"GET", 404, None),
    ],
)
def test_other_paths_and_methods(api, path, method, code, allow):
    req = request(path, method=method)
    assert render(api, req)[0] == code
    assert req.responseHeaders.getRawHeaders(b"allow") == ([allow] if allow else None)


def test_a_failing_rule_set_is_500_in_json(book, api):
    class Broken:
        source = "broken"

        def classify(self, customer):
            raise RuntimeError("boom")

    book.rules = {"chat": Broken()}
    code, reply = render(api, request("/v1/classify", body=classify_body(topic="billing")))
    assert code == 500
    assert "boom" not in reply["error"]


def test_deeply_nested_json_is_400_not_a_crash(book):
    api = RouterApi(book, token=TOKEN, max_body=65536, reload=lambda: 0)
    body = b"[" * 30000 + b"]" * 30000
    code, reply = render(api, request("/v1/classify", body=body))
    assert (code, reply) == (400, {"error": "the body is not valid JSON"})
