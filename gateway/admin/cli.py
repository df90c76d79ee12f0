"""``imgateway-admin``: provision agents and read conversations and transcripts.

Works on the database directly, through the store engine ``[store]`` selects
(gateway.store.engine_for: ``data_dir/imgateway.sqlite3`` or a PostgreSQL
server), so it can run beside a running gateway: the database's locking (and
SQLite's busy timeout) keep the two apart. Exit status: 0 done, 1 the operation
failed, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from gateway import config as config_module
from gateway.admin import desk_cli, firewall_cli, teams_cli
from gateway.admin.live import Failed as LiveFailed
from gateway.admin.live import add_commands as add_live_commands
from gateway.admin.terminal import clean, iso, print_json, print_table
from gateway.config import Config, ConfigError
from gateway.core.events import Decision
from gateway.passwords import hash_password, scram_credentials
from gateway.plugins import adapters
from gateway.store import engine_for
from gateway.store.errors import AddressTaken, AgentExists, DatabaseError, StoreError
from gateway.store.interfaces import IEngine
from gateway.store.records import AgentRecord, ConversationRecord, StoredMessage

PROG = "imgateway-admin"
MAX_SKILL_LEVEL = 5
MAX_CAPACITY = 1000
MAX_DISPLAY_NAME = 64
DEFAULT_LIMIT = 20

_AGENT_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SKILL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

# When an agent account was created; replaced in tests.
_clock: Callable[[], float] = time.time


class _Failed(Exception):
    """The operation failed: exit status 1."""


class _Usage(Exception):
    """The command line asks for something impossible: exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one admin command; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        # argparse has printed usage or help; keep its status (2 or 0).
        return e.code if isinstance(e.code, int) else 2
    try:
        cfg = config_module.load(args.config)
    except ConfigError as e:
        _error(str(e))
        return 2
    try:
        args.run(args, cfg)
    except _Usage as e:
        _error(str(e))
        return 2
    except DatabaseError as e:
        _error(f"database error: {e}")
        return 1
    except (_Failed, StoreError, LiveFailed) as e:
        _error(str(e))
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    # --config is accepted before or after the command: every subparser has it
    # too, with no default, so a subparser never overwrites a value given earlier.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=_CONFIG_HELP)

    parser = argparse.ArgumentParser(
        prog=PROG, description="Manage imgateway agents and read its conversations."
    )
    parser.add_argument("--config", metavar="PATH", default=None, help=_CONFIG_HELP)
    commands = parser.add_subparsers(metavar="COMMAND", required=True)

    agent = commands.add_parser("agent", parents=[common], help="manage agent accounts")
    actions = agent.add_subparsers(metavar="ACTION", required=True)

    add = actions.add_parser("add", parents=[common], help="provision an agent account")
    add.add_argument("name", metavar="NAME", type=_agent_name, help="the account name")
    add.add_argument(
        "--skill",
        metavar="SKILL:LEVEL",
        type=_skill,
        action="append",
        default=[],
        help=f"a skill and its level, 0-{MAX_SKILL_LEVEL}; repeat for several",
    )
    add.add_argument(
        "--capacity",
        metavar="N",
        type=_capacity,
        help="concurrent conversations (default: agents.default_capacity)",
    )
    add.add_argument(
        "--display-name",
        metavar="ALIAS",
        help="the name customers see (default: 'Agent' and four random hex digits)",
    )
    add.add_argument(
        "--location",
        choices=("lan", "remote"),
        default="lan",
        help="where the agent works, for routing rules (default: lan)",
    )
    add.add_argument("--bot", action="store_true", help="an automated agent, not a person")
    add.add_argument(
        "--capacity-for",
        metavar="PROTO:N",
        type=_protocol_capacity,
        action="append",
        default=[],
        help="at most N conversations with customers on PROTO (jsonim, xmpp, irc) within"
        " --capacity; repeat for several",
    )
    add.add_argument(
        "--address",
        metavar="PROTO:ADDRESS",
        type=_address,
        action="append",
        default=[],
        help="an IM address an attached server authenticates this agent by, e.g."
        " xmpp:anna@corp.example or irc:anna; repeat for several",
    )
    add.add_argument("--password-stdin", action="store_true", help=_PASSWORD_HELP)
    add.set_defaults(run=_agent_add)

    passwd = actions.add_parser("passwd", parents=[common], help="change an agent's password")
    passwd.add_argument("name", metavar="NAME")
    passwd.add_argument("--password-stdin", action="store_true", help=_PASSWORD_HELP)
    passwd.set_defaults(run=_agent_passwd)

    listing = actions.add_parser("list", parents=[common], help="list agent accounts")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=_agent_list)

    remove = actions.add_parser("remove", parents=[common], help="remove an agent account")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(run=_agent_remove)

    conversations = commands.add_parser(
        "conversations", parents=[common], help="list recent conversations, newest first"
    )
    conversations.add_argument(
        "--limit",
        metavar="N",
        type=_limit,
        default=DEFAULT_LIMIT,
        help=f"how many (default: {DEFAULT_LIMIT})",
    )
    conversations.add_argument("--json", action="store_true", help="print JSON")
    conversations.set_defaults(run=_conversations)

    transcript = commands.add_parser(
        "transcript", parents=[common], help="print a conversation's transcript"
    )
    transcript.add_argument("conversation", metavar="CONVERSATION")
    transcript.add_argument("--json", action="store_true", help="print JSON")
    transcript.set_defaults(run=_transcript)
    # Commands on the running gateway, through its admin API (gateway.admin.live).
    add_live_commands(commands, actions, common)
    desk_cli.add_commands(commands, actions, common)  # the service desk's (gateway.desk)
    firewall_cli.add_commands(commands, common)  # fw …: the firewall (firewall/cli.py)
    teams_cli.add_commands(  # team …: teams and the queues they serve
        commands, common, teams_cli.CliHelpers(_database, _transaction, _Failed, _Usage)
    )
    return parser


