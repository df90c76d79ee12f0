"""irctest's server cases (``irctest.server_tests``, the PyPI release tests/run installs)
against the installed gateway's IRC listener, through :mod:`irctest_controller`.

Every case irctest has is either run here (and must pass) or listed in
:data:`NOT_SUPPORTED` with the reason, as docs/irc.md says: the listener is a doorway to
customer service, not a general chat server. Cases are chosen as irctest's own runner
chooses them, by unittest name, with every specification enabled.
"""

from __future__ import annotations

import importlib
import io
import pkgutil
import signal
import unittest

import irctest.server_tests
import irctest_controller
import pytest
from irctest.cases import _IrcTestCase
from irctest.specifications import Specifications

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


def _all_cases() -> list[str]:
    loader = unittest.TestLoader()
    found: list[str] = []

    def walk(suite):
        for test in suite:
            if isinstance(test, unittest.TestSuite):
                walk(test)
            else:
                found.append(test.id())

    for info in pkgutil.iter_modules(irctest.server_tests.__path__):
        walk(loader.loadTestsFromModule(importlib.import_module(_P + info.name)))
    return sorted(found)


def _names(entry: str, case: str) -> bool:
    """A NOT_SUPPORTED entry names a case itself, or (ending with a dot) its module."""
    return case == entry or (entry.endswith(".") and case.startswith(entry))


def test_every_irctest_server_case_is_run_or_listed_as_not_supported():
    cases = _all_cases()
    listed = [c for c in cases if any(_names(p, c) for p in NOT_SUPPORTED)]
    assert sorted(set(cases) - set(listed)) == sorted(RUN)
    assert not set(RUN) & set(listed)


@pytest.fixture
def irctest_setup():
    _IrcTestCase.controllerClass = irctest_controller.GatewayController
    _IrcTestCase.show_io = False
    _IrcTestCase.strictTests = True
    _IrcTestCase.testedSpecifications = frozenset(Specifications)

    def timed_out(signum, frame):
        raise TimeoutError(f"an irctest case ran over {CASE_TIMEOUT_S}s")

    previous = signal.signal(signal.SIGALRM, timed_out)
    signal.alarm(CASE_TIMEOUT_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("case", RUN, ids=[c.removeprefix(_P) for c in RUN])
def test_irctest_case(irctest_setup, case):
    suite = unittest.TestLoader().loadTestsFromName(case)
    out = io.StringIO()
    result = unittest.TextTestRunner(stream=out, verbosity=2).run(suite)
    assert result.testsRun == 1, out.getvalue()
    assert not result.skipped, out.getvalue()
    assert result.wasSuccessful(), out.getvalue()
