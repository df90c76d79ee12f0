"""IRC peers for the integration tests: clients (raw sockets and the ``irc`` library),
a gateway with IRC listeners, and an ngircd server on a free loopback port.

Every wait has a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import harness
import irc.client
import irc.connection

DEFAULT_TIMEOUT = 10.0
IRC_LISTENING = re.compile(r"irc listener (tcp|ssl):\S* listening on 127\.0\.0\.1:(\d+)")


# -- the gateway ------------------------------------------------------------------


def write_config(directory: Path, *, listeners: list[str], irc: str = "", **options) -> Path:
    """harness.write_config plus IRC listeners and an ``[irc]`` section body."""
    path = harness.write_config(directory, **options)
    text = path.read_text()
    quoted = ", ".join(f'"{ep}"' for ep in listeners)
    text = re.sub(r"(?m)^(jsonim = \[.*\])$", rf"\1\nirc = [{quoted}]", text, count=1)
    text += '\n[irc]\nserver_name = "irc.itest"\n' + irc
    path.write_text(text)
    return path


def irc_ports(gateway: harness.Gateway, count: int) -> dict[str, int]:
    """The ports of the gateway's IRC listeners by kind (tcp, ssl), waiting for ``count``."""
    start = 0
    while True:
        gateway.wait_for_log(IRC_LISTENING, harness.START_TIMEOUT, start)
        lines = list(gateway.lines)
        found = [(i, m) for i, line in enumerate(lines) if (m := IRC_LISTENING.search(line))]
        if len(found) >= count:
            return {m.group(1): int(m.group(2)) for _, m in found}
        start = found[-1][0] + 1


# -- a raw client -------------------------------------------------------------------


