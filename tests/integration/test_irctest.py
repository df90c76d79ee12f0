"""irctest's server cases (``irctest.server_tests``, the PyPI release tests/run installs)
against the installed gateway's IRC listener, through :mod:`irctest_controller`.

Every case irctest has is either run here (and must pass) or listed in
:data:`NOT_SUPPORTED` with the reason, as docs/irc.md says: the listener is a doorway to
customer service, not a general chat server. Cases are chosen as irctest's own runner
chooses them, by unittest name, with every specification enabled.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "irctest_controller.py"

# irctest waits without a deadline where a server does not answer; this bounds a case.
CASE_TIMEOUT_S = 90

_P = "irctest.server_tests."
RUN = [
    f"{_P}test_cap.CapTestCase.testNakExactString",
    f"{_P}test_cap.CapTestCase.testNakWhole",
    f"{_P}test_cap.CapTestCase.testNoReq",
    f"{_P}test_cap.CapTestCase.testReqUnavailable",
    f"{_P}test_connection_registration.ConnectionRegistrationTestCase.testEarlyNickCollision",
    f"{_P}test_connection_registration.ConnectionRegistrationTestCase.testEmptyCapList",
    f"{_P}test_connection_registration.ConnectionRegistrationTestCase.testIrc301CapLs",
    f"{_P}test_connection_registration.ConnectionRegistrationTestCase.testNickCollision",
    f"{_P}test_connection_registration.ConnectionRegistrationTestCase.testQuitDisconnects",
    f"{_P}test_connection_registration.ConnectionRegistrationTestCase.testQuitErrors",
    f"{_P}test_connection_registration.PasswordedConnectionRegistrationTestCase.testNoPassword",
    f"{_P}test_connection_registration.PasswordedConnectionRegistrationTestCase"
    ".testPassAfterNickuser",
    f"{_P}test_connection_registration.PasswordedConnectionRegistrationTestCase"
    ".testPassBeforeNickuser",
    f"{_P}test_messages.NoticeTestCase.testNoticeNonexistentChannel",
    f"{_P}test_messages.PrivmsgTestCase.testPrivmsgNonexistentChannel",
    f"{_P}test_sasl.RegistrationTestCase.testRegistration",
    f"{_P}test_sasl.SaslTestCase.testPlain",
    f"{_P}test_sasl.SaslTestCase.testPlainLarge",
    f"{_P}test_sasl.SaslTestCase.testPlainLargeEquals400",
    f"{_P}test_sasl.SaslTestCase.testPlainNoAuthzid",
]

# Case-name prefixes not run, and why (docs/irc.md, "What the listener does not do").
NOT_SUPPORTED = {
    f"{_P}test_messages.PrivmsgTestCase.testPrivmsg": "users messaging each other in a channel",
    f"{_P}test_messages.NoticeTestCase.testNotice": "users messaging each other in a channel",
    f"{_P}test_channel_operations.": "general channels (only the lobby and the agents' channel)",
    f"{_P}test_multi_prefix.": "channel modes such as +v (the only prefix is the service's @)",
    f"{_P}test_echo_message.": "the echo-message capability",
    f"{_P}test_extended_join.": "the extended-join capability and accounts for customers",
    f"{_P}test_account_tag.": "the account-tag capability and accounts for customers",
    f"{_P}test_metadata.": "the metadata extension",
    f"{_P}test_monitor.": "MONITOR (customers see no other users)",
    f"{_P}test_starttls.": "STARTTLS (TLS is a listener of its own: an ssl: endpoint)",
    f"{_P}test_sasl.SaslTestCase.testMechanismNotAvailable": (
        "irctest 0.1.2 wants 904 first; the listener sends 908 (the mechanisms) before 904,"
        " as IRCv3.1 SASL allows"
    ),
}


def _runner(*args: str, timeout: float) -> subprocess.CompletedProcess:
    # Its own process (see irctest_controller.py); the helpers beside this file on its path.
    env = dict(os.environ, PYTHONPATH=str(HERE))
    return subprocess.run(
        [sys.executable, str(RUNNER), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=HERE,
        stdin=subprocess.DEVNULL,
    )


def _all_cases() -> list[str]:
    listing = _runner("--list", timeout=60)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    return sorted(listing.stdout.split())


def _names(entry: str, case: str) -> bool:
    """A NOT_SUPPORTED entry names a case itself, or (ending with a dot) its module."""
    return case == entry or (entry.endswith(".") and case.startswith(entry))


def test_every_irctest_server_case_is_run_or_listed_as_not_supported():
    cases = _all_cases()
    listed = [c for c in cases if any(_names(p, c) for p in NOT_SUPPORTED)]
    assert sorted(set(cases) - set(listed)) == sorted(RUN)
    assert not set(RUN) & set(listed)


@pytest.mark.parametrize("case", RUN, ids=[c.removeprefix(_P) for c in RUN])
def test_irctest_case(case):
    try:
        run = _runner(case, timeout=CASE_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        output = f"{e.stdout}\n{e.stderr}"
        raise AssertionError(f"{case} ran over {CASE_TIMEOUT_S}s:\n{output}") from None
    status = {0: "passed", 1: "failed", 2: "was skipped"}.get(run.returncode, "crashed")
    assert run.returncode == 0, f"{case} {status}:\n{run.stdout}\n{run.stderr[-4000:]}"