_CONFIG_HELP = "the site configuration file (default: ./etc/imgateway.toml if present)"
_PASSWORD_HELP = "read the password from the first line of standard input (required)"


# Argument types.


def _agent_name(value: str) -> str:
    if not _AGENT_NAME.match(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a valid agent name (up to 64 of a-z, 0-9, '.', '_', '-',"
            " starting with a letter or digit)"
        )
    return value


def _skill(value: str) -> tuple[str, int]:
    name, colon, level = value.partition(":")
    if not colon or not _SKILL_NAME.match(name):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not SKILL:LEVEL (a skill name of a-z, 0-9, '_', '-')"
        )
    if not (level.isascii() and level.isdigit() and 0 <= int(level) <= MAX_SKILL_LEVEL):
        raise argparse.ArgumentTypeError(
            f"{value!r}: the level must be a whole number from 0 to {MAX_SKILL_LEVEL}"
        )
    return name, int(level)


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            raise argparse.ArgumentTypeError(
                f"{value!r} is not a whole number from {low} to {high}"
            )
        return number

    return parse


def _protocol_capacity(value: str) -> tuple[str, int]:
    proto, _, count = value.partition(":")
    names = [adapter.name for adapter in adapters()]
    if proto not in names or not count.isdigit() or int(count) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not PROTO:N ({', '.join(names)}; N >= 1)")
    return proto, int(count)


def _address(value: str) -> str:
    proto, _, address = value.partition(":")
    schemes = {a.address_scheme: a for a in adapters() if a.address_scheme}
    if proto not in schemes or not address or any(c.isspace() for c in address):
        listed = " or ".join(f"{s}:" for s in sorted(schemes))
        raise argparse.ArgumentTypeError(f"{value!r} is not PROTO:ADDRESS ({listed})")
    return f"{proto}:{schemes[proto].normalise_address(address)}"