class RawIrc:
    """A blocking IRC connection that keeps every line the server sent, as sent."""

    def __init__(self, port: int, *, name: str = "raw", tls: ssl.SSLContext | None = None) -> None:
        self.name = name
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname="localhost")
        self.lines: list[bytes] = []
        self._taken = 0
        self._buffer = b""
        self.eof = False

    def send(self, *lines: str | bytes) -> None:
        """Send lines (str gets CR LF)."""
        self.sock.sendall(
            b"".join(x if isinstance(x, bytes) else x.encode() + b"\r\n" for x in lines)
        )

    def expect(self, pattern: str, timeout: float = DEFAULT_TIMEOUT) -> re.Match:
        """The next line (not yet taken) matching ``pattern``; earlier lines are passed."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            while self._taken < len(self.lines):
                line = self.lines[self._taken].decode("utf-8", "replace")
                self._taken += 1
                match = regex.search(line)
                if match:
                    return match
            if self.eof or not self._read(deadline):
                raise AssertionError(
                    f"{self.name}: no line matching /{pattern}/; got:\n"
                    + "\n".join(x.decode("utf-8", "replace") for x in self.lines[-30:])
                    + ("\n(closed)" if self.eof else "")
                )

    def closed(self, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """Wait for the server to close the connection."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            if not self._read(deadline):
                return False
        return True

    def _read(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            data = b""
        if not data:
            self.eof = True
            return True
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\r\n")
        self.lines.extend(lines)
        return True

    def raw(self) -> bytes:
        """Everything received so far."""
        return b"\r\n".join(self.lines) + self._buffer

    def register(self, nick: str, *, caps: str = "", sasl: tuple[str, str] | None = None) -> None:
        """Register (with CAP and SASL PLAIN if asked) and wait for 001."""
        import base64

        if caps or sasl:
            self.send("CAP LS 302")
        self.send(f"NICK {nick}", f"USER {nick} 0 * :{nick}")
        if caps or sasl:
            self.send(f"CAP REQ :{caps or 'sasl'}")
            self.expect(r" CAP \S+ ACK ")
            if sasl:
                self.send("AUTHENTICATE PLAIN")
                self.expect(r"^AUTHENTICATE \+")
                token = base64.b64encode(f"\0{sasl[0]}\0{sasl[1]}".encode()).decode()
                self.send(f"AUTHENTICATE {token}")
                self.expect(r" 903 ")
            self.send("CAP END")
        self.expect(r" 001 ")
        self.expect(r" (376|422) ")

    def close(self) -> None:
        """Close our side."""
        self.sock.close()


# -- the irc library as a customer ----------------------------------------------------


class LibClient:
    """A customer on jaraco's ``irc`` library, pumped in the test's thread."""

    def __init__(
        self,
        port: int,
        nick: str,
        *,
        version: str = "itest-irc 20.5.0",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.timeout = timeout  # the default deadline of every wait
        self.reactor = irc.client.Reactor()
        self.events: list[irc.client.Event] = []
        self.raw: list[str] = []
        self.version = version
        self.connection = self.reactor.server().connect("127.0.0.1", port, nick)
        self.reactor.add_global_handler("all_events", self._event, -10)

    def _event(self, connection, event) -> None:
        if event.type == "all_raw_messages":
            self.raw.append(event.arguments[0])
            return
        self.events.append(event)
        if event.type == "ctcp" and event.arguments[0] == "VERSION":
            connection.ctcp_reply(event.source.nick, f"VERSION {self.version}")

    def wait(self, predicate: Callable[[irc.client.Event], bool], timeout: float | None = None):
        """The first event (from the start) satisfying ``predicate``, pumping until then."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for event in self.events:
                if predicate(event):
                    self.events.remove(event)
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    "no such event; got:\n"
                    + "\n".join(f"{e.type} {e.source} {e.arguments}" for e in self.events[-30:])
                    + "\nraw:\n"
                    + "\n".join(self.raw[-30:])
                )
            self.reactor.process_once(min(remaining, 0.2))

    def wait_privmsg(
        self, text: str | re.Pattern, *, source: str | None = None, timeout: float | None = None
    ):
        """The first private message whose text matches ``text`` (regex), from ``source``."""
        regex = re.compile(text)

        def fits(e):
            return (
                e.type == "privmsg"
                and regex.search(e.arguments[0])
                and (source is None or e.source.nick == source)
            )

        return self.wait(fits, timeout)

    def say(self, target: str, text: str) -> None:
        """PRIVMSG target :text."""
        self.connection.privmsg(target, text)

    def raw_text(self) -> str:
        """Every line received, as the library read it."""
        return "\n".join(self.raw)

    def close(self) -> None:
        """QUIT and close."""
        try:
            self.connection.quit("bye")
        finally:
            self.connection.close()


# -- ngircd ------------------------------------------------------------------------------

NGIRCD_CONF = """\
[Global]
Name = ngircd.itest
Info = imgateway integration test
Listen = 127.0.0.1
Ports = {port}
MotdPhrase = test
PidFile = {dir}/ngircd.pid
ServerUID = {uid}
ServerGID = {gid}

[Limits]
MaxConnectionsIP = 0
MaxNickLength = 30
PingTimeout = 120
PongTimeout = 20
ConnectRetry = 60

[Options]
DNS = no
Ident = no
PAM = no
RequireAuthPing = no
SyslogFacility = local1

[Channel]
Name = #support
Topic = Customer support
"""


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ngircd:
    """ngircd in the foreground on a free loopback port, its output kept."""

    def __init__(
        self, directory: Path, port: int | None = None, tls: tuple[Path, Path] | None = None
    ) -> None:
        import os

        binary = shutil.which("ngircd") or "/usr/sbin/ngircd"
        directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.conf = directory / "ngircd.conf"
        conf = NGIRCD_CONF.format(port=self.port, dir=directory, uid=os.getuid(), gid=os.getgid())
        self.tls_port: int | None = None
        if tls is not None:
            self.tls_port = free_port()
            key, cert = tls
            conf += f"\n[SSL]\nCertFile = {cert}\nKeyFile = {key}\nPorts = {self.tls_port}\n"
        self.conf.write_text(conf)
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [binary, "--nodaemon", "--config", str(self.conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=harness._die_with_parent,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._wait_listening()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def _wait_listening(self, timeout: float = harness.START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        ports = [p for p in (self.port, self.tls_port) if p is not None]
        while True:
            try:
                for port in ports:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        pass
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        "ngircd did not start:\n" + "\n".join(self.lines[-40:])
                    ) from None
                # Wait on the process, not on a sleep: returns at once if it exits.
                try:
                    self.proc.wait(0.1)
                except subprocess.TimeoutExpired:
                    pass

    def stop(self) -> None:
        """Terminate and wait."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(harness.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(harness.STOP_TIMEOUT)
        self._reader.join(5)
