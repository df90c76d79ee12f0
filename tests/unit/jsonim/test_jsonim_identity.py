"""A site-signed identity in a customer's hello (protocols.jsonim.identity)."""

from __future__ import annotations

from jsonim_helpers import CUSTOMER_HELLO, FakeGateway, connect

from protocols.jsonim.identity import canonical, sign
from protocols.jsonim.settings import JsonImSettings

SECRET = "site-secret-0123456789"
IDENTITY = {"name": "Vera", "tier": "vip"}


def hello(**extra):
    return {**CUSTOMER_HELLO, "identity": IDENTITY, **extra}


def test_the_signed_bytes_are_the_sorted_compact_json():
    assert canonical({"tier": "vip", "name": "Véra"}) == '{"name":"Véra","tier":"vip"}'.encode()
    assert sign(IDENTITY, SECRET) == sign(dict(reversed(IDENTITY.items())), SECRET)


def test_a_matching_signature_makes_the_identity_verified():
    gateway = FakeGateway()
    conn = connect(gateway, JsonImSettings(identity_secret=SECRET))
    conn.send(hello(identity_signature=sign(IDENTITY, SECRET).upper()))
    assert conn.received()[0]["type"] == "welcome"
    [arrival] = gateway.arrivals
    assert arrival["verified"] == IDENTITY
    assert arrival["answers"] == IDENTITY


def test_without_a_signature_the_identity_is_a_claim():
    gateway = FakeGateway()
    conn = connect(gateway, JsonImSettings(identity_secret=SECRET))
    conn.send(hello())
    assert conn.received()[0]["type"] == "welcome"
    assert "verified" not in gateway.arrivals[0]


def test_a_wrong_signature_is_refused():
    for config, problem in (
        (JsonImSettings(identity_secret=SECRET), "identity_signature does not match the identity"),
        (JsonImSettings(), "this server verifies no identity_signature"),
    ):
        gateway = FakeGateway()
        conn = connect(gateway, config)
        forged = sign({**IDENTITY, "tier": "gold"}, SECRET)
        conn.send(hello(identity_signature=forged))
        [error] = conn.received()
        assert (error["type"], error["code"], error["text"]) == ("error", "bad_request", problem)
        assert gateway.arrivals == []
