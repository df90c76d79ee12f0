"""What outlives a restart: the rules file (``fw save``, ``--persist``) and the bans.

Files are written whole to a temporary file beside the target and renamed over it, so a
crash leaves the old file or the new one, never half of one; a rules file keeps its mode.
The bans file holds one ban a line, ``ADDRESS-OR-NETWORK EXPIRY`` (Unix time, or ``-``
for a ban until lifted); it is written a moment after bans change (many changes at once
make one write) and read at start, skipping the bans that expired meanwhile.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from firewall.addrset import AddressError
from firewall.common import log_observer

BANS_HEADER = "# imgateway firewall bans: ADDRESS-OR-NETWORK EXPIRY (Unix time, or - for ever)\n"
# Seconds between a change of the bans and its write (changes meanwhile share it).
BANS_DELAY_S = 1.0


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename, keeping its mode (0600 if new)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o600
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        data = text.encode("utf-8")
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _write_bans(path: Path, text: str) -> None:
    # The data directory may not exist yet (a PostgreSQL store makes no files there).
    Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomically(path, text)


class BanStore:
    """Keeps the firewall's bans in ``path`` across restarts (see the module)."""

    _log = Logger(observer=log_observer)

    def __init__(
        self,
        firewall: Any,
        path: Path,
        clock: Any,
        run: Callable[..., Deferred] = maybeDeferred,
    ) -> None:
        # ``run(function, *args)`` writes: the gateway gives its thread pool's runner.
        self._fw, self.path, self._clock, self._run = firewall, Path(path), clock, run
        self._pending: IDelayedCall | None = None
        firewall.on_bans_changed.append(self.changed)

    def load(self) -> int:
        """Read the bans file (if any) into the firewall; how many bans were restored."""
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return 0
        except (OSError, UnicodeDecodeError) as e:
            self._log.error(
                "firewall bans not restored from {path}: {error}", path=str(self.path), error=str(e)
            )
            return 0
        now = self._clock.seconds()
        restored = 0
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                address, expiry = line.split()
                until = None if expiry == "-" else float(expiry)
                if until is not None and until <= now:
                    continue
                key, net = self._fw.ban_target(address)
            except (ValueError, AddressError):
                self._log.error(
                    "{path}:{line}: not a ban: {text}", path=str(self.path), line=number, text=line
                )
                continue
            if key is not None:
                self._fw.bans.ban_key(key, until)
            else:
                self._fw.bans.ban_network(net, until)
            restored += 1
        if restored:
            self._log.info(
                "firewall: {count} bans restored from {path}", count=restored, path=str(self.path)
            )
        return restored

    def text(self) -> str:
        """The bans file's text for the bans now."""
        lines = [BANS_HEADER]
        for address, until in self._fw.bans.entries(self._fw.ruleset.limits.ipv6_prefix):
            lines.append(f"{address} {'-' if until is None else f'{until:.3f}'}\n")
        return "".join(lines)

    def changed(self) -> None:
        """The bans changed: write them a moment from now."""
        if self._pending is None or not self._pending.active():
            self._pending = self._clock.callLater(BANS_DELAY_S, self._write_later)

    def _write_later(self) -> None:
        self._pending = None
        d = self._run(_write_bans, self.path, self.text())
        d.addErrback(
            lambda f: self._log.error(
                "firewall bans not written to {path}: {error}",
                path=str(self.path),
                error=f.getErrorMessage(),
            )
        )

    def flush(self) -> None:
        """Write now if a write is due (the gateway is stopping)."""
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
            self._pending = None
            try:
                _write_bans(self.path, self.text())
            except OSError as e:
                self._log.error(
                    "firewall bans not written to {path}: {error}",
                    path=str(self.path),
                    error=str(e),
                )
