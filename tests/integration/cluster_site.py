"""A cluster on loopback for the integration tests: Redis, PostgreSQL, HAProxy, N nodes.

Debian's ``redis-server`` and ``haproxy`` run in the foreground as children of the
test (``./tests/run`` installs them), on free loopback ports; PostgreSQL is a private
cluster of its own (tests/unit/pg_server.py) so that it can be stopped and started.
HAProxy connects to the nodes from 127.0.0.2 with PROXY v2, the one source the nodes'
firewall trusts, so that tests may still connect to a node directly from 127.0.0.1.
Every wait is bounded; nothing sleeps to synchronise.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import harness
from irc_peers import free_port

NODE_LISTENING = r"jsonim listener .* listening on 127\.0\.0\.1:(\d+)"
IRC_LISTENING = r"irc listener .* listening on 127\.0\.0\.1:(\d+)"
ADMIN_LISTENING = r"admin listener .* listening on 127\.0\.0\.1:(\d+)"
IN_STEP = r"cluster: node {node} in step with redis"

CLUSTER_CONFIG = """
[store]
backend = "postgresql"
dsn = "{dsn}"

[cluster]
redis = "redis://127.0.0.1:{redis_port}/0"
node = "{node}"
heartbeat_s = 0.2
node_timeout_s = 1.5
request_timeout_s = 3

[firewall]
rules = "{rules}"
proxy_header_timeout_s = 5
"""

FIREWALL_RULES = "proxy { trusted 127.0.0.2; }\n"

# JSON-IM clients a test opened, closed (their conversations ended) after it, pass or fail.
OPENED: list = []


def close_opened() -> None:
    """End and close every client a test left open, so that the next starts clean."""
    while OPENED:
        client = OPENED.pop()
        try:
            if not client._eof:
                client.send({"type": "end"})
        except OSError:
            pass
        client.close()


class _Process:
    """A foreground server as a child process, its output collected by a thread."""

    def __init__(self, name: str, args: list[str], workdir: Path) -> None:
        self.name, self.args, self.workdir = name, args, workdir
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.args,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=harness._die_with_parent,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        for raw in proc.stdout:
            with self._changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self.proc = None


def wait_port(port: int, what: str, timeout: float = harness.START_TIMEOUT) -> None:
    """Until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what} is not listening on {port} after {timeout}s"
                ) from None
            # Polling a port that is not open yet: each try costs a refused connect.
            time.sleep(0.02)


class Redis(_Process):
    """``redis-server`` on a free loopback port, no persistence; stop and start again."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        assert binary, (
            "redis-server is not installed: install Debian's redis-server (tests/run does)"
        )
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
        super().__init__("redis", args, workdir)

    def start(self) -> None:
        super().start()
        wait_port(self.port, "redis-server")

    def command(self, *args: str) -> str:
        """``redis-cli`` on this server; its output."""
        cli = shutil.which("redis-cli")
        done = subprocess.run([cli, "-p", str(self.port), *args], capture_output=True,
                              text=True, timeout=10, check=True)  # fmt: skip
        return done.stdout


HAPROXY_TEMPLATE = """\
global
    maxconn 2000

defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h

frontend jsonim
    bind 127.0.0.1:{port}
    default_backend nodes

backend nodes
    balance roundrobin
{servers}
"""


class HAProxy(_Process):
    """``haproxy`` in front of the nodes' JSON-IM listeners, PROXY v2 from 127.0.0.2."""

    def __init__(self, workdir: Path, node_ports: dict[str, int]) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        assert Path(binary).exists(), "haproxy is not installed: install Debian's haproxy"
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        options = "send-proxy-v2 source 127.0.0.2 check check-send-proxy inter 5s"
        servers = "\n".join(
            f"    server {name} 127.0.0.1:{port} {options}" for name, port in node_ports.items()
        )
        self.config = workdir / "haproxy.cfg"
        self.config.write_text(HAPROXY_TEMPLATE.format(port=self.port, servers=servers))
        super().__init__("haproxy", [binary, "-db", "-f", str(self.config)], workdir)

    def start(self) -> None:
        super().start()
        wait_port(self.port, "haproxy")


def node_config(directory: Path, node: str, redis_port: int, dsn: str, irc: bool = True) -> Path:
    """A node's site file: harness's test settings, PostgreSQL, Redis, an IRC listener."""
    path = harness.write_config(directory, resume_grace_s=60)
    text = path.read_text()
    if irc:
        text = re.sub(
            r"(?m)^(jsonim = \[.*\])$", r'\1\nirc = ["tcp:0:interface=127.0.0.1"]', text, count=1
        )
        text += '\n[irc]\nserver_name = "irc.itest"\n'
    rules = directory / "firewall.rules"
    rules.write_text(FIREWALL_RULES)
    text += CLUSTER_CONFIG.format(dsn=dsn, redis_port=redis_port, node=node, rules=rules)
    path.write_text(text)
    return path


class Node:
    """One gateway node: its process, config and ports."""

    def __init__(self, name: str, workdir: Path, config: Path) -> None:
        self.name, self.workdir, self.config = name, workdir, config
        self.gateway: harness.Gateway | None = None
        self.port = self.irc_port = 0

    def start(self) -> None:
        gateway = harness.Gateway(self.workdir, self.config, self.name)
        self.gateway = gateway
        self.port = int(gateway.wait_for_log(NODE_LISTENING, harness.START_TIMEOUT).group(1))
        gateway.port = self.port
        self.irc_port = int(gateway.wait_for_log(IRC_LISTENING, harness.START_TIMEOUT).group(1))
        gateway.wait_for_log(IN_STEP.format(node=self.name), harness.START_TIMEOUT)

    def connect(self, name: str):
        """A JSON-IM connection straight to this node (closed after the test)."""
        client = self.gateway.connect(name)
        OPENED.append(client)
        return client

    def agents(self) -> dict[str, dict]:
        """Every agent as this node's view has it (its admin API), by name."""
        import json
        import urllib.request

        port = self.gateway.listener_port("admin")
        token = (self.config.parent / "data" / "admin.token").read_text().strip()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/agents", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return {a["name"]: a for a in json.load(answer)}

    def wait_sees(self, agent: str, state: str | None, timeout: float = 20.0) -> None:
        """Until this node's view has ``agent`` in ``state`` (None: logged out)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.agents().get(agent)
            if (seen["state"] if seen else None) == state:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} sees {agent} as {seen}, not {state}")
            time.sleep(0.05)

    def log_mark(self) -> int:
        """The index of the next log line (for waiting on what comes after)."""
        return len(self.gateway.lines)

    def wait_log(self, pattern: str, start: int = 0, timeout: float = 20.0):
        return self.gateway.wait_for_log(pattern, timeout, start)

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        self.gateway.proc.kill()
        self.gateway.wait_exit(10)
        self.gateway.stop()

    def stop(self) -> int:
        """SIGTERM and wait."""
        return self.gateway.stop()