_capacity = _bounded_int(1, MAX_CAPACITY)
_limit = _bounded_int(1, 1_000_000)


# Commands.


def _agent_add(args: argparse.Namespace, cfg: Config) -> None:
    password = _read_password(args)
    skills: dict[str, int] = {}
    for skill, level in args.skill:
        if skill in skills:
            raise _Usage(f"skill {skill!r} given twice")
        skills[skill] = level
    display_name = _display_name(args.display_name, args.name)
    agent = AgentRecord(
        name=args.name,
        display_name=display_name,
        password_hash=hash_password(password),
        capacity=args.capacity or cfg.default_capacity,
        skills=skills,
        created=_clock(),
        location=args.location,
        bot=args.bot,
        addresses=tuple(dict.fromkeys(args.address)),
        protocol_capacity=dict(args.capacity_for),
    )
    with _database(cfg) as engine, _transaction(engine):
        try:
            engine.add_agent(agent)
            engine.set_scram(agent.name, scram_credentials(password))
        except (AgentExists, AddressTaken) as e:
            raise _Failed(str(e)) from None
    print(f"agent {args.name} added")


def _agent_passwd(args: argparse.Namespace, cfg: Config) -> None:
    password = _read_password(args)
    with _database(cfg) as engine, _transaction(engine):
        if not engine.set_password(args.name, hash_password(password)):
            raise _Failed(f"no such agent: {args.name}")
        engine.set_scram(args.name, scram_credentials(password))
    print(f"password of agent {args.name} changed")


def _agent_list(args: argparse.Namespace, cfg: Config) -> None:
    with _database(cfg) as engine:
        agents = engine.list_agents()
    if args.json:
        print_json([_agent_json(a) for a in agents])
    elif not agents:
        print("no agents")
    else:
        rows = [
            (
                a.name,
                clean(a.display_name),
                str(a.capacity),
                _skills_text(a.skills),
                a.location + (" bot" if a.bot else ""),
                ",".join(a.addresses) or "-",
            )
            for a in agents
        ]
        print_table(("NAME", "DISPLAY NAME", "CAPACITY", "SKILLS", "LOCATION", "ADDRESSES"), rows)


def _agent_remove(args: argparse.Namespace, cfg: Config) -> None:
    with _database(cfg) as engine:
        if not engine.remove_agent(args.name):
            raise _Failed(f"no such agent: {args.name}")
    print(f"agent {args.name} removed")


def _conversations(args: argparse.Namespace, cfg: Config) -> None:
    with _database(cfg) as engine:
        records = engine.recent_conversations(args.limit)
    if args.json:
        print_json([_conversation_json(r) for r in records])
    elif not records:
        print("no conversations")
    else:
        rows = [
            (
                clean(r.id),
                iso(r.started, ms=True),
                clean(r.state),
                clean(r.queue or "-"),
                clean(r.customer_alias),
                clean(r.protocol),
                clean(_client(r)),
                clean(r.agent or "-"),
                clean(r.end_reason or "-"),
            )
            for r in records
        ]
        headers = ("ID", "STARTED", "STATE", "QUEUE", "CUSTOMER", "PROTOCOL", "CLIENT")
        print_table((*headers, "AGENT", "END"), rows)


def _transcript(args: argparse.Namespace, cfg: Config) -> None:
    with _database(cfg) as engine:
        record = engine.get_conversation(args.conversation)
        if record is None:
            raise _Failed(f"no such conversation: {args.conversation}")
        messages = engine.transcript(record.id)
    if args.json:
        print_json(
            {
                "conversation": _conversation_json(record),
                "messages": [_message_json(m) for m in messages],
            }
        )
        return
    header = (
        f"conversation {record.id}: customer {record.customer_alias} via {record.protocol}"
        f" ({_client(record)}), queue {record.queue or '-'}, agent {record.agent or '-'},"
        f" state {record.state}, started {iso(record.started, ms=True)}"
    )
    if record.ended is not None:
        header += f", ended {iso(record.ended, ms=True)} ({record.end_reason or '-'})"
    print(clean(header))
    if record.routing:
        print(clean(f"routing: {Decision.from_dict(record.routing).text()}"))
    for m in messages:
        print(f"[{iso(m.ts, ms=True)}] {clean(_sender(m))}: {clean(m.text)}")


