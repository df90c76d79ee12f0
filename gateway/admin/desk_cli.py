"""``imgateway-admin`` commands of the service desk, on the database directly.

``agent role``, ``canned``, ``holiday``, ``offline``, ``report`` and ``case``. They work
with the gateway running or not: canned responses are read at each use, roles at each
login, and the gateway reads holiday closures again every ``[desk] reload_s``.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from gateway.admin.desk_api import WEEK_S
from gateway.admin.live import Failed
from gateway.admin.terminal import clean, iso, print_json, print_table
from gateway.config import Config
from gateway.desk import canned as canned_module
from gateway.desk import sql
from gateway.desk.calendar import EVERY_QUEUE, MAX_NAME, check
from gateway.desk.records import OFFLINE_STATES, Canned
from gateway.desk.settings import DeskSettings
from gateway.desk.supervision import ROLE_NAMES
from gateway.store import engine_for

# Now, for the times written; replaced in tests.
_clock: Callable[[], float] = time.time


def add_commands(commands: Any, agent_actions: Any, common: argparse.ArgumentParser) -> None:
    """Add the desk's commands to the admin CLI's parsers."""
    role = agent_actions.add_parser(
        "role", parents=[common], help="give an agent a desk role (supervisor) or none"
    )
    role.add_argument("name", metavar="NAME")
    role.add_argument(
        "role", metavar="ROLE", choices=(*ROLE_NAMES, "none"), help="supervisor | none"
    )
    role.set_defaults(run=_role)

    canned = commands.add_parser("canned", parents=[common], help="canned responses")
    actions = canned.add_subparsers(metavar="ACTION", required=True)
    add = actions.add_parser("add", parents=[common], help="add or replace a canned response")
    add.add_argument("name", metavar="NAME", type=_canned_name)
    add.add_argument("--text", required=True, help="the text; {customer}, {agent}, {topic} fill in")
    add.add_argument("--team", default="", help="a team's own (default: global)")
    add.set_defaults(run=_canned_add)
    listing = actions.add_parser("list", parents=[common], help="list canned responses")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=_canned_list)
    remove = actions.add_parser("remove", parents=[common], help="remove a canned response")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--team", default="", help="the team's (default: the global one)")
    remove.set_defaults(run=_canned_remove)

    holiday = commands.add_parser("holiday", parents=[common], help="dated closures of queues")
    actions = holiday.add_subparsers(metavar="ACTION", required=True)
    add = actions.add_parser("add", parents=[common], help="close a queue (or * every queue)")
    add.add_argument("queue", metavar="QUEUE")
    add.add_argument("spec", metavar="WHEN", help="2025-12-25, 2025-12-24 14:00-24:00 or a..b")
    add.add_argument("--name", default="", help="what it is, e.g. Christmas")
    add.set_defaults(run=_holiday_add)
    listing = actions.add_parser("list", parents=[common], help="list stored closures")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=_holiday_list)
    remove = actions.add_parser("remove", parents=[common], help="remove a stored closure")
    remove.add_argument("id", metavar="ID", type=int)
    remove.set_defaults(run=_holiday_remove)

    offline = commands.add_parser(
        "offline", parents=[common], help="messages customers left, newest first"
    )
    offline.add_argument("--state", choices=OFFLINE_STATES)
    offline.add_argument("--limit", type=int, default=20)
    offline.add_argument("--json", action="store_true", help="print JSON")
    offline.set_defaults(run=_offline)

    report = commands.add_parser("report", parents=[common], help="desk reports")
    report.add_argument("kind", choices=("dispositions", "csat", "states"))
    report.add_argument("--since", metavar="DATE", help="2025-12-01 (UTC); default 7 days ago")
    report.add_argument("--until", metavar="DATE", help="default now")
    report.add_argument("--json", action="store_true", help="print JSON")
    report.set_defaults(run=_report)

    case = commands.add_parser(
        "case", parents=[common], help="a conversation's wrap-ups, notes, survey and parties"
    )
    case.add_argument("conversation", metavar="CONVERSATION")
    case.add_argument("--json", action="store_true", help="print JSON")
    case.set_defaults(run=_case)


def _canned_name(value: str) -> str:
    problem = canned_module.check_name(value)
    if problem:
        raise argparse.ArgumentTypeError(f"{value!r}: {problem}")
    return value


@contextlib.contextmanager
def _database(cfg: Config, *, write: bool = False) -> Iterator[Any]:
    # The engine the gateway itself would use; a command's writes in one transaction.
    engine = engine_for(cfg)
    engine.open()
    try:
        if not write:
            yield engine
            return
        engine.begin()
        try:
            yield engine
        except BaseException:
            engine.rollback()
            raise
        engine.commit()
    finally:
        engine.close()


def _role(args: argparse.Namespace, cfg: Config) -> None:
    role = None if args.role == "none" else args.role
    with _database(cfg, write=True) as engine:
        if not sql.set_role(engine, args.name, role):
            raise Failed(f"no such agent: {args.name}")
    print(f"agent {args.name} is {role or 'an agent with no desk role'} (from their next login)")


def _canned_add(args: argparse.Namespace, cfg: Config) -> None:
    settings = cfg.sections.get("desk") or DeskSettings()
    if not args.text.strip() or len(args.text) > settings.max_canned:
        raise Failed(f"the text must be 1 to {settings.max_canned} characters")
    with _database(cfg, write=True) as engine:
        sql.canned_put(engine, Canned(args.name, args.text, args.team), _clock())
    print(f"canned response {args.name} saved" + (f" for team {args.team}" if args.team else ""))


def _canned_list(args: argparse.Namespace, cfg: Config) -> None:
    with _database(cfg) as engine:
        responses = sql.canned_list(engine)
    if args.json:
        print_json([c.to_json() for c in responses])
    elif not responses:
        print("no canned responses")
    else:
        print_table(("NAME", "TEAM", "TEXT"), [(c.name, c.team or "-", c.text) for c in responses])


def _canned_remove(args: argparse.Namespace, cfg: Config) -> None:
    with _database(cfg, write=True) as engine:
        if not sql.canned_remove(engine, args.name, args.team):
            raise Failed(f"no canned response {args.name}")
    print(f"canned response {args.name} removed")


def _holiday_add(args: argparse.Namespace, cfg: Config) -> None:
    problem = check(args.queue, args.spec.strip(), cfg.queues)
    if problem is None and len(args.name) > MAX_NAME:
        problem = f"the name is at most {MAX_NAME} characters"
    if problem:
        raise Failed(problem)
    with _database(cfg, write=True) as engine:
        closure = sql.closure_add(engine, args.queue, args.spec.strip(), args.name, _clock())
    where = "every queue" if args.queue == EVERY_QUEUE else f"queue {args.queue}"
    print(f"closure {closure} of {where} saved: {args.spec.strip()}")


def _holiday_list(args: argparse.Namespace, cfg: Config) -> None:
    with _database(cfg) as engine:
        stored = sql.closures(engine)
    if args.json:
        print_json([c.to_json() for c in stored])
    elif not stored:
        print("no stored closures")
    else:
        print_table(
            ("ID", "QUEUE", "WHEN", "NAME"), [(str(c.id), c.queue, c.spec, c.name) for c in stored]
        )


def _holiday_remove(args: argparse.Namespace, cfg: Config) -> None:
    with _database(cfg, write=True) as engine:
        if not sql.closure_remove(engine, args.id):
            raise Failed(f"no stored closure {args.id}")
    print(f"closure {args.id} removed")


def _offline(args: argparse.Namespace, cfg: Config) -> None:
    with _database(cfg) as engine:
        messages = sql.offline_list(engine, args.state, max(1, args.limit))
    if args.json:
        print_json([m.to_json() for m in messages])
    elif not messages:
        print("no offline messages")
    else:
        rows = [
            (m.id, iso(m.received), m.state, m.queue or "-", m.alias, m.agent or "-", m.text)
            for m in messages
        ]
        print_table(("ID", "RECEIVED", "STATE", "QUEUE", "CUSTOMER", "AGENT", "TEXT"), rows)


def _when(text: str | None, default: float) -> float:
    if text is None:
        return default
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise Failed(f"{text!r} is not a date like 2025-12-01") from None


def _report(args: argparse.Namespace, cfg: Config) -> None:
    now = _clock()
    since, until = _when(args.since, now - WEEK_S), _when(args.until, now)
    with _database(cfg) as engine:
        if args.kind == "dispositions":
            rows = sql.dispositions_report(engine, since, until)
        elif args.kind == "csat":
            rows = sql.csat_report(engine, since, until)
        else:
            rows = sql.states_report(engine, since, until, now)
    if args.json:
        print_json({"since": since, "until": until, "rows": rows})
        return
    if not rows:
        print(f"nothing between {iso(since)} and {iso(until)}")
        return
    if args.kind == "dispositions":
        table = [
            (r["queue"] or "-", r["disposition"] or "-", str(r["count"]), _tags(r["tags"]))
            for r in rows
        ]
        print_table(("QUEUE", "DISPOSITION", "COUNT", "TAGS"), table)
    elif args.kind == "csat":
        table = [
            (r["queue"] or "-", r["agent"] or "-", str(r["count"]), f"{r['mean']:.2f}")
            for r in rows
        ]
        print_table(("QUEUE", "AGENT", "ANSWERS", "MEAN"), table)
    else:
        table = [(r["agent"], r["status"], r["reason"] or "-", f"{r['seconds']:g}") for r in rows]
        print_table(("AGENT", "STATUS", "REASON", "SECONDS"), table)


def _case(args: argparse.Namespace, cfg: Config) -> None:
    with _database(cfg) as engine:
        if engine.get_conversation(args.conversation) is None:
            raise Failed(f"no such conversation: {args.conversation}")
        case = sql.case_file(engine, args.conversation)
    if args.json:
        print_json(case)
        return
    for w in case["wrap_ups"]:
        print(
            f"wrap-up by {w['agent']}: {w['disposition'] or '-'} {_tags_list(w['tags'])}".rstrip()
        )
    for n in case["notes"]:
        print(f"note by {n['agent']} at {iso(n['ts'])}: {clean(n['text'])}")
    if case["survey"]:
        survey = case["survey"]
        print(f"survey: {survey['score']} {clean(survey['comment'] or '')}".rstrip())
    for p in case["parties"]:
        print(f"{p['agent']} as {p['role']} from {iso(p['joined'])} to {iso(p['left'])}")
    if not any(case.values()):
        print("nothing recorded beyond the transcript")


def _tags(tags: dict) -> str:
    return ", ".join(f"{t}:{n}" for t, n in sorted(tags.items())) or "-"


def _tags_list(tags: list) -> str:
    return " ".join(f"#{t}" for t in tags)
