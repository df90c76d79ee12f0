"""A private PostgreSQL cluster for the tests, from Debian's ``postgresql`` package.

:class:`PgServer` runs ``initdb`` and ``pg_ctl`` on a temporary data directory with
its unix socket in that directory and its TCP port on 127.0.0.1, chosen free. When
the tests run as root the cluster runs as the ``postgres`` system user (PostgreSQL
refuses to run as root). Every wait is bounded; anything that goes wrong raises
:class:`PgServerError` with what the tools said, never a skip.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

START_TIMEOUT_S = 60
_databases = itertools.count(1)


class PgServerError(Exception):
    """The test cluster could not be created or started."""


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return Path(pg_ctl).parent
    raise PgServerError(
        "PostgreSQL is not installed (no pg_ctl): install Debian's postgresql package"
        " (./tests/run does)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """One throw-away cluster; :meth:`start`, :meth:`new_database`, :meth:`stop`."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="imgateway-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._user: list[str] = []
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise PgServerError("running as root and there is no postgres user") from None
            shutil.chown(self.dir, "postgres", "postgres")
            self._user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *command: str, timeout: float = START_TIMEOUT_S) -> None:
        try:
            done = subprocess.run(
                [*self._user, *command],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise PgServerError(f"{command[0]} took over {timeout}s") from None
        if done.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise PgServerError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}{log}"
            )

    def start(self) -> None:
        """initdb and start the cluster; raises :class:`PgServerError`."""
        self._run(
            str(self.bin / "initdb"),
            "-D", str(self.data),
            "-U", "postgres",
            "-A", "trust",
            "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip
        options = (
            f"-k {self.dir} -p {self.port} -c listen_addresses=127.0.0.1"
            # Throw-away data: no fsync, so the tests do not wait on the disk.
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D", str(self.data),
            "-l", str(self.log),
            "-o", options,
            "-w", "-t", str(START_TIMEOUT_S),
            "start",
        )  # fmt: skip

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string for one database of the cluster."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def new_database(self) -> str:
        """Create an empty database; its DSN."""
        import psycopg

        name = f"t{os.getpid()}_{next(_databases)}"
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def halt(self) -> None:
        """Stop the server (fast shutdown), keeping its files, to :meth:`resume` later."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                  "-w", "-t", "30", "stop")  # fmt: skip

    def resume(self) -> None:
        """Start a halted server again on the same port."""
        options = (
            f"-k {self.dir} -p {self.port} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-o", options, "-w", "-t", str(START_TIMEOUT_S), "start")  # fmt: skip

    def stop(self) -> None:
        """Stop the cluster (fast shutdown) and remove its files."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                          "-w", "-t", "30", "stop")  # fmt: skip
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
