"""``imgateway-admin team ...``: teams of agents and the queues they serve.

Teams live in the database (gateway.store.teams; what they mean for routing is in
gateway.directory.teams). Each command changes the database in one transaction, as
``agent add`` does, then asks a running gateway to read the teams again
(``POST /v1/teams/reload``); a gateway that is not running reads them when it starts.

    team add NAME [--description TEXT] [--member AGENT]... [--queue QUEUE]...
    team remove NAME
    team list [--json]
    team describe NAME TEXT
    team add-member NAME AGENT...      team remove-member NAME AGENT...
    team serve NAME QUEUE...           team unserve NAME QUEUE...
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from gateway.admin.client import AdminClient, AdminUnavailable
from gateway.config import Config
from gateway.store.errors import TeamExists, UnknownAgent, UnknownTeam
from gateway.store.records import TeamRecord

_TEAM_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_DESCRIPTION = 200

# When a team was created; replaced in tests.
_clock: Callable[[], float] = time.time


@attrs.frozen
class CliHelpers:
    """What the admin CLI lends these commands: its database and transaction context
    managers and its two exceptions (failed: status 1, usage: status 2)."""

    database: Callable[[Config], Any]
    transaction: Callable[[Any], Any]
    failed: type[Exception]
    usage: type[Exception]


def add_commands(commands: Any, common: argparse.ArgumentParser, helpers: CliHelpers) -> None:
    """Add ``team`` and its actions to the admin CLI's parsers."""

    def bind(run: Callable[..., None]) -> Callable[[argparse.Namespace, Config], None]:
        return functools.partial(run, helpers)

    team = commands.add_parser(
        "team", parents=[common], help="manage teams of agents and the queues they serve"
    )
    actions = team.add_subparsers(metavar="ACTION", required=True)

    add = actions.add_parser("add", parents=[common], help="create a team")
    add.add_argument("name", metavar="NAME", type=_team_name)
    add.add_argument("--description", metavar="TEXT", default="", type=_description)
    add.add_argument(
        "--member", metavar="AGENT", action="append", default=[], help="an agent; repeat"
    )
    add.add_argument(
        "--queue", metavar="QUEUE", action="append", default=[], help="a queue it serves; repeat"
    )
    add.set_defaults(run=bind(_add))

    remove = actions.add_parser("remove", parents=[common], help="remove a team")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(run=bind(_remove))

    listing = actions.add_parser("list", parents=[common], help="list teams")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=bind(_list))

    describe = actions.add_parser("describe", parents=[common], help="set a team's description")
    describe.add_argument("name", metavar="NAME")
    describe.add_argument("description", metavar="TEXT", type=_description)
    describe.set_defaults(run=bind(_describe))

    for verb, run, what in (
        ("add-member", _add_members, "put agents in a team"),
        ("remove-member", _remove_members, "take agents out of a team"),
    ):
        parser = actions.add_parser(verb, parents=[common], help=what)
        parser.add_argument("name", metavar="NAME")
        parser.add_argument("agents", metavar="AGENT", nargs="+")
        parser.set_defaults(run=bind(run))
    for verb, run, what in (
        ("serve", _serve, "the team serves these queues too"),
        ("unserve", _unserve, "the team no longer serves these queues"),
    ):
        parser = actions.add_parser(verb, parents=[common], help=what)
        parser.add_argument("name", metavar="NAME")
        parser.add_argument("queues", metavar="QUEUE", nargs="+")
        parser.set_defaults(run=bind(run))


def _team_name(value: str) -> str:
    if not _TEAM_NAME.match(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a valid team name (lowercase letters, digits, '-' and '_')"
        )
    return value


def _description(value: str) -> str:
    text = value.strip()
    if len(text) > MAX_DESCRIPTION or not text.isprintable():
        raise argparse.ArgumentTypeError(
            f"a description is at most {MAX_DESCRIPTION} printable characters"
        )
    return text


def _queues(h: CliHelpers, cfg: Config, queues: Sequence[str]) -> tuple[str, ...]:
    for queue in queues:
        if queue not in cfg.queues:
            known = ", ".join(sorted(cfg.queues))
            raise h.usage(f"no such queue: {queue!r} (queues: {known})")
    return tuple(dict.fromkeys(queues))


