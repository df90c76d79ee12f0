"""Shared pieces of the loopback benchmarks: processes, statistics, tables.

The gateway runs as ``twistd -n imgateway`` from a venv that has the package installed
(``--venv``, default: the venv running the bench; ``bench/run`` builds one). Prosody and
ngircd are Debian's, started in the foreground on free loopback ports. Every wait has a
deadline and every child is killed when the bench exits (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

START_TIMEOUT = 30.0
LISTENING = re.compile(r"(\w+) listener (\S+) listening on 127\.0\.0\.1:(\d+)")
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _child_setup() -> None:
    """In the child: die with the bench, and allow many open files."""
    _prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    raise_nofile()


def raise_nofile(wanted: int = 1_048_576) -> int:
    """Raise RLIMIT_NOFILE's soft limit as far as the hard limit allows; the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = START_TIMEOUT) -> None:
    """Wait until ``port`` accepts a connection, or fail if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listening on {port} after {timeout:g}s") from None
            try:
                proc.wait(0.02)
            except subprocess.TimeoutExpired:
                pass


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    """The 1-minute load average, for the record (the host is shared)."""
    return f"{os.getloadavg()[0]:.2f}"


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of already sorted values."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def ratio(ours: float, peer: float, higher_is_better: bool = True) -> str:
    """``ours / peer`` (or ``peer / ours`` when lower is better) as ``1.23x``."""
    if not peer or not ours or ours != ours or peer != peer:
        return "—"
    value = ours / peer if higher_is_better else peer / ours
    return f"{value:.2f}x"


def workdir(prefix: str) -> Path:
    """A fresh temporary directory."""
    return Path(tempfile.mkdtemp(prefix=f"imgw-bench-{prefix}-"))


# -- the gateway ---------------------------------------------------------------------


class Gateway:
    """``twistd -n imgateway --config CONFIG`` with its log read by a thread."""

    def __init__(self, venv: Path, directory: Path, config_text: str) -> None:
        self.venv, self.dir = venv, directory
        self.config = directory / "imgateway.toml"
        self.config.write_text(config_text + _admin_section(venv))
        self.lines: list[str] = []
        self.ports: dict[str, int] = {}
        self.proc: subprocess.Popen | None = None
        self.started_s = float("nan")
        self._changed = threading.Condition()

    def admin(self, *args: str, stdin: str | None = None) -> None:
        """``imgateway-admin --config CONFIG ARGS...``; fails loudly."""
        proc = subprocess.run(
            [str(self.venv / "bin" / "imgateway-admin"), "--config", str(self.config), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.dir,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"imgateway-admin {' '.join(args)}: {proc.stderr}{proc.stdout}")

    def add_agent(self, name: str, password: str, capacity: int, extra: Sequence[str] = ()) -> None:
        """Provision one agent account with a capacity (``extra``: more arguments)."""
        self.admin(
            "agent", "add", name, "--password-stdin", "--display-name", name.capitalize(),
            "--capacity", str(capacity), "--skill", "billing:3", *extra,
            stdin=password + "\n",
        )  # fmt: skip

    def start(self, expect: Sequence[str]) -> float:
        """Start, wait for a listener of each protocol in ``expect``; seconds to listening."""
        args = [str(self.venv / "bin" / "twistd")]
        args += ["-n", "--pidfile=", "--logfile=-"]
        args += ["imgateway", "--config", str(self.config)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PYTHONUNBUFFERED"] = "1"
        begun = time.monotonic()
        self.proc = subprocess.Popen(
            args,
            cwd=self.dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup,
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = begun + START_TIMEOUT
        with self._changed:
            while not all(p in self.ports for p in expect):
                if self.proc.poll() is not None:
                    raise RuntimeError("gateway exited:\n" + "\n".join(self.lines[-30:]))
                if time.monotonic() > deadline:
                    raise RuntimeError("gateway not listening:\n" + "\n".join(self.lines[-30:]))
                self._changed.wait(0.1)
        self.started_s = self.first_listening - begun
        return self.started_s

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            now = time.monotonic()
            with self._changed:
                self.lines.append(line)
                match = LISTENING.search(line)
                if match:
                    if not self.ports:
                        self.first_listening = now
                    self.ports.setdefault(match.group(1), int(match.group(3)))
                self._changed.notify_all()

    def logged(self, pattern: str) -> bool:
        """Whether a log line so far matches ``pattern``."""
        regex = re.compile(pattern)
        with self._changed:
            return any(regex.search(line) for line in self.lines)

    @property
    def pid(self) -> int:
        """The gateway's process id."""
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s; the log is kept in the work directory."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        (self.dir / "gateway.log").write_text("\n".join(self.lines))


