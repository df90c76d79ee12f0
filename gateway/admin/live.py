"""``imgateway-admin`` commands that act on the running gateway through its admin API.

``agent state``, ``agent logout``, ``queues``, ``live``, ``end`` and ``transfer``; each
is one request made with :class:`gateway.admin.client.AdminClient`.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from gateway.admin.client import AdminClient, AdminUnavailable
from gateway.admin.terminal import print_json, print_table
from gateway.config import Config
from gateway.directory.records import STATUSES


class Failed(Exception):
    """The gateway refused or could not be reached: exit status 1."""


def add_commands(commands: Any, agent_actions: Any, common: argparse.ArgumentParser) -> None:
    """Add the live commands to the admin CLI's parsers."""
    state = agent_actions.add_parser(
        "state", parents=[common], help="set a logged-in agent's status (running gateway)"
    )
    state.add_argument("name", metavar="NAME")
    state.add_argument("status", metavar="STATUS", choices=STATUSES, help=" | ".join(STATUSES))
    state.set_defaults(run=_agent_state)

    logout = agent_actions.add_parser(
        "logout", parents=[common], help="log an agent out; its conversations are requeued"
    )
    logout.add_argument("name", metavar="NAME")
    logout.set_defaults(run=_agent_logout)

    queues = commands.add_parser("queues", parents=[common], help="queues of the running gateway")
    queues.add_argument("--json", action="store_true", help="print JSON")
    queues.set_defaults(run=_queues)

    cluster = commands.add_parser(
        "cluster", parents=[common], help="the cluster's nodes, their load and their parties"
    )
    cluster.add_argument("--json", action="store_true", help="print JSON")
    cluster.set_defaults(run=_cluster)

    live = commands.add_parser("live", parents=[common], help="live conversations right now")
    live.add_argument("--json", action="store_true", help="print JSON")
    live.set_defaults(run=_live)

    end = commands.add_parser("end", parents=[common], help="end a live conversation")
    end.add_argument("conversation", metavar="CONVERSATION")
    end.set_defaults(run=_end)

    transfer = commands.add_parser(
        "transfer", parents=[common], help="move a live conversation to a queue or an agent"
    )
    transfer.add_argument("conversation", metavar="CONVERSATION")
    target = transfer.add_mutually_exclusive_group(required=True)
    target.add_argument("--queue", metavar="QUEUE")
    target.add_argument("--agent", metavar="AGENT")
    transfer.set_defaults(run=_transfer)


def _call(cfg: Config, method: str, path: str, body: Any = None) -> Any:
    try:
        status, answer = AdminClient.from_config(cfg).request(method, path, body)
    except AdminUnavailable as e:
        raise Failed(str(e)) from None
    if status == 401:
        raise Failed("the admin API refused the token (IMGATEWAY_ADMIN_TOKEN, admin.token)")
    if not 200 <= status < 300:
        error = answer.get("error") if isinstance(answer, dict) else answer
        raise Failed(f"{error} (HTTP {status})")
    return answer


def _segment(value: str) -> str:
    return quote(value, safe="")


def _agent_state(args: argparse.Namespace, cfg: Config) -> None:
    _call(cfg, "POST", f"/v1/agents/{_segment(args.name)}/state", {"status": args.status})
    print(f"agent {args.name} is {args.status}")


def _agent_logout(args: argparse.Namespace, cfg: Config) -> None:
    _call(cfg, "POST", f"/v1/agents/{_segment(args.name)}/logout")
    print(f"agent {args.name} logged out")


def _queues(args: argparse.Namespace, cfg: Config) -> None:
    queues = _call(cfg, "GET", "/v1/queues")
    if args.json:
        print_json(queues)
        return
    rows = [
        (q["name"], str(q["depth"]), f"{q['oldest_wait_s']:g}", str(q["eta_s"]), str(q["active"]))
        for q in queues
    ]
    print_table(("QUEUE", "WAITING", "OLDEST WAIT S", "ETA S", "WITH AGENTS"), rows)


def _cluster(args: argparse.Namespace, cfg: Config) -> None:
    cluster = _call(cfg, "GET", "/v1/cluster")
    if args.json:
        print_json(cluster)
        return
    if not cluster["clustered"]:
        print("one node (no [cluster] redis)")
    else:
        redis = "reachable" if cluster["redis"] else "NOT reachable"
        print(f"node {cluster['node']}; redis {redis}")
    rows = [
        (
            n["node"] or "-",
            n["state"],
            str(n["customers"]),
            str(n["agents"]),
            str(n["conversations"]),
            str(n["held"]),
            str(n["waiting"]),
            "-" if n["age_s"] is None else f"{n['age_s']:g}",
        )
        for n in cluster["nodes"]
    ]
    headers = ("NODE", "STATE", "CUSTOMERS", "AGENTS", "CONVERSATIONS", "HELD", "WAITING", "SEEN S")
    print_table(headers, rows)


def _live(args: argparse.Namespace, cfg: Config) -> None:
    conversations = _call(cfg, "GET", "/v1/conversations")
    if args.json:
        print_json(conversations)
        return
    if not conversations:
        print("no live conversations")
        return
    rows = [
        (
            c["id"],
            c["state"],
            c["queue"] or "-",
            c["customer"],
            c["protocol"],
            c["agent"] or "-",
            f"{c['age_s']:g}",
        )
        for c in conversations
    ]
    print_table(("ID", "STATE", "QUEUE", "CUSTOMER", "PROTOCOL", "AGENT", "AGE S"), rows)


def _end(args: argparse.Namespace, cfg: Config) -> None:
    _call(cfg, "POST", f"/v1/conversations/{_segment(args.conversation)}/end")
    print(f"conversation {args.conversation} ended")


def _transfer(args: argparse.Namespace, cfg: Config) -> None:
    body = {"queue": args.queue} if args.queue else {"agent": args.agent}
    _call(cfg, "POST", f"/v1/conversations/{_segment(args.conversation)}/transfer", body)
    print(f"conversation {args.conversation} transferred to {args.queue or args.agent}")
