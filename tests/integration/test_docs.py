"""Every example in README.md and docs/*.md is run, the way a user would run it.

An example is a fenced block whose language tag says what it is (docs/testing.md lists
them). A block without a tag, with a tag this file does not know, or an indented code
block fails, so no example goes untested:

- ``toml``: a gateway site file, loaded by ``gateway.config.load`` and checked as
  startup checks it (the routing rules and firewall rules files it names); run from a
  directory holding the repository's ``etc/``, so that the files it names exist;
- ``routing-toml``, ``faq-toml``, ``imrouter-toml``, ``firewall-rules``: parsed by the
  loader the gateway (or ``twistd imrouter``) uses;
- ``json``: JSON-IM frames, one per line, each decoded by the gateway's codec;
- ``prosody-lua``: the Component stanza, compared with the one the XMPP component
  tests run Prosody with;
- ``sh``: commands, run with bash in a directory laid out like a checkout after the
  quick start (``.venv`` is the test venv), against a gateway started there with the
  quick start's own command; the README's quick start is run as one walk-through;
- ``log``, ``json-log``, ``fail2ban``: compared with what that gateway logged.

Commands that cannot run here are checked instead, and listed in NOT_RUN with why.
A snippet whose comment names a secret's environment variable is loaded with that
variable set, as the comment tells the reader to do.
"""

from __future__ import annotations

import configparser
import functools
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import tomllib
import urllib.request
from datetime import datetime
from pathlib import Path

import doc_blocks
import harness
import pytest
import xmpp_peers
from doc_blocks import Block
from harness import REPO, VENV
from jsonim_client import JsonImClient

PAGES = ["README.md", *sorted(f"docs/{p.name}" for p in (REPO / "docs").glob("*.md"))]
PARSED = {name: doc_blocks.read_page(REPO, name) for name in PAGES}
BLOCKS = [block for page in PARSED.values() for block in page.blocks]

OFFLINE_TAGS = (
    "html",
    "toml",
    "routing-toml",
    "feed-json",
    "faq-toml",
    "imrouter-toml",
    "firewall-rules",
    "json",
    "prosody-lua",
    "haproxy-cfg",
)
LOG_TAGS = ("log", "json-log", "fail2ban")
TAGS = (*OFFLINE_TAGS, "sh", *LOG_TAGS, "text")

# ```text blocks are shown, not run: "page:first line" -> why. Keep this short.
TEXT_NOT_RUN: dict[str, str] = {
    "docs/architecture.md:GatewayService": "a drawing of the service tree; the tree is "
    "checked by test_layers.py::test_the_service_tree_is_as_the_architecture_page_draws_it",
}

# Commands that cannot run inside the test suite, and what is checked instead.
NOT_RUN = {
    "install": "the quick start's install-and-run line: ./tests/run does the same (a fresh "
    "venv, the wheel of this tree) and test_installed.py checks the venv; here it is "
    "compared with them, and its last part starts this file's gateway",
    "suite": "./tests/run runs this very suite; here its paths and variables are checked",
    "nc": "interactive: the frames typed into it are the README's json blocks, which the "
    "walk-through sends to a gateway; here its address is checked against the default",
    "bench": "benchmarks run for minutes on a quiet host; here the script and every option "
    "the command names are checked against its --help",
    "cluster": "a cluster needs Redis, PostgreSQL and HAProxy on the hosts its files name; "
    "test_cluster.py runs that setup on loopback; here the programs must be installed, "
    "haproxy checks its file, and the node's site file loads as a cluster node's",
}

QUICK_START = "Quick start"
WAIT = 20.0
SECRET_ENV = (
    "IMGATEWAY_XMPP_SECRET",
    "IMGATEWAY_IRC_BOT_PASSWORD",
    "IMGATEWAY_ROUTER_TOKEN",
    "IMGATEWAY_DB_DSN",
    "IMGATEWAY_REDIS_URL",
    "IMGATEWAY_ADMIN_TOKEN",
    "IMGATEWAY_ADMIN_URL",
    "IMROUTER_TOKEN",
)
ROUTER_TOKEN = "docs-router-token-0123456789"

