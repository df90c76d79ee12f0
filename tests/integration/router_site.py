"""A real ``twistd imrouter`` with its event feed, for the feed and decision tests.

:class:`FeedRouter` starts the router from the installed venv with a data directory
(the journal of the feed it receives), a metrics listener and the rules given, and
reads its ports from its log. :meth:`FeedRouter.journal` returns every event the router
took, in the order it took them, from that journal; :func:`call` is one API request.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import harness
from harness import BIN, RUNNING, child_env

TOKEN = "feed-router-token-0123456789"
HTTP_TIMEOUT_S = 10.0

CONFIG = """\
[router]
listen = ["tcp:{port}:interface=127.0.0.1"]
metrics = ["tcp:0:interface=127.0.0.1"]
queues = {queues}
data_dir = "data"
service_level_s = {service_level_s}

[feed]
texts = {texts}
# Never compacted during a test: the journal keeps every event taken.
compact_after = 1000000

[logging]
level = "debug"

[media.chat]
rules = "chat.toml"
"""


class FeedRouter(harness.Gateway):
    """``twistd -n imrouter`` in ``workdir`` (config, rules and data there)."""

    def __init__(self, workdir: Path, name: str = "imrouter") -> None:
        self.workdir, self.name = workdir, name
        self.config = workdir / "imrouter.toml"
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader_done = False
        self.port: int | None = None
        self.metrics_port: int | None = None
        self.args = [
            str(BIN / "twistd"),
            "-n",
            "--pidfile=",
            "--logfile=-",
            "imrouter",
            "--config",
            str(self.config),
        ]
        self.proc = subprocess.Popen(
            self.args,
            cwd=workdir,
            env={**child_env(), "IMROUTER_TOKEN": TOKEN},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=harness._die_with_parent,
        )
        RUNNING.append(self)
        self._reader = threading.Thread(target=self._read, name=f"{name}-log", daemon=True)
        self._reader.start()
        self.port = int(
            self.wait_for_log(
                r"imrouter listening on 127\.0\.0\.1:(\d+)", harness.START_TIMEOUT
            ).group(1)
        )
        self.metrics_port = int(
            self.wait_for_log(
                r"imrouter metrics listening on 127\.0\.0\.1:(\d+)", harness.START_TIMEOUT
            ).group(1)
        )

    @classmethod
    def start(
        cls,
        workdir: Path,
        rules: str,
        *,
        port: int = 0,
        queues: tuple[str, ...] = ("general",),
        texts: bool = False,
        service_level_s: float = 20,
    ) -> FeedRouter:
        """Write the config and rules (once) and start the router."""
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "chat.toml").write_text(rules)
        (workdir / "imrouter.toml").write_text(
            CONFIG.format(
                port=port,
                queues=json.dumps(list(queues)),
                texts=str(texts).lower(),
                service_level_s=service_level_s,
            )
        )
        return cls(workdir)

    def restart(self) -> int:
        """Stop (SIGTERM) and start again on the same port, data and rules; the stop's
        exit status."""
        port = self.port
        status = self.stop()
        text = self.config.read_text()
        self.config.write_text(
            re.sub(r'listen = \["tcp:\d+:', f'listen = ["tcp:{port}:', text, count=1)
        )
        self.__init__(self.workdir, self.name)
        assert self.port == port, (self.port, port)
        return status

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request with the token; the status and the JSON answer."""
        return call(self.url, method, path, body)

    def journal(self) -> list[tuple[str, str, str, dict]]:
        """Every event the router took, as (gateway, node, epoch, event), in order."""
        events = []
        for line in (self.workdir / "data" / "feed.jsonl").read_text().splitlines():
            batch = json.loads(line)
            for event in batch["events"]:
                events.append((batch["gateway"], batch["node"], batch["epoch"], event))
        return events

    def metrics(self) -> dict[str, float]:
        """The Prometheus samples, by their text name and labels."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as reply:
            text = reply.read().decode()
        samples = {}
        for line in text.splitlines():
            match = re.match(r"^(imrouter_\S+) (\S+)$", line)
            if match:
                samples[match.group(1)] = float(match.group(2))
        return samples


def call(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request to a router at ``base``; (status, JSON answer), errors included."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


def gateway_config(config: Path, router: FeedRouter, rules: Path, name: str) -> None:
    """Point a gateway config (harness.write_config's) at ``router``, named ``name``."""
    text = config.read_text()
    text = text.replace('name = "imgateway-itest"', f'name = "{name}"')
    text = text.replace(
        "[routing]\n",
        f'[routing]\nremote_url = "{router.url}"\nremote_token = "{TOKEN}"\n'
        f'remote_deadline_s = 2\nrules = "{rules}"\n',
    )
    config.write_text(text)
