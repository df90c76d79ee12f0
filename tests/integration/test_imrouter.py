"""``twistd imrouter`` as a real process on loopback, and the gateway's client against it.

The router runs from the installed venv (IMGATEWAY_TEST_VENV, as the harness does);
its bound port is read from its log line ``imrouter listening on HOST:PORT``. The
gateway's :class:`RemotePlans` runs in a child Python of the same venv, driven a line
at a time over stdin/stdout. Every wait is bounded; nothing sleeps to synchronise.
"""

from __future__ import annotations

import importlib.metadata
import json
import queue
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import harness
import pytest
from certs import self_signed
from harness import BIN, RUNNING, VENV, child_env, run_command

TOKEN = "integration-token-0123456789"
DEADLINE_S = 0.5
# Scheduling on a busy test machine, on top of the client's own bound.
SLACK_S = 0.5
HTTP_TIMEOUT_S = 10.0
# A refused decision: two attempts refused on loopback, plus scheduling on a busy
# machine; by name, a short delay between the addresses the name resolves to too.
REFUSED_S = 0.1
REFUSED_BY_NAME_S = 0.25
LISTENING = r"imrouter listening on 127\.0\.0\.1:(\d+)"

RULES = """\
[[rules]]
name = "{name}"
priority = 6

[rules.match]
topic = "billing"

[[rules.targets]]
queue = "general"
skills = {{ billing = 3 }}
strategy = "highest_skill"
timeout_s = 30

[[rules.targets]]
strategy = "longest_idle"

[default]
[[default.targets]]
strategy = "longest_idle"
"""

CONFIG = """\
[router]
listen = ["{listen}"]
queues = ["general"]
max_body = 65536

[logging]
level = "debug"

[media.chat]
rules = "chat.toml"
"""

# The gateway side: RemotePlans with the real reactor, one JSON line in (the customer's
# attributes), one JSON line out (the plan's source, rule and reason, and the time the
# decision took as the client measured it).
CLIENT = """\
import json, sys, time
from pathlib import Path
from twisted.internet import reactor, stdio
from twisted.protocols.basic import LineReceiver
from gateway.routing.plan import Customer
from gateway.routing.remote import RemotePlans
from gateway.routing.rules import RuleSet

url, token, rules, deadline, ca = sys.argv[1:6]
local = RuleSet.load(Path(rules), queues=["general"])
plans = RemotePlans(
    url, token, local=local, reactor=reactor, deadline_s=float(deadline),
    tls_ca=Path(ca) if ca else None,
)


class Driver(LineReceiver):
    delimiter = b"\\n"

    def lineReceived(self, line):
        started = time.monotonic()
        d = plans.plan(Customer(attributes=json.loads(line), media="chat"))

        def done(plan):
            reply = {"source": plan.source, "rule": plan.rule, "reason": plan.reason,
                     "elapsed_s": time.monotonic() - started}
            self.sendLine(json.dumps(reply).encode())

        d.addCallbacks(done, lambda f: self.sendLine(json.dumps({"error": str(f)}).encode()))

    def connectionLost(self, reason):
        plans.close().addBoth(lambda _: reactor.stop())


stdio.StandardIO(Driver())
reactor.run()
"""


class Router(harness.Gateway):
    """``twistd -n --pidfile= imrouter --config CONFIG``; the harness reads its log."""

    def __init__(self, workdir: Path, config: Path, name: str = "imrouter") -> None:
        self.workdir, self.config, self.name = workdir, config, name
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader_done = False
        self.port: int | None = None
        self.args = [
            str(BIN / "twistd"),
            "-n",
            "--pidfile=",
            "--logfile=-",
            "imrouter",
            "--config",
            str(config),
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

    def wait_listening(self, timeout: float = harness.START_TIMEOUT) -> int:
        """Wait for ``imrouter listening on 127.0.0.1:PORT``; return the port."""
        self.port = int(self.wait_for_log(LISTENING, timeout).group(1))
        return self.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_router(workdir: Path, port: int = 0, tls: tuple[Path, Path] | None = None) -> Router:
    """Write the config (rules in ``workdir/chat.toml``), start, wait for the port.

    ``tls``: (key, certificate) to listen with TLS instead.
    """
    config = workdir / "imrouter.toml"
    listen = f"tcp:{port}:interface=127.0.0.1"
    if tls is not None:
        listen = f"ssl:{port}:interface=127.0.0.1:privateKey={tls[0]}:certKey={tls[1]}"
    config.write_text(CONFIG.format(listen=listen))
    router = Router(workdir, config)
    try:
        router.wait_listening()
    except BaseException:
        router.stop()
        raise
    return router


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "chat.toml").write_text(RULES.format(name="router-billing"))
    return tmp_path


