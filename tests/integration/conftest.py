"""Integration tests: the installed gateway as real processes on loopback sockets.

The helper modules beside this file (``jsonim_client``, ``harness``) are imported by
name; tests/conftest.py puts this directory on ``sys.path``.
"""

from __future__ import annotations

import harness
import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test's report shows the log of every gateway still running."""
    report = yield
    if report.failed:
        for gateway in harness.RUNNING:
            report.sections.append((f"log of {gateway.name}", gateway.log_tail()))
    return report