def _admin_section(venv: Path) -> str:
    """Free ports for the admin API and metrics listeners, if this version has them.

    Their defaults are fixed ports (7071, 9464), which two gateways on one host (or a
    gateway already running) would fight over.
    """
    for defaults in venv.glob("lib/python*/site-packages/gateway/defaults.toml"):
        if "\n[admin]" in defaults.read_text():
            return (
                '\n[admin]\nlisten = ["tcp:0:interface=127.0.0.1"]\n'
                'metrics = ["tcp:0:interface=127.0.0.1"]\n'
            )
    return ""


GATEWAY_CONFIG = """\
[gateway]
name = "imgateway-bench"
data_dir = "{data}"
resume_grace_s = 0

[logging]
level = "{log_level}"

[listeners]
jsonim = ["tcp:0:interface=127.0.0.1:backlog=1024"]
irc = [{irc}]
xmpp = [{xmpp}]

[jsonim]
heartbeat_s = 3600
hello_timeout_s = 600
messages_per_second = 1000000.0
message_burst = 1000000

[agents]
default_capacity = 1000
offer_timeout_s = 600

[queues.general]
topics = ["billing"]
max_waiting = 1000000
max_wait_s = 3600

[interview]
answer_timeout_s = 3600
greeting = ""
fields = []

[firewall]
max_connections = 10000000
max_connections_per_address = 10000000

[irc]
server_name = "irc.bench"
lines_per_second = 1000000.0
line_burst = 1000000
max_lagged_lines = 10000
registration_timeout_s = 600
ping_interval_s = 3600
ctcp_version_timeout_s = 0.1
allow_plaintext_auth = true

[xmpp]
messages_per_second = 1000000.0
message_burst = 1000000
stanzas_per_second = 1000000000.0
stanza_burst = 1000000000
max_customers = 10000000
auth_timeout_s = 600
ping_s = 3600
version_timeout_s = 0.1
client_domain = "localhost"
"""


def gateway_config(
    data: Path,
    *,
    irc: bool = False,
    xmpp: bool = False,
    web: bool = False,
    log_level: str = "warn",
    component_port: int | None = None,
    irc_bot_port: int | None = None,
) -> str:
    """The bench configuration: every rate and connection limit far out of the way.

    ``component_port``: also attach to Prosody's component port as
    ``support.localhost`` (XEP-0114). ``irc_bot_port``: also join ngircd on that port
    as the bot ``Support`` (bot mode; agents known by their nicks, as on a private
    network).
    """
    text = GATEWAY_CONFIG.format(
        data=data,
        log_level=log_level,
        irc='"tcp:0:interface=127.0.0.1:backlog=1024"' if irc else "",
        xmpp='"tcp:0:interface=127.0.0.1:backlog=1024"' if xmpp else "",
    )
    if web:
        # Only when asked: a version without the web listener refuses its section.
        text = text.replace(
            "xmpp = [", 'web = ["tcp:0:interface=127.0.0.1:backlog=1024"]\nxmpp = [', 1
        )
        text += WEB_CONFIG
    if component_port is not None:
        text = text.replace(
            "[xmpp]\n",
            f'[xmpp]\ndomain = "support.localhost"\nserver_port = {component_port}\n'
            f'secret = "{COMPONENT_SECRET}"\n',
        )
    if irc_bot_port is not None:
        text += IRC_BOT_CONFIG.format(port=irc_bot_port)
    return text


WEB_CONFIG = """
[web]
max_connections_per_origin = 10000000
handshake_timeout_s = 600
"""

IRC_BOT_CONFIG = """
[irc.bot]
enabled = true
host = "127.0.0.1"
port = {port}
tls = false
channel = "#support"
agent_identity = "nick"
lines_per_second = 1000000.0
line_burst = 1000000
ping_interval_s = 3600
presence_poll_s = 3600
"""


# -- the peers -------------------------------------------------------------------------

