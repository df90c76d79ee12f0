"""A gateway with routing rules, provisioned agents and per-test connections, for
``test_routing.py``.

A :class:`RoutingSite` writes a gateway config and a routing rules file, provisions its
agents with ``imgateway-admin agent add`` and starts one real gateway from the installed
venv. Tests open agent and customer connections through it; :meth:`RoutingSite.hang_up_all`
closes every connection a test opened, so the next test starts with no agent logged in
and no customer waiting.

Negative checks ("this agent got no offer") use :func:`assert_no_offer`, which is exact
rather than timed: the gateway makes every offer that an arrival or a presence change
allows within the one reactor turn that handles it, before it answers anything sent
after; so once the frame that caused the matching has been answered, a ping on the
agent's connection is answered after any offer already written there.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import harness
from jsonim_client import JsonImClient, hello_agent, hello_customer

PASSWORD = "routing-Secret-1"
# Bounds for waits that should succeed quickly; timed waits add their own margin.
QUICK = 5.0
# How long a test waits for a hung-up connection to be closed by the gateway.
HANG_UP_TIMEOUT = 5.0
# Agents provisioned at once.
PROVISIONING_WORKERS = 4


def toml_string(value: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML escapes)."""
    return json.dumps(value, ensure_ascii=False)


@attrs.frozen
class AgentSpec:
    """An agent account to provision: ``imgateway-admin agent add`` flags."""

    name: str
    display_name: str
    skills: Mapping[str, int] = attrs.field(factory=dict)
    capacity: int | None = None
    location: str | None = None
    bot: bool = False

    def admin_args(self) -> list[str]:
        """The arguments after ``agent add``."""
        args = [self.name, "--password-stdin", "--display-name", self.display_name]
        for skill, level in self.skills.items():
            args += ["--skill", f"{skill}:{level}"]
        if self.capacity is not None:
            args += ["--capacity", str(self.capacity)]
        if self.location is not None:
            args += ["--location", self.location]
        if self.bot:
            args.append("--bot")
        return args


@attrs.define
class RoutingSite:
    """One running gateway with its config, its agents and the connections tests opened."""

    root: Path
    config: Path
    gateway: harness.Gateway
    agents: dict[str, AgentSpec]
    # Opened by the current test: (is an agent, connection).
    connections: list[tuple[bool, JsonImClient]] = attrs.Factory(list)

    @classmethod
    def start(
        cls,
        root: Path,
        config_text: str,
        rules_text: str | None,
        agents: Iterable[AgentSpec],
        *,
        params: Mapping[str, str] | None = None,
        extra_files: Mapping[str, str] | None = None,
    ) -> RoutingSite:
        """Write the files, provision the agents and start the gateway.

        ``config_text`` is a ``str.format`` template: ``{data_dir}`` and ``{rules}`` (the
        rules file) become TOML strings, ``{root}`` a path, and ``params`` fill the rest.
        ``extra_files`` (name -> text) are written under ``root`` first.
        """
        root.mkdir(parents=True, exist_ok=True)
        for name, text in (extra_files or {}).items():
            (root / name).write_text(text)
        rules = root / "routing.toml"
        if rules_text is not None:
            rules.write_text(rules_text)
        config = root / "imgateway.toml"
        config.write_text(
            config_text.format(
                data_dir=toml_string(str(root / "data")),
                rules=toml_string(str(rules) if rules_text is not None else ""),
                root=str(root),
                **(params or {}),
            )
        )
        specs = {a.name: a for a in agents}
        # A few at a time: each is a process that hashes a password (scrypt, slow on
        # purpose), and SQLite serialises their short writes.
        with ThreadPoolExecutor(max_workers=PROVISIONING_WORKERS) as pool:
            done = [
                pool.submit(
                    harness.admin, config, "agent", "add", *spec.admin_args(), stdin=PASSWORD + "\n"
                )
                for spec in specs.values()
            ]
            for future in done:
                future.result()
        gateway = harness.start_gateway(root / "cwd", config, name=root.name)
        return cls(root=root, config=config, gateway=gateway, agents=specs)

    def stop(self) -> None:
        """Close what is still open and stop the gateway."""
        for _, client in self.connections:
            client.close()
        self.connections.clear()
        self.gateway.stop()

    # -- connections ----------------------------------------------------------

    def connect(self, name: str, *, agent: bool = False) -> JsonImClient:
        """A new connection, closed by :meth:`hang_up_all`."""
        client = self.gateway.connect(name)
        self.connections.append((agent, client))
        return client

    def agent(
        self, name: str, *, features: Iterable[str] = ("typing",), status: str = "available"
    ) -> JsonImClient:
        """Log ``name`` in (password from provisioning) and set its presence."""
        assert name in self.agents, f"{name} is not provisioned on {self.gateway.name}"
        client = self.connect(name, agent=True)
        hello_agent(client, name, PASSWORD, features=features, status=status)
        return client

    def customer(
        self,
        name: str,
        topic: str,
        *,
        email: str | None = None,
        client: tuple[str, str] = ("itest-widget", "1.0"),
        features: Iterable[str] = ("typing",),
    ) -> JsonImClient:
        """A customer whose hello answers the interview (name, topic; e-mail if given).

        The identity name is on the agent's offer card, which is how a test tells its
        customers' offers apart before the conversation ids are known.
        """
        conn = self.connect(f"customer {name}")
        identity = {"name": name}
        if email is not None:
            identity["email"] = email
        hello_customer(
            conn,
            client_name=client[0],
            client_version=client[1],
            features=features,
            identity=identity,
            topic=topic,
        )
        return conn

    def hang_up_all(self) -> None:
        """Close every connection the test opened and wait until the gateway has closed
        them too, so that their agents are logged out and their conversations ended
        before the next test. Customers go first: an agent leaving first would have its
        conversations requeued and offered to the agents still there."""
        opened, self.connections = self.connections, []
        for _, client in sorted(opened, key=lambda pair: pair[0]):
            try:
                client.hang_up(HANG_UP_TIMEOUT)
            except (AssertionError, OSError):
                client.close()

    # -- the gateway's log ----------------------------------------------------

    def log_mark(self) -> int:
        """The number of log lines so far, for :meth:`log_line`'s ``start``."""
        return len(self.gateway.lines)

    def log_line(self, pattern: str, start: int = 0, timeout: float = QUICK) -> int:
        """The index of the first log line from ``start`` on matching ``pattern``,
        waiting up to ``timeout`` for it."""
        self.gateway.wait_for_log(pattern, timeout, start)
        regex = re.compile(pattern)
        lines = self.gateway.log().split("\n")
        return next(i for i in range(start, len(lines)) if regex.search(lines[i]))


