"""The store's seams: the core sees interfaces, errors and records, never an engine."""

from __future__ import annotations

import json
import subprocess
import sys


def _modules_after(statement: str) -> set[str]:
    """The gateway.store modules and drivers a fresh interpreter has after ``statement``."""
    code = (
        f"import json, sys\n{statement}\n"
        "print(json.dumps(sorted(m for m in sys.modules"
        " if m.startswith('gateway.store') or m in ('sqlite3', 'psycopg'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(done.stdout))


def test_the_core_imports_no_engine() -> None:
    assert _modules_after("import gateway.core.gateway") == {
        "gateway.store",
        "gateway.store.errors",
        "gateway.store.interfaces",
        "gateway.store.records",
    }


def test_a_sqlite_site_loads_no_postgresql_driver() -> None:
    loaded = _modules_after(
        "from gateway.config import load\n"
        "from gateway.store import open_store\n"
        "from twisted.internet.testing import MemoryReactor\n"
        "import tempfile, pathlib\n"
        "d = pathlib.Path(tempfile.mkdtemp()); (d / 'site.toml').write_text('')\n"
        "open_store(load(d / 'site.toml', cwd=d), MemoryReactor())"
    )
    assert {"gateway.store.writer", "gateway.store.sqlite", "sqlite3"} <= loaded
    assert not loaded & {"gateway.store.postgres", "psycopg"}
