"""Brute force on agent logins: failures lock out an address or account, doubling."""

from __future__ import annotations

import pytest
from core_helpers import FakeParty, make_harness, result_of, verify
from twisted.internet.task import Clock

from gateway.core import events as ev
from gateway.core.errors import AuthFailed
from gateway.core.throttle import MAX_KEYS, LoginThrottle


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