PROSODY_CONFIG = """\
run_as_root = true
daemonize = false
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
log = {{ error = "{dir}/prosody.log" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s_port} }}
c2s_direct_tls_ports = {{}}
s2s_ports = {{}}
component_ports = {{ {component_port} }}
component_interface = "127.0.0.1"
http_ports = {{}}
https_ports = {{}}
c2s_require_encryption = false
s2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "anonymous"
storage = "internal"
modules_enabled = {{ "saslauth", "disco", "ping", "presence" }}
modules_disabled = {{ "s2s", "offline", "tls", "carbons", "mam", "smacks" }}
limits = {{ c2s = {{ rate = "1000mb/s" }} }}
c2s_timeout = 3600
network_backend = "epoll"

VirtualHost "localhost"

VirtualHost "corp.localhost"
    authentication = "internal_hashed"

Component "support.localhost"
    component_secret = "{secret}"
"""
COMPONENT_SECRET = "bench-component-secret"


class Prosody:
    """Prosody on free loopback ports: ``localhost`` (SASL ANONYMOUS), ``corp.localhost``
    (accounts made with :meth:`register`) and the component ``support.localhost``."""

    def __init__(self, directory: Path) -> None:
        if shutil.which("prosody") is None:
            raise RuntimeError("prosody is not installed (apt-get install prosody)")
        self.dir = directory
        (directory / "data").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.component_port = free_port()
        self.config = directory / "prosody.cfg.lua"
        self.config.write_text(
            PROSODY_CONFIG.format(
                dir=directory,
                c2s_port=self.port,
                component_port=self.component_port,
                secret=COMPONENT_SECRET,
            )
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Start in the foreground; seconds until the port accepts."""
        begun = time.monotonic()
        self.proc = subprocess.Popen(
            ["prosody", "-F", "--config", str(self.config)],
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_child_setup,
        )
        wait_port(self.port, self.proc)
        return time.monotonic() - begun

    def register(self, user: str, host: str, password: str) -> None:
        """Create an account with prosodyctl."""
        proc = subprocess.run(
            ["prosodyctl", "--config", str(self.config), "register", user, host, password],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"prosodyctl register {user}: {proc.stdout}{proc.stderr}")

    @property
    def pid(self) -> int:
        """Prosody's process id."""
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        """Terminate and wait (kill if it takes too long)."""
        _stop(self.proc)


NGIRCD_CONF = """\
[Global]
Name = ngircd.bench
Info = imgateway bench
Listen = 127.0.0.1
Ports = {port}
MotdPhrase = bench
PidFile = {dir}/ngircd.pid
ServerUID = {uid}
ServerGID = {gid}

[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 30
PingTimeout = 3600
PongTimeout = 3600
{penalty}
[Options]
DNS = no
Ident = no
PAM = no
RequireAuthPing = no
SyslogFacility = local1

[Operator]
Name = bench
Password = bench-Secret-1
"""


class Ngircd:
    """ngircd in the foreground on a free loopback port.

    ``penalties=False``: no flood penalties at all (``MaxPenaltyTime = 0``), for a
    network that carries the gateway's bot, which is no IRC operator and so cannot
    have the relaxed user mode +F that the bench's own users take.
    """

    def __init__(self, directory: Path, *, penalties: bool = True) -> None:
        self.binary = shutil.which("ngircd") or "/usr/sbin/ngircd"
        if not Path(self.binary).exists():
            raise RuntimeError("ngircd is not installed (apt-get install ngircd)")
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.port = free_port()
        self.conf = directory / "ngircd.conf"
        self.conf.write_text(
            NGIRCD_CONF.format(
                port=self.port,
                dir=directory,
                uid=os.getuid(),
                gid=os.getgid(),
                penalty="" if penalties else "MaxPenaltyTime = 0\n",
            )
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Start in the foreground; seconds until the port accepts."""
        begun = time.monotonic()
        self.proc = subprocess.Popen(
            [self.binary, "--nodaemon", "--config", str(self.conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_child_setup,
        )
        wait_port(self.port, self.proc)
        return time.monotonic() - begun

    @property
    def pid(self) -> int:
        """ngircd's process id."""
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        """Terminate and wait (kill if it takes too long)."""
        _stop(self.proc)


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def default_venv() -> Path:
    """The venv running this script, if it has the gateway installed."""
    venv = Path(sys.prefix)
    if not (venv / "bin" / "twistd").exists() or not (venv / "bin" / "imgateway-admin").exists():
        raise SystemExit(
            f"{venv} has no imgateway installed: run bench/run, or pass --venv "
            "(python3 -m venv V && V/bin/pip install .)"
        )
    return venv