# -- frames -------------------------------------------------------------------


def take_offer(agent: JsonImClient, customer_name: str, timeout: float = QUICK) -> dict:
    """The next offer to ``agent``, which must be for the customer of that identity name."""
    offer = agent.expect("offer", timeout)
    name = offer.get("customer", {}).get("identity", {}).get("name")
    assert name == customer_name, agent._describe(
        f"offer for {name!r}, expected one for {customer_name!r}: {offer}"
    )
    return offer


def accept(agent: JsonImClient, offer: dict, customer: JsonImClient | None = None) -> dict:
    """Accept ``offer``; return the agent's ``connected`` (with history).

    With ``customer``, also take the customer's ``connected`` for the same conversation.
    """
    conversation = offer["conversation"]
    agent.send({"type": "accept", "offer": offer["offer"]})
    connected = agent.expect("connected", QUICK, conversation=conversation)
    if customer is not None:
        customer.expect("connected", QUICK, conversation=conversation)
    return connected


def reject(agent: JsonImClient, offer: dict) -> None:
    """Decline ``offer`` and wait until the gateway has handled it."""
    agent.send({"type": "reject", "offer": offer["offer"]})
    agent.sync()


def assert_no_offer(agent: JsonImClient, why: str) -> None:
    """No offer has reached ``agent`` that a test has not taken (see the module doc)."""
    agent.sync(QUICK)
    offers = [f for f in agent.pending() if f.get("type") == "offer"]
    assert not offers, agent._describe(f"unexpected offer ({why}): {offers}")


def offered_conversations(agent: JsonImClient) -> list[str]:
    """Every conversation ever offered to ``agent``, in order."""
    return [f["conversation"] for f in agent.frames_of("offer")]


def history(connected: dict) -> list[tuple[str, str]]:
    """The (from, text) pairs of a ``connected`` frame's history."""
    return [(h.get("from"), h.get("text")) for h in connected.get("history", [])]


def system_texts(client: JsonImClient) -> list[str]:
    """Texts of every system message the client received."""
    return [f.get("text") for f in client.frames_of("message") if f.get("from") == "system"]


class Stopwatch:
    """Seconds since it was made, by the monotonic clock."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self.start
