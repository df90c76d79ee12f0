"""Real gateway processes for the integration tests, run from the installed venv.

``tests/run`` exports IMGATEWAY_TEST_VENV, the venv the wheel was installed into; run by
hand, the venv running pytest is used. Every wait here has a deadline.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from jsonim_client import JsonImClient

VENV = Path(os.environ.get("IMGATEWAY_TEST_VENV") or sys.prefix)
BIN = VENV / "bin"
REPO = Path(__file__).resolve().parents[2]

LISTENING = re.compile(r"jsonim listener .* listening on 127\.0\.0\.1:(\d+)")
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0
COMMAND_TIMEOUT = 60.0

# Gateways still running, so that a failing test's report can show their logs.
RUNNING: list[Gateway] = []

BASE_CONFIG = """\
[gateway]
name = "imgateway-itest"
data_dir = "{data_dir}"
# 0: a customer who hangs up leaves at once, as most tests expect; test_restart.py
# asks for a grace period to resume in.
resume_grace_s = {resume_grace_s}

[logging]
level = "debug"

[listeners]
jsonim = ["{listener}"]

[admin]
# Port 0: several gateways (and test suites) run at once.
listen = ["tcp:0:interface=127.0.0.1"]
metrics = ["tcp:0:interface=127.0.0.1"]

[jsonim]
max_frame = {max_frame}
heartbeat_s = 3600
hello_timeout_s = 60
max_bad_frames = 3
messages_per_second = {messages_per_second}
message_burst = {message_burst}

[agents]
default_capacity = 2
offer_timeout_s = 3

[routing]
default_queue = "general"
when_no_agents = "wait"

[queues.general]
topics = ["billing", "tech", "other"]
max_wait_s = 600

[interview]
answer_timeout_s = 600
greeting = "Welcome! A few questions before we connect you with an agent."

[[interview.fields]]
name = "name"
prompt = "What is your name?"
kind = "text"
max_length = 80

[[interview.fields]]
name = "topic"
prompt = "What can we help you with?"
kind = "choice"
choices = [
    {{ value = "billing", label = "Billing" }},
    {{ value = "tech", label = "Technical support" }},
    {{ value = "other", label = "Something else" }},
]
"""


def write_config(
    directory: Path,
    *,
    listener: str = "tcp:0:interface=127.0.0.1",
    max_frame: int = 65536,
    messages_per_second: float = 100.0,
    message_burst: int = 100,
    resume_grace_s: float = 0,
) -> Path:
    """A site config for tests: loopback port 0, short offer timeout, data under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "imgateway.toml"
    path.write_text(
        BASE_CONFIG.format(
            data_dir=directory / "data",
            listener=listener,
            max_frame=max_frame,
            messages_per_second=messages_per_second,
            message_burst=message_burst,
            resume_grace_s=resume_grace_s,
        )
    )
    return path


# Linux: a child gets SIGKILL when the test process dies, so no gateway outlives a killed
# test run. Looked up here, not between fork and exec. PR_SET_PDEATHSIG = 1.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> None:
    _prctl(1, int(signal.SIGKILL))


def run_command(args: list[str], *, stdin: str | None = None, cwd: Path | None = None, check=True):
    """Run a venv command with a deadline; on ``check``, fail with its output if it fails."""
    proc = subprocess.run(
        args,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        cwd=cwd,
        env=child_env(),
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def child_env() -> dict[str, str]:
    """The environment for gateway and admin processes: unbuffered, nothing from the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def admin(config: Path, *args: str, stdin: str | None = None, check=True):
    """``imgateway-admin --config CONFIG ARGS...``."""
    return run_command(
        [str(BIN / "imgateway-admin"), "--config", str(config), *args], stdin=stdin, check=check
    )


def add_agent(config: Path, name: str, password: str, display_name: str) -> None:
    """Provision an agent with the admin CLI."""
    admin(
        config,
        "agent",
        "add",
        name,
        "--password-stdin",
        "--display-name",
        display_name,
        "--skill",
        "billing:4",
        stdin=password + "\n",
    )


class Gateway:
    """``twistd -n imgateway`` as a child process, its output read by a thread."""

    def __init__(self, workdir: Path, config: Path | None, name: str = "gateway") -> None:
        self.workdir, self.config, self.name = workdir, config, name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader_done = False
        self.port: int | None = None
        args = [str(BIN / "twistd"), "-n", "--pidfile=", "--logfile=-", "imgateway"]
        if config is not None:
            args += ["--config", str(config)]
        self.args = args
        self.proc = subprocess.Popen(
            args,
            cwd=workdir,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        RUNNING.append(self)
        self._reader = threading.Thread(target=self._read, name=f"{name}-log", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._reader_done = True
            self._changed.notify_all()

    def wait_for_log(self, pattern: str | re.Pattern, timeout: float, start: int = 0) -> re.Match:
        """The first log line from index ``start`` on that matches, waiting up to ``timeout``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        index = start
        with self._changed:
            while True:
                while index < len(self.lines):
                    match = regex.search(self.lines[index])
                    if match:
                        return match
                    index += 1
                if self._reader_done:
                    raise AssertionError(
                        f"{self.name} exited ({self.proc.wait(5)}) before logging "
                        f"/{regex.pattern}/\n{self.log_tail()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{self.name} did not log /{regex.pattern}/ within {timeout:g}s\n"
                        f"{self.log_tail()}"
                    )
                self._changed.wait(remaining)

    def wait_listening(self, timeout: float = START_TIMEOUT) -> int:
        """Wait for the listener's log line; return the bound port."""
        self.port = int(self.wait_for_log(LISTENING, timeout).group(1))
        return self.port

    def listener_port(self, kind: str, timeout: float = START_TIMEOUT) -> int:
        """The loopback port the ``kind`` listener (admin, metrics) bound, from its log."""
        pattern = rf"{re.escape(kind)} listener .* listening on 127\.0\.0\.1:(\d+)"
        return int(self.wait_for_log(pattern, timeout).group(1))

    def connect(self, name: str = "client", **options) -> JsonImClient:
        """A new JSON-IM connection to the gateway (``options``: see JsonImClient)."""
        assert self.port is not None, "the gateway is not listening"
        return JsonImClient(self.port, name=name, **options)

    def wait_exit(self, timeout: float) -> int | None:
        """The exit status, or None if still running after ``timeout``."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        status = self.wait_exit(timeout)
        if status is None:
            self.proc.kill()
            status = self.proc.wait(timeout)
            self.lines.append(f"[harness] no exit {timeout:g}s after SIGTERM: killed")
        self._reader.join(timeout)
        if self in RUNNING:
            RUNNING.remove(self)
        (self.workdir / f"{self.name}.log").write_text(self.log())
        return status

    def log(self) -> str:
        """Everything the gateway printed so far."""
        with self._changed:
            return "\n".join(self.lines)

    def log_tail(self, count: int = 150) -> str:
        """The last lines of the log, headed by the command line."""
        with self._changed:
            tail = self.lines[-count:]
        head = f"--- {self.name}: {' '.join(self.args)} (cwd {self.workdir}); last lines:"
        return "\n".join([head, *tail, "---"])


def start_gateway(workdir: Path, config: Path | None, name: str = "gateway") -> Gateway:
    """Start a gateway and wait until its JSON-IM listener is up."""
    gateway = Gateway(workdir, config, name)
    try:
        gateway.wait_listening()
    except BaseException:
        gateway.stop()
        raise
    return gateway