def _change(h: CliHelpers, cfg: Config, work: Callable[[Any], Any]) -> Any:
    """Run ``work(engine)`` in one transaction; store errors become failures (status 1)."""
    with h.database(cfg) as engine, h.transaction(engine):
        try:
            return work(engine)
        except (TeamExists, UnknownTeam, UnknownAgent) as e:
            raise h.failed(str(e)) from None


def _tell_gateway(cfg: Config) -> None:
    """Ask a running gateway to read the teams again; say what happened."""
    try:
        status, answer = AdminClient.from_config(cfg).request("POST", "/v1/teams/reload")
    except AdminUnavailable:
        print("(no running gateway answered; it reads the teams when it starts)")
        return
    if status == 200:
        print("the running gateway reloaded its teams")
    else:
        error = answer.get("error") if isinstance(answer, dict) else answer
        print(
            f"warning: the running gateway did not reload: {error} (HTTP {status})", file=sys.stderr
        )


def _add(h: CliHelpers, args: argparse.Namespace, cfg: Config) -> None:
    record = TeamRecord(
        name=args.name,
        description=args.description,
        created=_clock(),
        members=tuple(dict.fromkeys(args.member)),
        queues=_queues(h, cfg, args.queue),
    )
    _change(h, cfg, lambda engine: engine.add_team(record))
    print(f"team {args.name} added")
    _tell_gateway(cfg)


def _remove(h: CliHelpers, args: argparse.Namespace, cfg: Config) -> None:
    if not _change(h, cfg, lambda engine: engine.remove_team(args.name)):
        raise h.failed(f"no such team: {args.name!r}")
    print(f"team {args.name} removed")
    _tell_gateway(cfg)


def _describe(h: CliHelpers, args: argparse.Namespace, cfg: Config) -> None:
    _change(h, cfg, lambda engine: engine.describe_team(args.name, args.description))
    print(f"team {args.name} described")
    _tell_gateway(cfg)


def _add_members(h: CliHelpers, args: argparse.Namespace, cfg: Config) -> None:
    _change(h, cfg, lambda engine: engine.add_team_members(args.name, args.agents))
    print(f"team {args.name}: {', '.join(args.agents)} added")
    _tell_gateway(cfg)


def _remove_members(h: CliHelpers, args: argparse.Namespace, cfg: Config) -> None:
    count = _change(h, cfg, lambda engine: engine.remove_team_members(args.name, args.agents))
    print(f"team {args.name}: {count} member(s) removed")
    _tell_gateway(cfg)


def _serve(h: CliHelpers, args: argparse.Namespace, cfg: Config) -> None:
    queues = _queues(h, cfg, args.queues)
    _change(h, cfg, lambda engine: engine.add_team_queues(args.name, queues))
    print(f"team {args.name} serves {', '.join(queues)}")
    _tell_gateway(cfg)


def _unserve(h: CliHelpers, args: argparse.Namespace, cfg: Config) -> None:
    count = _change(h, cfg, lambda engine: engine.remove_team_queues(args.name, args.queues))
    print(f"team {args.name}: {count} queue(s) no longer served")
    _tell_gateway(cfg)


def team_json(team: TeamRecord) -> dict[str, Any]:
    """A team as ``team list --json`` prints it."""
    return {
        "name": team.name,
        "description": team.description,
        "members": list(team.members),
        "queues": list(team.queues),
    }


def _list(h: CliHelpers, args: argparse.Namespace, cfg: Config) -> None:
    with h.database(cfg) as engine:
        teams = engine.list_teams()
    if args.json:
        print(json.dumps([team_json(t) for t in teams], indent=2))
        return
    if not teams:
        print("no teams")
        return
    rows = [
        (t.name, ",".join(t.members) or "-", ",".join(t.queues) or "-", t.description or "-")
        for t in teams
    ]
    headers = ("TEAM", "MEMBERS", "QUEUES", "DESCRIPTION")
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]
    for row in (headers, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
