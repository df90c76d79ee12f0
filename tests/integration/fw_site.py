"""Helpers for the firewall integration tests: gateways with a rules file, sockets bound
to chosen loopback source addresses, a tiny TCP echo backend, the admin CLI's ``fw``."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
from pathlib import Path

import harness
from jsonim_client import JsonImClient

TIMEOUT = 10.0


def write_config(root: Path, rules: str, extra: str = "") -> tuple[Path, Path]:
    """A test gateway config with ``[firewall] rules`` pointing at a file holding ``rules``."""
    config = harness.write_config(root)
    rules_path = root / "firewall.rules"
    rules_path.write_text(rules)
    text = config.read_text()
    if "[admin]" not in text:  # port 0, so that gateways run side by side
        text += '\n[admin]\nlisten = ["tcp:0:interface=127.0.0.1"]\nmetrics = []\n'
    text += f'\n[firewall]\nrules = "{rules_path}"\n' + extra
    config.write_text(text)
    return config, rules_path


def port_of(gateway: harness.Gateway, kind: str) -> int:
    """The loopback port the ``kind`` listener bound, from its log line."""
    pattern = rf"{re.escape(kind)} listener .* listening on 127\.0\.0\.1:(\d+)"
    return int(gateway.wait_for_log(pattern, harness.START_TIMEOUT).group(1))


def dial(port: int, source: str, host: str = "127.0.0.1") -> socket.socket:
    """A TCP connection to ``host:port`` from the loopback address ``source``."""
    return socket.create_connection((host, port), timeout=TIMEOUT, source_address=(source, 0))


def closed_silently(sock: socket.socket, timeout: float = TIMEOUT) -> bytes:
    """Read until the server closes (FIN or RST); returns what it sent before."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    return data


def dropped(port: int, source: str, first: bytes = b"") -> bool:
    """Whether a connection from ``source`` is closed without a byte from the server.

    A drop resets the connection, which may already fail the connect or the send.
    """
    try:
        sock = dial(port, source)
        if first:
            sock.sendall(first)
    except (ConnectionResetError, BrokenPipeError):
        return True
    return closed_silently(sock) == b""


class EchoServer:
    """A TCP echo server on 127.0.0.1 in a thread, remembering each client's address."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.peers: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="echo", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, peer = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            self.peers.append(peer)
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        conn.settimeout(TIMEOUT)
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

    def close(self) -> None:
        """Stop accepting; the thread ends within its poll interval."""
        self._stop.set()
        self._thread.join(TIMEOUT)
        self.listener.close()


def fw(config: Path, *args: str, check: bool = True):
    """``imgateway-admin --config CONFIG fw ARGS...``."""
    return harness.admin(config, "fw", *args, check=check)


def fw_of(gateway: harness.Gateway, *args: str, check: bool = True, scheme: str = "http"):
    """``imgateway-admin fw ARGS...`` against ``gateway``'s admin listener (port 0 in the
    configuration: the URL comes from its log line)."""
    port = port_of(gateway, "admin")
    env = harness.child_env()
    env["IMGATEWAY_ADMIN_URL"] = f"{scheme}://127.0.0.1:{port}"
    proc = subprocess.run(
        [str(harness.BIN / "imgateway-admin"), "--config", str(gateway.config), "fw", *args],
        capture_output=True,
        text=True,
        timeout=harness.COMMAND_TIMEOUT,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"fw {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def fw_json(gateway: harness.Gateway, *args: str):
    """``fw ARGS... --json`` decoded."""
    return json.loads(fw_of(gateway, *args, "--json").stdout)


class Client(JsonImClient):
    """A JSON-IM client whose socket is bound to a chosen loopback address; ``first``
    is sent before anything else (a PROXY header)."""

    def __init__(self, port: int, source: str, name: str = "client", first: bytes = b"") -> None:
        original = socket.create_connection

        def bound(address, timeout=None, source_address=None):
            sock = original(address, timeout=timeout, source_address=(source, 0))
            if first:
                sock.sendall(first)
            return sock

        socket.create_connection = bound
        try:
            super().__init__(port, name=name)
        finally:
            socket.create_connection = original