# The gateway of the sh examples: the packaged defaults, as in the quick start, except
# ports the system picks (suites run side by side), JSON logs for the json-log example,
# connection summary lines, a rule that drops one loopback address for the fail2ban
# example, and the set the firewall examples edit.
SITE_CONFIG = """\
[listeners]
jsonim = ["tcp:0:interface=127.0.0.1"]

[admin]
listen = ["tcp:0:interface=127.0.0.1"]
metrics = ["tcp:0:interface=127.0.0.1"]

[logging]
format = "json"

[firewall]
rules = "etc/docs-test.rules"
log_connections = true
"""
SITE_RULES = """\
set blocked { type addr; elements = { 203.0.113.0/24 } }
chain input { policy accept; ip saddr 127.0.0.2 drop; }
"""
DROPPED = "127.0.0.2"
# The documented default ports, replaced by the ones the test gateway bound.
DEFAULT_PORTS = {"7070": "jsonim", "7071": "admin", "9464": "metrics"}


def _blocks(*tags: str, quick_start: bool | None = None) -> list[Block]:
    out = [b for b in BLOCKS if b.tag in tags]
    if quick_start is not None:
        out = [b for b in out if _in_quick_start(b) == quick_start]
    return out


def _in_quick_start(block: Block) -> bool:
    return block.page == "README.md" and block.section[:1] == (QUICK_START,)


def _ids(blocks: list[Block]) -> list[str]:
    return [b.id for b in blocks]


# -- every example is a fenced block with a known tag -----------------------------------


def test_every_example_is_a_fenced_block_with_a_known_tag():
    problems = []
    for page in PARSED.values():
        for line in doc_blocks.indented_code(page):
            problems.append(f"{page.name}:{line}: an indented code block; fence it with a tag")
        for block in page.blocks:
            if block.fence != "```":
                problems.append(f"{block.id}: fence with ```, not {block.fence}")
            if block.tag not in TAGS:
                problems.append(f"{block.id}: unknown tag; known: {', '.join(TAGS)}")
    texts = {f"{b.page}:{b.text.splitlines()[0]}" for b in _blocks("text")}
    problems += [f"{t}: a text block not listed in TEXT_NOT_RUN" for t in texts - set(TEXT_NOT_RUN)]
    problems += [f"{t}: listed in TEXT_NOT_RUN but gone" for t in set(TEXT_NOT_RUN) - texts]
    assert not problems, "\n".join(problems)


# -- blocks checked without a gateway ----------------------------------------------------


