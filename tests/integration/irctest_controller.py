"""An irctest controller for the gateway's IRC listener (irctest's ``BaseServerController``),
and the runner test_irctest.py starts once per case: ``python irctest_controller.py
CASE`` runs one irctest case against the gateway; ``--list`` prints every case irctest
has. A process of its own, because irctest imports limnoria, whose i18n module changes
string formatting for the whole process (Twisted's log formatting among it).

irctest starts the server under test once per case, on a port it picked, through a
controller like this one (its own ``irctest/controllers/`` has one per server): here,
the installed gateway as a real ``twistd imgateway`` process with one IRC listener on
that port, the case's server password if it has one, and pacing loose enough for a
test client that sends lines back to back (as irctest's controllers configure the
servers they run).
"""

from __future__ import annotations

import importlib
import io
import pkgutil
import socket
import sys
import tempfile
import time
import unittest
from pathlib import Path

import harness
from irc_peers import write_config
from irctest.basecontrollers import BaseServerController, NotImplementedByController

PORT_TIMEOUT = 20.0

IRC_SETTINGS = """lines_per_second = 1000.0
line_burst = 1000
max_lagged_lines = 1000
registration_timeout_s = 60
allow_plaintext_auth = true
"""


class GatewayController(BaseServerController):
    """Runs the installed gateway with its IRC listener on the port irctest chose."""

    software_name = "imgateway"
    # SASL is how agents log in. irctest's client has no TLS, so the controller lets
    # agents log in over plain TCP (irc.allow_plaintext_auth), on loopback only.
    supported_sasl_mechanisms: frozenset[str] = frozenset({"PLAIN"})

    def __init__(self) -> None:
        super().__init__()
        self.gateway: harness.Gateway | None = None
        self.port: int | None = None
        self._directory: tempfile.TemporaryDirectory | None = None

    def run(
        self,
        hostname: str,
        port: int,
        password: str | None = None,
        valid_metadata_keys=frozenset(),
        invalid_metadata_keys=frozenset(),
        ssl: bool = False,
        **_: object,
    ) -> None:
        """Write a site file for this case and start the gateway."""
        if ssl:
            raise NotImplementedByController("TLS on irctest's port (use an ssl: endpoint)")
        if valid_metadata_keys or invalid_metadata_keys:
            raise NotImplementedByController("metadata")
        self._directory = tempfile.TemporaryDirectory(prefix="irctest-imgateway-")
        root = Path(self._directory.name)
        irc = IRC_SETTINGS + (f'password = "{password}"\n' if password else "")
        config = write_config(root, listeners=[f"tcp:{port}:interface=127.0.0.1"], irc=irc)
        self.port = port
        self.config = config
        self.gateway = harness.start_gateway(root / "cwd", config, "irctest-gateway")

    def wait_for_port(self) -> None:
        """Wait until the IRC listener accepts connections (bounded)."""
        deadline = time.monotonic() + PORT_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the IRC listener is not up on {self.port}") from None
                self.gateway.wait_for_log(r"irc listener .* listening on", 1)

    def registerUser(self, case, username, password=None):  # noqa: N802 (irctest's name)
        """An account is an agent, provisioned with imgateway-admin."""
        if password is None:
            raise NotImplementedByController("accounts without a password")
        harness.add_agent(self.config, username, password, username.capitalize())

    def kill(self) -> None:
        """Stop the gateway and remove its files."""
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None


def get_irctest_controller_class() -> type[GatewayController]:
    """What irctest's runner asks a controller module for."""
    return GatewayController


def all_cases() -> list[str]:
    """Every server case irctest has, by unittest name."""
    import irctest.server_tests

    loader = unittest.TestLoader()
    found: list[str] = []

    def walk(suite):
        for test in suite:
            if isinstance(test, unittest.TestSuite):
                walk(test)
            else:
                found.append(test.id())

    for info in pkgutil.iter_modules(irctest.server_tests.__path__):
        module = importlib.import_module(f"irctest.server_tests.{info.name}")
        walk(loader.loadTestsFromModule(module))
    return sorted(found)


def run_case(case: str) -> int:
    """Run one case as irctest's runner would, every specification enabled: 0 if it
    passed, 1 if it failed, 2 if it was skipped."""
    from irctest.cases import _IrcTestCase
    from irctest.specifications import Specifications

    _IrcTestCase.controllerClass = GatewayController
    _IrcTestCase.show_io = False
    _IrcTestCase.strictTests = True
    _IrcTestCase.testedSpecifications = frozenset(Specifications)
    out = io.StringIO()
    suite = unittest.TestLoader().loadTestsFromName(case)
    result = unittest.TextTestRunner(stream=out, verbosity=2).run(suite)
    print(out.getvalue())
    if result.testsRun != 1 or not result.wasSuccessful():
        return 1
    return 2 if result.skipped else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--list"]:
        print("\n".join(all_cases()))
        sys.exit(0)
    sys.exit(run_case(sys.argv[1]))
