"""``imgateway-admin fw …``: the running gateway's firewall, through its admin API.

``list``, ``check FILE``, ``apply FILE``, ``add RULE…``, ``delete HANDLE``,
``reset-counters``, ``conntrack list|kill ID``, ``bans list|add ADDR [--for S]|remove ADDR``.
Each is one request to ``/v1/fw/…`` (see ``gateway.admin.firewall_api``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gateway.config import Config


class Failed(Exception):
    """The gateway refused, or could not be reached: exit status 1."""


def _default_client(cfg: Config) -> Any:
    from gateway.admin.client import AdminClient

    return AdminClient.from_config(cfg)


# Builds the client for a configuration; replaced in tests.
client_factory: Callable[[Config], Any] = _default_client


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``fw`` command group to the admin CLI."""
    fw = commands.add_parser(
        "fw", parents=[common], help="the running gateway's firewall (nft-style)"
    )
    actions = fw.add_subparsers(metavar="ACTION", required=True)

    listing = actions.add_parser("list", parents=[common], help="the ruleset with counters")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=_list)

    check = actions.add_parser("check", parents=[common], help="validate FILE, show the diff")
    check.add_argument("file", metavar="FILE", type=Path)
    check.set_defaults(run=_check)

    apply = actions.add_parser("apply", parents=[common], help="apply FILE atomically")
    apply.add_argument("file", metavar="FILE", type=Path)
    apply.set_defaults(run=_apply)

    add = actions.add_parser("add", parents=[common], help="append a rule to a chain")
    add.add_argument("--chain", default="input", choices=("input", "output"))
    add.add_argument("rule", metavar="RULE", nargs="+", help="e.g. ip saddr 192.0.2.7 drop")
    add.set_defaults(run=_add)

    delete = actions.add_parser("delete", parents=[common], help="remove the rule HANDLE")
    delete.add_argument("handle", metavar="HANDLE", type=int)
    delete.set_defaults(run=_delete)

    reset = actions.add_parser("reset-counters", parents=[common], help="zero every counter")
    reset.set_defaults(run=_reset)

    conntrack = actions.add_parser("conntrack", parents=[common], help="tracked connections")
    ct = conntrack.add_subparsers(metavar="ACTION", required=True)
    ct_list = ct.add_parser("list", parents=[common], help="list tracked connections")
    ct_list.add_argument("--json", action="store_true", help="print JSON")
    ct_list.set_defaults(run=_conntrack_list)
    ct_kill = ct.add_parser("kill", parents=[common], help="close a tracked connection")
    ct_kill.add_argument("id", metavar="ID", type=int)
    ct_kill.set_defaults(run=_conntrack_kill)

    bans = actions.add_parser("bans", parents=[common], help="banned addresses")
    b = bans.add_subparsers(metavar="ACTION", required=True)
    b_list = b.add_parser("list", parents=[common], help="list bans")
    b_list.add_argument("--json", action="store_true", help="print JSON")
    b_list.set_defaults(run=_bans_list)
    b_add = b.add_parser("add", parents=[common], help="ban an address")
    b_add.add_argument("address", metavar="ADDR")
    b_add.add_argument("--for", dest="for_s", metavar="SECONDS", type=float, default=None)
    b_add.set_defaults(run=_bans_add)
    b_remove = b.add_parser("remove", parents=[common], help="lift a ban")
    b_remove.add_argument("address", metavar="ADDR")
    b_remove.set_defaults(run=_bans_remove)


def _call(cfg: Config, method: str, path: str, body: Any = None, ok: int = 200) -> Any:
    try:
        client = client_factory(cfg)
        status, answer = client.request(method, "/v1/fw/" + path, body)
    except Exception as e:  # AdminUnavailable and the like: one line, exit 1
        if isinstance(e, Failed):
            raise
        raise _failed(str(e)) from None
    if status != ok:
        message = answer.get("error") if isinstance(answer, dict) else answer
        raise _failed(f"{method} /v1/fw/{path}: {status}: {message}")
    return answer


def _failed(message: str) -> Exception:
    # The admin CLI's own "failed" exception when there is one, so main() exits 1.
    try:
        from gateway.admin.live import Failed as LiveFailed
    except ImportError:  # pragma: no cover - the admin CLI always has it
        return Failed(message)
    return LiveFailed(message)


def _read(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _failed(f"{path}: cannot read: {e}") from None


def _list(args: argparse.Namespace, cfg: Config) -> None:
    answer = _call(cfg, "GET", "ruleset")
    if args.json:
        print(json.dumps(answer["rules"], indent=2))
    else:
        print(answer["text"], end="")


def _check(args: argparse.Namespace, cfg: Config) -> None:
    answer = _call(cfg, "POST", "check", {"text": _read(args.file), "source": str(args.file)})
    print(answer["diff"] or f"{args.file}: valid; no changes against the running rules", end="")
    if not answer["diff"]:
        print()


def _apply(args: argparse.Namespace, cfg: Config) -> None:
    answer = _call(cfg, "POST", "apply", {"text": _read(args.file), "source": str(args.file)})
    print(f"{args.file}: applied, {answer['rules']} rules")


def _add(args: argparse.Namespace, cfg: Config) -> None:
    rule = " ".join(args.rule)
    answer = _call(cfg, "POST", "rules", {"chain": args.chain, "rule": rule}, ok=201)
    print(f"handle {answer['handle']}")


def _delete(args: argparse.Namespace, cfg: Config) -> None:
    _call(cfg, "DELETE", f"rules/{args.handle}")
    print(f"deleted handle {args.handle}")


def _reset(args: argparse.Namespace, cfg: Config) -> None:
    _call(cfg, "POST", "reset-counters")
    print("counters reset")


def _conntrack_list(args: argparse.Namespace, cfg: Config) -> None:
    entries = _call(cfg, "GET", "conntrack")["connections"]
    if args.json:
        print(json.dumps(entries, indent=2))
        return
    for e in entries:
        print(
            f"{e['id']} {e['protocol']} {e['direction']} {e['state']} listener={e['listener']}"
            f" src={e['original']['src']} dst={e['original']['dst']}"
            f" [src={e['translated']['src']} dst={e['translated']['dst']}]"
            f" bytes_in={e['bytes_in']} bytes_out={e['bytes_out']}"
            f" age={e['age_s']:g}s idle={e['idle_s']:g}s"
        )


def _conntrack_kill(args: argparse.Namespace, cfg: Config) -> None:
    _call(cfg, "DELETE", f"conntrack/{args.id}")
    print(f"killed {args.id}")


def _bans_list(args: argparse.Namespace, cfg: Config) -> None:
    bans = _call(cfg, "GET", "bans")["bans"]
    if args.json:
        print(json.dumps(bans, indent=2))
        return
    for ban in bans:
        left = ban["expires_in_s"]
        print(f"{ban['address']} " + ("until lifted" if left is None else f"expires in {left:g}s"))


def _bans_add(args: argparse.Namespace, cfg: Config) -> None:
    body: dict[str, Any] = {"address": args.address}
    if args.for_s is not None:
        body["for_s"] = args.for_s
    answer = _call(cfg, "POST", "bans", body, ok=201)
    print(f"banned {answer['banned']}")


def _bans_remove(args: argparse.Namespace, cfg: Config) -> None:
    _call(cfg, "DELETE", "bans/" + quote(args.address, safe=""))
    print(f"unbanned {args.address}")