def _checkout_like(directory: Path) -> Path:
    """A directory holding a copy of the repository's etc/, as a checkout has it."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "etc", directory / "etc", dirs_exist_ok=True)
    return directory


def _named_secrets(text: str) -> dict[str, str]:
    """The secrets' environment variables a snippet's comments tell the reader to set."""
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    return {name: f"{name.lower()}-from-the-environment" for name in SECRET_ENV if name in comments}


@pytest.fixture
def clean_env(monkeypatch):
    """No secrets from the environment the suite runs in."""
    for name in SECRET_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _check_site_config(block: Block, work: Path, monkeypatch) -> None:
    from firewall import ruleset
    from gateway import config
    from gateway.app.service import load_rules

    for name, value in _named_secrets(block.text).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(work)  # relative names (etc/faq.toml) resolve as at startup
    site = work / "site.toml"
    site.write_text(block.text)
    loaded = config.load(site)
    # What startup reads next: the routing rules and the firewall rules files.
    load_rules(loaded)
    rules = loaded.sections["firewall"].rules
    if rules is not None:
        ruleset.parse(rules.read_text("utf-8"), str(rules))


def _check_haproxy_config(text: str, path: Path) -> None:
    """``haproxy -c -f``: HAProxy's own check of a configuration file."""
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    assert Path(haproxy).exists(), "haproxy is not installed (tests/run installs it)"
    path.write_text(text)
    done = subprocess.run(
        [haproxy, "-c", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=harness.COMMAND_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"haproxy -c -f: {done.stdout}{done.stderr}"


def _default_queues() -> frozenset[str]:
    from gateway import config

    return frozenset(config.load(cwd=REPO / "docs").queues)


def _check_routing_rules(block: Block, work: Path) -> None:
    from gateway.routing.rules import RuleSet

    path = work / "routing.toml"
    path.write_text(block.text)
    # The queues a target may name: the packaged defaults' queues.
    RuleSet.load(path, queues=_default_queues())


def _check_knowledge(block: Block, work: Path) -> None:
    from gateway.bots import knowledge

    path = work / "faq.toml"
    path.write_text(block.text)
    assert knowledge.load(path).entries


def _check_router_config(block: Block, work: Path) -> None:
    from gateway.routerd.config import load
    from gateway.routerd.rulebook import RuleBook

    path = work / "etc" / "imrouter-example.toml"
    path.write_text(block.text)
    router = load(path, cwd=work, environ=_named_secrets(block.text))
    RuleBook(media=router.media, queues=router.queues).load()


def _check_feed_batch(block: Block) -> None:
    from gateway.routerd.ingest import Batch
    from gateway.routing.feed import EVENT_TYPES

    batch = Batch.parse(json.loads(block.text))
    for event in batch.events:
        assert event["type"] in EVENT_TYPES, f"{block.id}: no event type: {event}"
    # The page's table of event types names every type the gateway sends, and no other.
    page = (REPO / block.page).read_text()
    rows = page.split("| Type | Fields | When |", 1)[1].split("\n\n", 1)[0]
    listed = set()
    for line in rows.splitlines()[2:]:
        listed |= set(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    assert listed == set(EVENT_TYPES), sorted(listed ^ set(EVENT_TYPES))


def _check_firewall_rules(block: Block) -> None:
    from firewall import ruleset

    rules = ruleset.parse(block.text, block.id)
    assert list(rules.rules()), f"{block.id}: no rules"


# The frame types of the JSON-IM/1 spec: client frames, then server frames; then those of
# the proposed extensions the gateway implements (docs/jsonim-web.md).
JSONIM_TYPES = frozenset(
    "hello message typing end presence accept reject transfer ping pong".split()
    + "welcome prompt queued connected ack ended offer revoked error".split()
    + ["receipt"]
    # The service desk's proposed additions (docs/jsonim.md): agent requests, answers.
    + "live monitor barge leave team agent_state consult conference wrap_up note".split()
    + "history canned canned_list tasks task_reply task_release result task".split()
)


def _frames(block: Block) -> list[str]:
    return [line for line in block.text.splitlines() if line.strip()]


def _check_jsonim_frames(block: Block) -> None:
    from protocols.jsonim.codec import DecodeError, decode

    for line in _frames(block):
        try:
            frame = decode(line.encode("utf-8"))
        except DecodeError as e:
            raise AssertionError(
                f"{block.id}: not a JSON-IM frame ({e.code}: {e}): {line}"
            ) from None
        assert frame["type"] in JSONIM_TYPES, f"{block.id}: no JSON-IM frame type: {line}"


_COMPONENT = re.compile(r'Component "([^"]+)"\n {4}component_secret = "([^"]+)"')


def _check_html(block: Block) -> None:
    """An embed snippet: well-formed, and its widget attributes are ones the widget reads."""
    from html.parser import HTMLParser

    tags: list[tuple[str, dict]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append((tag, dict(attrs)))

    Collect().feed(block.text)
    assert tags, f"{block.id}: no element"
    widget = (REPO / "protocols" / "web" / "static" / "widget.js").read_text()
    for tag, attrs in tags:
        assert tag in ("script", "meta"), f"{block.id}: <{tag}> is no embed snippet"
        if tag == "script":
            assert attrs.get("src", "").endswith("/widget.js"), f"{block.id}: {attrs}"
            for name in attrs:
                if name.startswith("data-"):
                    key = name.removeprefix("data-")
                    assert f"dataset.{key}" in widget or name in widget, f"{block.id}: {name}"
        else:
            assert attrs.get("http-equiv") == "Content-Security-Policy", f"{block.id}: {attrs}"
            directives = dict(d.strip().split(" ", 1) for d in attrs["content"].split(";"))
            assert {"script-src", "style-src", "connect-src"} <= directives.keys()


def _check_prosody_component(block: Block) -> None:
    code = "\n".join(re.sub(r"\s*--.*$", "", line) for line in block.text.splitlines())
    match = _COMPONENT.fullmatch(code.strip())
    assert match, f"{block.id}: not one Component stanza with its component_secret"
    domain, secret = match.groups()
    # The stanza the XMPP component tests start Prosody with, filled the same way.
    tested = xmpp_peers.PROSODY_CONFIG.split("\n\n")[-1].strip()
    assert tested == 'Component "{component}"\n    component_secret = "{secret}"', tested
    assert code.strip() == tested.format(component=domain, secret=secret), code
    # It names the component domain of the page's own [xmpp] example.
    domains = {
        tomllib.loads(b.text).get("xmpp", {}).get("domain")
        for b in PARSED[block.page].blocks
        if b.tag == "toml"
    }
    assert domain in domains, f"{block.id}: {domain} is no [xmpp] domain of {block.page}"


@pytest.mark.parametrize("block", _blocks(*OFFLINE_TAGS), ids=_ids(_blocks(*OFFLINE_TAGS)))
def test_offline_example(block, tmp_path, clean_env):
    work = _checkout_like(tmp_path / "checkout")
    if block.tag == "toml":
        _check_site_config(block, work, clean_env)
    elif block.tag == "routing-toml":
        _check_routing_rules(block, work)
    elif block.tag == "feed-json":
        _check_feed_batch(block)
    elif block.tag == "faq-toml":
        _check_knowledge(block, work)
    elif block.tag == "imrouter-toml":
        _check_router_config(block, work)
    elif block.tag == "firewall-rules":
        _check_firewall_rules(block)
    elif block.tag == "json":
        _check_jsonim_frames(block)
    elif block.tag == "haproxy-cfg":
        _check_haproxy_config(block.text, work / "haproxy.cfg")
    elif block.tag == "html":
        _check_html(block)
    else:
        _check_prosody_component(block)


# -- processes: the gateway of the examples, and servers the examples start -------------


class Server:
    """A command run with bash in a directory, its output read by a thread."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str], name: str) -> None:
        self.name, self.command, self.cwd = name, command, cwd
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._done = False
        # exec: the server is the process signalled, and its status is the one seen.
        script = re.sub(r"^((?:[A-Z_][A-Z0-9_]*=\S*\s+)*)", r"\1exec ", command)
        self.proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=harness._die_with_parent,
        )
        harness.RUNNING.append(self)
        threading.Thread(target=self._read, name=f"{name}-log", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._done = True
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = WAIT) -> re.Match:
        """The first output line matching ``pattern``, waiting up to ``timeout``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        index = 0
        with self._changed:
            while True:
                for line in self.lines[index:]:
                    match = regex.search(line)
                    if match:
                        return match
                index = len(self.lines)
                remaining = deadline - time.monotonic()
                if self._done or remaining <= 0:
                    why = "exited" if self._done else f"did not print it within {timeout:g}s"
                    raise AssertionError(f"{self.name} {why}: /{pattern}/\n{self.log_tail()}")
                self._changed.wait(remaining)

    def wait_serving(self) -> None:
        """Wait until the server answers on its first listener: its reactor runs, and its
        signal handlers are in place (a SIGTERM before then kills it where it stands)."""
        match = self.wait_for(r"(\w+) (?:listener \S+ )?listening on 127\.0\.0\.1:(\d+)")
        kind, port = match.group(1), int(match.group(2))
        if kind == "imrouter":
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=WAIT) as r:
                assert json.load(r)["status"] == "ok"
            return
        assert kind == "jsonim", match.string
        client = JsonImClient(port, name=f"{self.name}-probe")
        client.send({"type": "ping", "id": "probe"})  # before hello: refused, and closed
        assert client.expect("error", WAIT)["code"] == "not_allowed"
        client.close()

    def port(self, kind: str) -> int:
        """The loopback port a listener (jsonim, admin, metrics) bound, from its log line."""
        return int(self.wait_for(rf"{kind} listener .* listening on 127\.0\.0\.1:(\d+)").group(1))

    def stop(self) -> None:
        """SIGTERM; it must stop cleanly within the deadline."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(WAIT)
            raise AssertionError(f"{self.name}: no exit {WAIT:g}s after SIGTERM") from None
        finally:
            if self in harness.RUNNING:
                harness.RUNNING.remove(self)
        # twistd ends by raising the signal it stopped on again, as a clean stop.
        assert status in (0, -signal.SIGTERM), f"{self.name}: exit {status}\n{self.log_tail()}"
        self.wait_for("Main loop terminated")

    def log_tail(self, count: int = 150) -> str:
        """The last output lines, headed by the command."""
        with self._changed:
            tail = self.lines[-count:]
        return "\n".join([f"--- {self.name}: {self.command} (cwd {self.cwd})", *tail, "---"])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in harness.child_env().items() if k not in SECRET_ENV}
    env["PATH"] = f"{VENV / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env.update(extra)
    return env


def _site_dir(directory: Path) -> Path:
    """A checkout after the quick start: etc/ (on test ports), and .venv the test venv."""
    _checkout_like(directory)
    (directory / ".venv").symlink_to(VENV)
    (directory / "etc" / "imgateway.toml").write_text(SITE_CONFIG)
    (directory / "etc" / "docs-test.rules").write_text(SITE_RULES)
    router = directory / "etc" / "imrouter.toml"
    text = router.read_text()
    listen = 'listen = ["tcp:7080:interface=127.0.0.1"]'
    assert listen in text, "etc/imrouter.toml changed its listen line"
    router.write_text(text.replace(listen, 'listen = ["tcp:0:interface=127.0.0.1"]'))
    return directory


def _readme_commands() -> list[str]:
    return [c for b in _blocks("sh", quick_start=True) for c in doc_blocks.commands(b)]


def _quick_start_run() -> str:
    """The last part of the quick start's install line: how the gateway is started."""
    return _readme_commands()[0].split(" && ")[-1]


class Site:
    """The directory of the examples and the gateway running in it."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.gateway = Server(_quick_start_run(), directory, _env(), "gateway")
        self.gateway.wait_serving()
        self.ports = {kind: self.gateway.port(kind) for kind in DEFAULT_PORTS.values()}
        self.env = _env(IMGATEWAY_ADMIN_URL=f"http://127.0.0.1:{self.ports['admin']}")

    def run(self, command: str, fill: dict[str, str] | None = None) -> str:
        """Run one example command in the directory; its output, or fail with it."""
        for placeholder, value in (fill or {}).items():
            command = command.replace(placeholder, value)
        proc = subprocess.run(
            ["bash", "-c", command],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=harness.COMMAND_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, (
            f"{command}\nexited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
        return proc.stdout

    def json_log(self) -> list[dict]:
        """The gateway's JSON log lines so far."""
        path = self.dir / "imgateway-data" / "imgateway.log.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = Site(_site_dir(tmp_path_factory.mktemp("site")))
    yield site
    site.gateway.stop()


# -- the README's quick start ------------------------------------------------------------


def test_the_quick_start_commands_are_the_tested_ones():
    install, suite, *_ = _readme_commands()
    assert (
        install
        == "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/twistd -n imgateway"
    )
    assert suite == "./tests/run"
    # CI runs the same command; it makes a venv with python3 and installs this tree.
    assert 'exec ./tests/run "$@"' in (REPO / ".ci" / "run").read_text()
    run = (REPO / "tests" / "run").read_text()
    for part in ("python=${PYTHON:-python3}", '"$python" -m venv "$venv"', "build --wheel"):
        assert part in run, part
    assert re.search(r'-m pip install .*"\$\{wheels\[0\]\}"', run), "tests/run installs the wheel"
    # The installed venv has the programs the quick start runs (test_installed.py), and
    # the integration tests start the gateway as the quick start does.
    installed = (REPO / "tests" / "integration" / "test_installed.py").read_text()
    assert '"twistd"' in installed and '"imgateway-admin"' in installed
    gateway = (REPO / "tests" / "integration" / "harness.py").read_text()
    assert 'args = [str(BIN / "twistd"), "-n",' in gateway and '"imgateway"]' in gateway


@pytest.fixture(scope="module")
def walk(site):
    """The README's quick start, from provisioning the agent to reading the transcript."""
    blocks = [b for b in BLOCKS if _in_quick_start(b)]
    tags = [b.tag for b in blocks]
    assert tags == ["sh", "sh", "sh", "sh", "json", "json", "json", "json", "json", "json", "sh"]
    _, _, provision, nc, agent_login, customer_hello, answers, accept, says, answer, read = blocks
    for command in doc_blocks.commands(provision):
        site.run(command)
    [alias] = re.findall(r"--display-name (\S+)", provision.text)
    for command in doc_blocks.commands(nc):
        _check_nc(command)

    def paste(client: JsonImClient, line: str) -> None:
        client.send_raw(line.encode("utf-8") + b"\n")

    agent = JsonImClient(site.ports["jsonim"], name="agent")
    login, presence = _frames(agent_login)
    paste(agent, login)
    agent.expect("welcome")
    paste(agent, presence)
    agent.sync()

    customer = JsonImClient(site.ports["jsonim"], name="customer")
    [hello] = _frames(customer_hello)
    paste(customer, hello)
    customer.expect("welcome")
    customer.expect("prompt", field="name")
    name, topic = _frames(answers)
    paste(customer, name)
    customer.expect("prompt", field="topic")
    paste(customer, topic)
    customer.expect("queued")

    offer = agent.expect("offer")
    [accept_line] = _frames(accept)
    assert '"o-..."' in accept_line
    paste(agent, accept_line.replace("o-...", offer["offer"]))
    conversation = agent.expect("connected")["conversation"]
    assert customer.expect("connected")["agent"] == {"alias": alias}

    [hi] = _frames(says)
    paste(customer, hi)
    customer.expect("ack", id=json.loads(hi)["id"])
    asked = json.loads(hi)["text"]
    assert agent.expect("message", conversation=conversation)["text"] == asked
    reply, end = _frames(answer)
    for line in (reply, end):
        assert '"c-..."' in line
        paste(agent, line.replace("c-...", conversation))
    agent.expect("ack", id=json.loads(reply)["id"])
    said = customer.expect("message", **{"from": "agent"})["text"]
    assert said == json.loads(reply)["text"]
    assert customer.expect("ended")["reason"] == "agent"
    agent.expect("ended", conversation=conversation)
    agent.close()
    customer.close()

    listing, transcript = (site.run(c, {"c-...": conversation}) for c in doc_blocks.commands(read))
    return {
        "conversation": conversation,
        "listing": listing,
        "transcript": transcript,
        # What the customer and the agent wrote, as the transcript shows it.
        "lines": [
            *(f"customer: {json.loads(frame)['text']}" for frame in (name, topic, hi)),
            f"agent ({json.loads(login)['auth']['user']}): {said}",
        ],
    }


def test_the_quick_start_walk_through(walk):
    assert walk["conversation"] in walk["listing"]
    header, routing, *lines = walk["transcript"].splitlines()
    assert header.startswith(f"conversation {walk['conversation']}: "), header
    assert header.endswith("(agent)"), header  # the agent ended it
    # The routing decision behind the agent: the packaged rules' default workflow.
    assert routing.startswith("routing: rule default, target 1 (longest_idle)"), routing
    said = [line.split("] ", 1)[1] for line in lines if "] system: " not in line]
    assert said == walk["lines"], walk["transcript"]


# -- the other commands ------------------------------------------------------------------


def _kind(command: str) -> str:
    if command == _readme_commands()[0]:
        return "install"
    if re.match(r"^(\w+=\S+ )*\./tests/run\b", command):
        return "suite"
    if command.startswith("nc "):
        return "nc"
    if re.match(r"^(bench/run |PYTHONPATH=\. \.venv/bin/python bench/)", command):
        return "bench"
    if command.startswith(("redis-server ", "haproxy ")) or "etc/cluster-node.toml" in command:
        return "cluster"
    if re.match(r"^(\w+=\S+ )*(\.venv/bin/)?twistd ", command):
        return "server"
    if "imgateway-admin " in command:
        return "admin"
    if command.startswith("curl "):
        return "curl"
    raise AssertionError(f"no way to run this command in test_docs.py: {command}")


def _check_nc(command: str) -> None:
    from gateway import config

    [endpoint] = config.load(cwd=REPO / "docs").listeners["jsonim"]
    assert endpoint == "tcp:7070:interface=127.0.0.1", endpoint
    assert command == "nc 127.0.0.1 7070", command


def _check_suite(command: str) -> None:
    run = (REPO / "tests" / "run").read_text()
    for name in re.findall(r"(\w+)=\S+ ", command):
        assert f"{name}:" in run or f"${name}" in run, f"tests/run reads no {name}"
    for arg in command.split()[1:]:
        if "/" in arg and not arg.startswith("-") and "=" not in arg:
            assert (REPO / arg).exists(), arg


@functools.cache
def _bench_help(script: str) -> str:
    proc = subprocess.run(
        [str(VENV / "bin" / "python"), str(REPO / "bench" / script), "--help"],
        capture_output=True,
        text=True,
        timeout=harness.COMMAND_TIMEOUT,
        env=harness.child_env(),
        cwd=REPO / "bench",
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"bench/{script} --help: {proc.stdout}{proc.stderr}"
    return proc.stdout


def _check_bench(command: str) -> None:
    match = re.match(
        r"^(?:bench/run |PYTHONPATH=\. \.venv/bin/python bench/)(\S+\.py)(.*)$", command
    )
    assert match, command
    script, args = match.groups()
    assert (REPO / "bench" / script).is_file(), script
    assert os.access(REPO / "bench" / "run", os.X_OK)
    options = _bench_help(script)
    for option in re.findall(r"(?<!\S)(--[\w-]+)", args):
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", options), (
            f"bench/{script} has no {option}"
        )


def _check_cluster(command: str) -> None:
    from gateway import config

    program = command.split()[0]
    if program in ("redis-server", "haproxy"):
        assert shutil.which(program) or Path(f"/usr/sbin/{program}").exists(), (
            f"{program} is not installed (tests/run installs it)"
        )
    if program == "haproxy":
        path = command.split("-f", 1)[1].split()[0]
        _check_haproxy_config((REPO / path).read_text(), Path(tempfile.mkdtemp()) / "h.cfg")
        return
    if program == "redis-server":
        assert re.fullmatch(r"redis-server( --[\w-]+ \S+)+", command), command
        return
    path = command.split("--config", 1)[1].split()[0]
    loaded = config.load(REPO / path)
    assert loaded.sections["cluster"].redis and loaded.sections["store"].backend == "postgresql"


def _run_server(command: str, directory: Path) -> None:
    """Start a server example in a checkout of its own; it listens, and stops on SIGTERM."""
    command = command.replace("IMROUTER_TOKEN=…", f"IMROUTER_TOKEN={ROUTER_TOKEN}")
    assert "…" not in command, command
    server = Server(command, _site_dir(directory), _env(), command.split()[-1])
    try:
        line = server.wait_for(r"listening on 127\.0\.0\.1:\d+").string
        if "--logger gateway.logs.json_observer" in command:
            assert json.loads(line)["text"], line
        server.wait_serving()
    finally:
        server.stop()


def _run_curl(site: Site, command: str) -> None:
    for port, kind in DEFAULT_PORTS.items():
        command = command.replace(f"127.0.0.1:{port}", f"127.0.0.1:{site.ports[kind]}")
    out = site.run(command)
    if "/v1/" in command:  # the admin API answers JSON, and curl exits 0 on a 401 too
        answer = json.loads(out)
        assert not (isinstance(answer, dict) and "error" in answer), answer


SH_BLOCKS = _blocks("sh", quick_start=False)


@pytest.mark.parametrize("block", SH_BLOCKS, ids=_ids(SH_BLOCKS))
def test_command_example(block, site, tmp_path):
    checks = {
        "suite": _check_suite,
        "nc": _check_nc,
        "bench": _check_bench,
        "cluster": _check_cluster,
    }
    assert checks.keys() == NOT_RUN.keys() - {"install"}
    for i, command in enumerate(doc_blocks.commands(block)):
        kind = _kind(command)
        if kind == "install":
            raise AssertionError(f"{block.id}: the install line belongs to the quick start")
        if kind in NOT_RUN:
            checks[kind](command)
        elif kind == "server":
            _run_server(command, tmp_path / f"checkout-{i}")
        elif kind == "curl":
            _run_curl(site, command)
        else:
            site.run(command)


def test_the_readme_performance_figures_name_their_command():
    table = PARSED["README.md"].section_text("Performance")
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    header, *figures = rows
    assert header.split("|")[-2].strip() == "Command", header
    assert figures, "no figures"
    for row in figures:
        cell = row.split("|")[-2].strip()
        assert cell.startswith("`") and cell.endswith("`"), f"no command: {row}"
        assert _kind(cell.strip("`")) == "bench", row
        _check_bench(cell.strip("`"))


# -- what the gateway logged -------------------------------------------------------------


@pytest.fixture(scope="module")
def provoked(site, walk):
    """A refused agent login and a dropped connection, for the log examples."""
    client = JsonImClient(site.ports["jsonim"], name="wrong-password")
    hello = {
        "type": "hello",
        "protocol": "jsonim/1",
        "role": "agent",
        "client": {"name": "nc", "version": "1"},
        "auth": {"user": "anna", "password": "not-her-password"},
    }
    client.send(hello)
    assert client.expect("error")["code"] == "auth_failed"
    client.close()
    with socket.socket() as sock:
        sock.bind((DROPPED, 0))
        sock.settimeout(WAIT)
        try:
            # The drop (a reset) may reach the socket before connect() has returned.
            sock.connect(("127.0.0.1", site.ports["jsonim"]))
            assert sock.recv(1) == b""
        except ConnectionResetError:
            pass
    site.gateway.wait_for(rf"firewall drop address={re.escape(DROPPED)} ")
    site.gateway.wait_for(r"auth failure protocol=jsonim user=anna address=127\.0\.0\.1$")
    return site


def _line_pattern(sample: str) -> re.Pattern:
    """A log line of the sample's shape: the same words and keys, any values."""
    parts = [
        re.escape(word.split("=", 1)[0]) + r"=\S*" if "=" in word else re.escape(word)
        for word in sample.split(" ")
    ]
    return re.compile(" ".join(parts))


def _check_log(block: Block, site: Site) -> None:
    records = [r["text"] for r in site.json_log()]
    for sample in block.text.splitlines():
        pattern = _line_pattern(sample)
        assert any(re.search(pattern.pattern + "$", line) for line in site.gateway.lines), (
            f"{block.id}: the gateway logged no line like {sample}"
        )
        assert any(pattern.fullmatch(text) for text in records), (
            f"{block.id}: the JSON log has no line like {sample}"
        )


def _value_matches(sample, value) -> bool:
    if isinstance(sample, str) and "…" in sample:
        pattern = r"\S+".join(re.escape(part) for part in sample.split("…"))
        return isinstance(value, str) and re.fullmatch(pattern, value) is not None
    return sample == value


def _check_json_log(block: Block, site: Site) -> None:
    records = site.json_log()
    for line in block.text.splitlines():
        sample = json.loads(line)
        datetime.fromisoformat(sample["time"])
        wanted = {k: v for k, v in sample.items() if k != "time"}
        found = [
            r
            for r in records
            if r.keys() == sample.keys() and all(_value_matches(v, r[k]) for k, v in wanted.items())
        ]
        assert found, f"{block.id}: the JSON log has no line like {line}"
        datetime.fromisoformat(found[0]["time"])


def _check_fail2ban(block: Block, site: Site) -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(block.text)
    regexes = [r for r in parser["Definition"]["failregex"].splitlines() if r.strip()]
    caught = set()
    for regex in regexes:
        compiled = re.compile(regex.strip().replace("<HOST>", r"(?P<host>\S+)"))
        hosts = {m.group("host") for line in site.gateway.lines if (m := compiled.search(line))}
        assert hosts, f"{block.id}: {regex} catches no line of the gateway's log"
        caught |= {str(ipaddress.ip_address(h)) for h in hosts}
    assert caught == {"127.0.0.1", DROPPED}, caught


LOG_BLOCKS = _blocks(*LOG_TAGS)


@pytest.mark.parametrize("block", LOG_BLOCKS, ids=_ids(LOG_BLOCKS))
def test_log_example(block, provoked):
    {"log": _check_log, "json-log": _check_json_log, "fail2ban": _check_fail2ban}[block.tag](
        block, provoked
    )


# -- links, paths and module names ---------------------------------------------------------


def test_links_lead_to_pages_and_headings_that_exist():
    problems = []
    for page in PARSED.values():
        base = (REPO / page.name).parent
        for line, target in page.links():
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = (base / path).resolve() if path else REPO / page.name
            if not resolved.exists():
                problems.append(f"{page.name}:{line}: {target}: no such file")
                continue
            if anchor:
                name = resolved.relative_to(REPO).as_posix()
                if name not in PARSED or anchor not in PARSED[name].anchors():
                    problems.append(f"{page.name}:{line}: {target}: no such heading")
    assert not problems, "\n".join(problems)


def _setting_keys() -> set[str]:
    keys = set()
    for page in PARSED.values():
        for _, line in page.prose:
            if match := re.match(r"^\| `([^`]+)` \|", line):
                keys.add(match.group(1))
    return keys


def test_paths_and_python_names_in_the_text_exist():
    import importlib

    keys = _setting_keys()
    problems = []
    for page in PARSED.values():
        for line, code in page.inline_code():
            where = f"{page.name}:{line}: `{code}`"
            if re.fullmatch(
                r"(gateway|protocols|firewall|tests|bench|etc|twisted|docs|\.ci)/[\w./-]*", code
            ):
                if not (REPO / code).exists():
                    problems.append(f"{where}: no such file in the repository")
            elif re.fullmatch(r"(gateway|protocols|firewall)(\.\w+)+", code) and code not in keys:
                parts = code.split(".")
                for n in range(len(parts), 0, -1):
                    try:
                        found = importlib.import_module(".".join(parts[:n]))
                    except ImportError:
                        continue
                    try:
                        functools.reduce(getattr, parts[n:], found)
                    except AttributeError:
                        problems.append(f"{where}: no such name")
                    break
                else:
                    problems.append(f"{where}: no such module")
    assert not problems, "\n".join(problems)


def test_the_map_and_the_index_lead_to_every_page():
    pages = {p for p in PAGES if p.startswith("docs/")}
    mapped = {
        t.partition("#")[0] for t in doc_blocks.links_in(PARSED["README.md"].section_text("Map"))
    }
    assert pages <= mapped, f"README.md's Map does not link {sorted(pages - mapped)}"
    index = {f"docs/{t.partition('#')[0]}" for _, t in PARSED["docs/index.md"].links()}
    assert pages - {"docs/index.md"} <= index, sorted(pages - {"docs/index.md"} - index)
    for name in pages:
        levels = [level for level, _ in PARSED[name].headings]
        assert levels.count(1) == 1 and levels[0] == 1, f"{name}: one H1, first"