@pytest.fixture
def router(workdir: Path):
    router = start_router(workdir)
    yield router
    router.stop()


def http(
    router: Router, method: str, path: str, body: object = None, token: str | None = TOKEN
) -> tuple[int, dict]:
    """One request with a deadline; the status and the JSON body, errors included."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(router.url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


def classify(router: Router, token: str | None = TOKEN, **attributes) -> tuple[int, dict]:
    return http(router, "POST", "/v1/classify", {"media": "chat", "attributes": attributes}, token)


def test_health_classify_auth_and_errors(router):
    code, health = http(router, "GET", "/v1/health", token=None)
    assert code == 200
    assert health["status"] == "ok"
    assert health["media"] == ["chat", "email", "task", "voice"]
    assert health["rules"]["chat"].endswith("chat.toml")
    assert health["rules"]["email"] == "packaged defaults"

    code, plan = classify(router, topic="billing", protocol="jsonim")
    assert code == 200
    assert (plan["rule"], plan["priority"], plan["source"]) == ("router-billing", 6, "remote")
    assert plan["targets"][0]["skills"] == {"billing": 3}
    assert "router-billing" in plan["reason"]
    router.wait_for_log(r"imrouter classified media=chat rule=router-billing", 5)

    assert classify(router, token=None, topic="billing")[0] == 401
    assert classify(router, token="wrong-token-0123456789xx", topic="billing")[0] == 401
    code, reply = http(router, "POST", "/v1/classify", b"{nope")
    assert (code, reply) == (400, {"error": "the body is not valid JSON"})
    code, reply = http(router, "POST", "/v1/classify", {"media": "fax", "attributes": {}})
    assert (code, reply) == (404, {"error": "unknown media 'fax'"})
    code, reply = http(router, "POST", "/v1/classify", b"x" * 70000)
    assert code == 413


def test_reload_on_request_and_on_sighup(router, workdir):
    rules = workdir / "chat.toml"
    rules.write_text(RULES.format(name="router-billing-v2"))
    code, reply = http(router, "POST", "/v1/reload")
    assert (code, reply["generation"]) == (200, 2)
    assert classify(router, topic="billing")[1]["rule"] == "router-billing-v2"

    assert http(router, "POST", "/v1/reload", token=None)[0] == 401

    rules.write_text("[[rules]]\nname = 'x'\n")
    code, reply = http(router, "POST", "/v1/reload")
    assert code == 422
    assert reply["error"].startswith(f"{rules}: ") and "\n" not in reply["error"]
    # All or nothing: the rules in use stay.
    assert classify(router, topic="billing")[1]["rule"] == "router-billing-v2"

    rules.write_text(RULES.format(name="router-billing-v3"))
    mark = len(router.lines)
    router.proc.send_signal(signal.SIGHUP)
    router.wait_for_log(r"imrouter rules loaded \(generation 3\)", 10, start=mark)
    assert classify(router, topic="billing")[1]["rule"] == "router-billing-v3"


def test_the_gateway_client_remote_then_fallback_then_remote_again(workdir, tmp_path):
    local_rules = tmp_path / "local.toml"
    local_rules.write_text(RULES.format(name="local-billing"))
    router = start_router(workdir)
    port = router.port
    client = Client(router.url, local_rules)
    try:
        reply = client.ask(topic="billing")
        assert (reply["source"], reply["rule"]) == ("remote", "router-billing"), reply

        # Stopped: connections are refused, so the fallback comes at once: two
        # refused attempts, no delay between or after them (it took 0.6 s).
        # twistd ends by re-raising the signal that stopped it, after a clean stop.
        assert router.stop() in (0, -signal.SIGTERM)
        assert "imrouter stopped" in router.log()
        for _ in range(3):
            reply = client.ask(topic="billing")
            assert (reply["source"], reply["rule"]) == ("fallback", "local-billing"), reply
            assert reply["elapsed_s"] <= REFUSED_S, reply
            assert reply["reason"].startswith("routing server refused the connection"), reply
        # By name too: each address the name resolves to is tried, promptly.
        by_name = Client(f"http://localhost:{port}", local_rules)
        try:
            reply = by_name.ask(topic="billing")
        finally:
            by_name.close()
        assert (reply["source"], reply["rule"]) == ("fallback", "local-billing"), reply
        assert reply["elapsed_s"] <= REFUSED_BY_NAME_S, reply

        # Started again on the same port: remote again.
        router = start_router(workdir, port)
        reply = client.ask(topic="billing")
        assert (reply["source"], reply["rule"]) == ("remote", "router-billing"), reply

        # Frozen (SIGSTOP): the kernel still accepts, nobody answers. Each attempt is
        # cancelled at the deadline, so the fallback comes after two deadlines.
        router.proc.send_signal(signal.SIGSTOP)
        try:
            reply = client.ask(topic="billing")
        finally:
            router.proc.send_signal(signal.SIGCONT)
        assert (reply["source"], reply["rule"]) == ("fallback", "local-billing"), reply
        assert 2 * DEADLINE_S - 0.05 <= reply["elapsed_s"] <= 2 * DEADLINE_S + SLACK_S, reply
        assert reply["reason"].startswith("routing server timed out after 0.5s (2 attempts)")

        reply = client.ask(topic="billing")
        assert (reply["source"], reply["rule"]) == ("remote", "router-billing"), reply
    finally:
        client.close()
        router.stop()


class Client:
    """The gateway's RemotePlans in a child Python of the installed venv."""

    def __init__(self, url: str, local_rules: Path, tls_ca: Path | None = None) -> None:
        self.replies: queue.Queue[str] = queue.Queue()
        self.proc = subprocess.Popen(
            [
                str(VENV / "bin" / "python"),
                "-c",
                CLIENT,
                url,
                TOKEN,
                str(local_rules),
                str(DEADLINE_S),
                str(tls_ca or ""),
            ],
            cwd=local_rules.parent,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=harness._die_with_parent,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.replies.put(line)

    def ask(self, timeout: float = HTTP_TIMEOUT_S, **attributes: str) -> dict:
        """One decision: the plan's source, rule, reason and elapsed_s."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(attributes) + "\n")
        self.proc.stdin.flush()
        try:
            line = self.replies.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the client did not answer within {timeout:g}s") from None
        reply = json.loads(line)
        assert "error" not in reply, reply
        return reply

    def close(self) -> None:
        """End the client (stdin closed) and wait for it, killing it if it hangs."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(harness.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(harness.STOP_TIMEOUT)


def test_no_token_is_one_line_and_exit_1(tmp_path):
    config = tmp_path / "imrouter.toml"
    config.write_text('[router]\nlisten = ["tcp:0:interface=127.0.0.1"]\n')
    env = {k: v for k, v in child_env().items() if k != "IMROUTER_TOKEN"}
    proc = subprocess.run(
        [str(BIN / "twistd"), "-n", "--pidfile=", "imrouter", "--config", str(config)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=harness.COMMAND_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr == (
        f"imrouter: {config}: router.token: is required "
        "(or set the environment variable IMROUTER_TOKEN)\n"
    )


FIND_PLUGINS = """
from twisted.plugin import getPlugins
from twisted.application.service import IServiceMaker
for maker in getPlugins(IServiceMaker):
    print(maker.tapname)
"""


def test_the_installed_wheel_ships_the_plugin_and_defaults(tmp_path):
    out = run_command([str(VENV / "bin" / "python"), "-c", FIND_PLUGINS], cwd=tmp_path).stdout
    assert "imrouter" in out.split(), out
    help_text = run_command([str(BIN / "twistd"), "imrouter", "--help"], cwd=tmp_path).stdout
    assert "--config" in help_text
    files = {str(f) for f in importlib.metadata.files("imgateway") or ()}
    assert "twisted/plugins/imrouter_plugin.py" in files
    assert "gateway/routerd/defaults.toml" in files


def test_tls_with_certificate_verification(workdir, tmp_path):
    key, cert = self_signed(tmp_path)  # for the name "localhost" only
    local_rules = tmp_path / "local.toml"
    local_rules.write_text(RULES.format(name="local-billing"))
    router = start_router(workdir, tls=(key, cert))
    clients = [
        Client(f"https://localhost:{router.port}", local_rules, tls_ca=cert),
        # The certificate does not name 127.0.0.1; nor does the system trust it.
        Client(f"https://127.0.0.1:{router.port}", local_rules, tls_ca=cert),
        Client(f"https://localhost:{router.port}", local_rules),
    ]
    try:
        trusted, wrong_name, untrusted = (c.ask(topic="billing") for c in clients)
        assert (trusted["source"], trusted["rule"]) == ("remote", "router-billing"), trusted
        for reply in (wrong_name, untrusted):
            assert (reply["source"], reply["rule"]) == ("fallback", "local-billing"), reply
            assert reply["reason"].startswith("routing server failed TLS verification"), reply
            assert reply["elapsed_s"] <= 2 * DEADLINE_S + SLACK_S, reply
    finally:
        for client in clients:
            client.close()
        router.stop()


def test_the_example_config_is_valid_and_every_key_is_documented():
    from gateway.routerd.config import load
    from gateway.routerd.rulebook import RuleBook

    config = load(harness.REPO / "etc" / "imrouter.toml", environ={"IMROUTER_TOKEN": TOKEN})
    assert config.media["chat"] == harness.REPO / "etc" / "routing.toml"
    book = RuleBook(media=config.media, queues=config.queues)
    book.load()
    assert set(book.rules) == {"chat", "email", "voice", "task"}

    page = (harness.REPO / "docs" / "routing.md").read_text()
    section = page.split("## Enterprise routing server (twistd imrouter)", 1)[1]
    section = section.split("\n## ", 1)[0]
    keys = ("router.listen", "router.token", "router.queues", "router.max_body", "router.data_dir")
    keys += ("router.metrics", "router.service_level_s", "feed.texts", "feed.fsync")
    for key in (*keys, "feed.compact_after"):
        assert f"`{key}`" in section, key
    for key in ("logging.level", "media.NAME.rules", "media.NAME.enabled", "IMROUTER_TOKEN"):
        assert key in section, key


def test_a_gateway_process_routes_remotely_falls_back_and_comes_back(workdir, tmp_path):
    """twistd imgateway with routing.remote_url: the router decides; stopped, the
    gateway's local rules decide within the deadline; started again, the router again."""
    from jsonim_client import hello_customer

    local_rules = tmp_path / "local.toml"
    local_rules.write_text(RULES.format(name="local-billing"))
    router = start_router(workdir)
    port = router.port
    config = harness.write_config(tmp_path / "gw")
    config.write_text(
        config.read_text().replace(
            "[routing]\n",
            f'[routing]\nremote_url = "{router.url}"\nremote_token = "{TOKEN}"\n'
            f'remote_deadline_s = {DEADLINE_S}\nrules = "{local_rules}"\n',
        )
    )
    gateway = harness.start_gateway(tmp_path / "gw" / "cwd", config)

    def customer_is_planned_by(source: str, rule: str) -> None:
        mark = len(gateway.lines)
        customer = gateway.connect("customer")
        hello_customer(customer, identity={"name": "Dana"}, topic="billing")
        match = gateway.wait_for_log(
            r"conversation (c-[0-9a-f]+) planned by (\w+) rules: rule ([\w-]+)",
            HTTP_TIMEOUT_S,
            mark,
        )
        assert match.group(2, 3) == (source, rule), match.group(0)
        customer.close()

    try:
        customer_is_planned_by("remote", "router-billing")
        assert router.stop() in (0, -signal.SIGTERM)
        customer_is_planned_by("fallback", "local-billing")
        router = start_router(workdir, port)
        customer_is_planned_by("remote", "router-billing")
    finally:
        router.stop()
        gateway.stop()
