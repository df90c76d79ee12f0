"""Session fixtures shared by the unit and integration tests: the PostgreSQL test cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pg_server import PgServer, PgServerError


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A private PostgreSQL cluster, started on first use and stopped at the end.

    Fails (never skips) the tests that need it when it cannot be started.
    """
    try:
        server = PgServer()
        server.start()
    except PgServerError as e:
        pytest.fail(f"cannot start the PostgreSQL test cluster: {e}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
