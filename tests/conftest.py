"""Session fixtures shared by the unit and integration tests: the PostgreSQL test cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings
from pg_server import PgServer, PgServerError

# Properties assert behaviour, not speed: on a loaded shared host a first example can
# take far over hypothesis' 200 ms deadline (speed is measured in bench/).
settings.register_profile("imgateway", deadline=None)
settings.load_profile("imgateway")


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