# Helpers.


@contextlib.contextmanager
def _database(cfg: Config) -> Iterator[IEngine]:
    # The engine the gateway itself would use, opened (and migrated) here.
    engine = engine_for(cfg)
    engine.open()
    try:
        yield engine
    finally:
        engine.close()


@contextlib.contextmanager
def _transaction(engine: IEngine) -> Iterator[None]:
    # A command's writes all land or none does (an agent without its SCRAM keys,
    # or added before its address was refused, would be half provisioned).
    engine.begin()
    try:
        yield
    except BaseException:
        engine.rollback()
        raise
    engine.commit()


def _read_password(args: argparse.Namespace) -> str:
    if not args.password_stdin:
        raise _Usage(
            "--password-stdin is required: the password is read from standard input,"
            " never from the command line"
        )
    line = sys.stdin.readline()
    # Only the line ending goes: spaces may be part of the password.
    if line.endswith("\n"):
        line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
    if not line:
        raise _Usage("no password on standard input")
    return line


def _display_name(given: str | None, name: str) -> str:
    if given is None:
        # Customers see this; the account name must stay internal.
        return f"Agent {secrets.token_hex(2)}"
    display_name = given.strip()
    if not display_name:
        raise _Usage("the display name must not be empty")
    if len(display_name) > MAX_DISPLAY_NAME:
        raise _Usage(f"the display name must be at most {MAX_DISPLAY_NAME} characters")
    if clean(display_name) != display_name:
        raise _Usage("the display name must not contain control characters")
    if display_name == name:
        raise _Usage(
            "the display name must differ from the account name: customers see the"
            " display name, and the account name stays internal"
        )
    return display_name


def _error(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _client(record: ConversationRecord) -> str:
    return f"{record.client_name} {record.client_version}".strip() or "-"


def _sender(message: StoredMessage) -> str:
    who = message.sender
    if message.sender == "agent" and message.agent:
        who = f"agent ({message.agent})"
    if message.audience != "all":
        who += f" (to {message.audience} only)"
    return who


def _skills_text(skills: Mapping[str, int]) -> str:
    return ",".join(f"{k}:{v}" for k, v in sorted(skills.items())) or "-"


def _agent_json(agent: AgentRecord) -> dict[str, Any]:
    # Never the password hash.
    return {
        "name": agent.name,
        "display_name": agent.display_name,
        "capacity": agent.capacity,
        "skills": dict(sorted(agent.skills.items())),
        "location": agent.location,
        "capacity_for": dict(sorted(agent.protocol_capacity.items())),
        "bot": agent.bot,
        "addresses": list(agent.addresses),
        "created": iso(agent.created, ms=True),
    }


def _conversation_json(record: ConversationRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "started": iso(record.started, ms=True),
        "state": record.state,
        "queue": record.queue,
        "topic": record.topic,
        "customer_alias": record.customer_alias,
        "identity": dict(record.identity),
        "protocol": record.protocol,
        "client_name": record.client_name,
        "client_version": record.client_version,
        "agent": record.agent,
        "ended": None if record.ended is None else iso(record.ended, ms=True),
        "end_reason": record.end_reason,
        "routing": None if record.routing is None else dict(record.routing),
    }


def _message_json(message: StoredMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "ts": iso(message.ts, ms=True),
        "sender": message.sender,
        "agent": message.agent,
        "text": message.text,
        "audience": message.audience,
    }


if __name__ == "__main__":
    sys.exit(main())
