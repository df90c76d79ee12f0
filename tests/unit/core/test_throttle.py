"""Brute force on agent logins: failures lock out an address or account, doubling."""

from __future__ import annotations

import pytest
from core_helpers import FakeParty, make_harness, result_of, verify
from twisted.internet.task import Clock

from gateway.core import events as ev
from gateway.core.errors import AuthFailed
from gateway.core.throttle import KNOWN_PLACES, MAX_KEYS, LoginGuard, LoginThrottle, address_key


def test_lockouts_double_and_failures_are_forgotten():
    clock = Clock()
    throttle = LoginThrottle(clock, free=2, max_lockout_s=5, window_s=60)
    for _ in range(2):
        throttle.failed("address:198.51.100.7")
    assert throttle.blocked_for("address:198.51.100.7") == 0
    expected = [1, 2, 4, 5, 5]  # capped at max_lockout_s
    for lockout in expected:
        throttle.failed("address:198.51.100.7")
        assert throttle.blocked_for("address:198.51.100.7") == lockout
    clock.advance(5)
    assert throttle.blocked_for("address:198.51.100.7") == 0
    clock.advance(61)
    throttle.failed("address:198.51.100.7")  # the window passed: counting starts over
    assert throttle.blocked_for("address:198.51.100.7") == 0
    throttle.succeeded("address:198.51.100.7")
    assert throttle.blocked_for("address:198.51.100.7") == 0


def test_memory_is_bounded():
    throttle = LoginThrottle(Clock(), free=1)
    for i in range(MAX_KEYS + 10):
        throttle.failed(f"address:{i}")
    assert len(throttle._records) == MAX_KEYS
    assert throttle.blocked_for("address:0") == 0  # the oldest were forgotten


def login(h, password, address="198.51.100.7", name="anna"):
    return h.gateway.agent_login(
        FakeParty(),
        protocol="jsonim",
        name=name,
        password=password,
        client=ev.ClientInfo(),
        address=address,
    )


def test_gateway_refuses_without_a_password_check_while_locked_out():
    checks = []

    def counting_verify(password, stored):
        checks.append(password)
        return verify(password, stored)

    h = make_harness(login_failures_free=3)
    h.gateway._verify = counting_verify
    for _ in range(3):
        with pytest.raises(AuthFailed, match="authentication failed"):
            result_of(login(h, "guess"))
    with pytest.raises(AuthFailed, match="authentication failed"):
        result_of(login(h, "guess"))  # the 4th failure locks the address for 1 s
    with pytest.raises(AuthFailed, match="too many failed logins; try again in 1 s"):
        result_of(login(h, "secret"))
    assert checks == ["guess"] * 4
    # Another address may still log in to the account (it is not locked yet) ...
    assert result_of(login(h, "secret", address="192.0.2.1")).name == "anna"
    h.clock.advance(1)
    # ... and after the lockout the right password works from the first one too.
    assert result_of(login(h, "secret")).name == "anna"


def test_an_account_locks_after_four_times_as_many_failures():
    h = make_harness(login_failures_free=2)
    for i in range(8):  # from eight addresses: none of them is locked out
        with pytest.raises(AuthFailed, match="authentication failed"):
            result_of(login(h, "guess", address=f"198.51.100.{i}"))
    with pytest.raises(AuthFailed, match="authentication failed"):
        result_of(login(h, "guess", address="198.51.100.9"))
    with pytest.raises(AuthFailed, match="too many failed logins"):
        result_of(login(h, "secret", address="192.0.2.1"))


def test_addresses_are_keyed_in_one_form_and_ipv6_per_64():
    assert address_key("::ffff:198.51.100.7") == "198.51.100.7"
    assert address_key("2001:DB8:5:6::1") == address_key("2001:db8:5:6:ffff::9")
    assert address_key("2001:db8:5:6::1") == "2001:db8:5:6::/64"
    assert address_key("2001:db8:5:7::1") != address_key("2001:db8:5:6::1")
    assert address_key(None) is None


def test_guessing_spread_over_addresses_locks_new_places_but_not_a_known_one():
    guard = LoginGuard(Clock(), free=2)
    guard.succeeded("anna", "203.0.113.10")
    for i in range(9):
        guard.failed("anna", f"198.51.100.{i}")
    assert guard.blocked_for("anna", "198.51.100.99") == 1
    assert guard.blocked_for("anna", "203.0.113.10") == 0
    # The agent's own login does not reopen guessing from elsewhere.
    guard.succeeded("anna", "203.0.113.10")
    assert guard.blocked_for("anna", "198.51.100.99") == 1


def test_guessing_at_a_known_place_is_slowed_for_that_account_there():
    guard = LoginGuard(Clock(), free=2)
    guard.succeeded("anna", "203.0.113.10")
    for _ in range(3):
        guard.failed("anna", "203.0.113.10")
    assert guard.blocked_for("anna", "203.0.113.10") == 1
    assert guard.blocked_for("bob", "203.0.113.10") == 1  # the address, for others


def test_a_login_forgives_only_its_own_accounts_failures_at_an_address():
    guard = LoginGuard(Clock(), free=2)
    guard.failed("bob", "198.51.100.50")
    guard.failed("bob", "198.51.100.50")
    guard.failed("anna", "198.51.100.50")
    assert guard.blocked_for("carol", "198.51.100.50") == 1
    guard.succeeded("mallory", "198.51.100.50")
    assert guard.blocked_for("carol", "198.51.100.50") == 1
    guard.succeeded("anna", "198.51.100.50")  # anna's one typo forgiven: two left, free
    assert guard.blocked_for("carol", "198.51.100.50") == 0


def test_known_places_are_bounded_and_expire():
    clock = Clock()
    guard = LoginGuard(clock, free=1, known_for_s=100)
    for i in range(KNOWN_PLACES + 1):
        guard.succeeded("anna", f"192.0.2.{i}")
    assert not guard.known("anna", "192.0.2.0")
    assert guard.known("anna", f"192.0.2.{KNOWN_PLACES}")
    clock.advance(100)
    assert not guard.known("anna", f"192.0.2.{KNOWN_PLACES}")


def test_logins_an_adapter_checks_itself_meet_the_same_lockouts():
    # SCRAM (XMPP): the adapter asks for the keys and verifies the proof itself; its
    # failures count, a lockout refuses the keys, and its success makes a known place.
    h = make_harness(login_failures_free=2)
    for _ in range(3):
        h.gateway.agent_login_failed("xmpp", "anna", "198.51.100.7")
    with pytest.raises(AuthFailed, match="too many failed logins; try again in 1 s"):
        result_of(h.gateway.agent_credentials("anna", protocol="xmpp", address="198.51.100.7"))
    with pytest.raises(AuthFailed, match="too many failed logins"):
        result_of(login(h, "secret"))  # the password path sees the SCRAM failures
    assert result_of(h.gateway.agent_credentials("anna", address="192.0.2.1")) is None
    session = result_of(
        h.gateway.agent_authenticated(
            FakeParty(), protocol="xmpp", name="anna", client=ev.ClientInfo(), address="192.0.2.1"
        )
    )
    assert session.name == "anna"
    assert h.gateway._logins.known("anna", "192.0.2.1")
