"""``imgateway-admin fw …``: the running gateway's firewall, through its admin API.

``list``, ``check FILE|ADDR``, ``trace ADDR``, ``apply FILE``, ``save [FILE]``,
``add``/``insert``/``replace``/``delete``, ``element add|delete``, ``reset-counters``,
``conntrack list|kill|flush``, ``bans list|add|remove``, ``dnat list``. Each is a
request or two to ``/v1/fw/…`` (see ``gateway.admin.firewall_api``).
"""

from __future__ import annotations

import argparse
import ipaddress
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

    def action(name: str, run: Callable[..., None], help: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, parents=[common], help=help)
        parser.set_defaults(run=run)
        return parser

    listing = action("list", _list, "the ruleset with handles and counters")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.add_argument("--full", action="store_true", help="every element of large sets")
    listing.add_argument("--set", metavar="NAME", help="one set's elements")

    for name, run, help_ in (
        ("check", _check, "validate FILE and show its diff; or the verdict for ADDR [PORT]"),
        ("trace", _trace, "every step of the verdict for ADDR [PORT]"),
    ):
        parser = action(name, run, help_)
        target = "FILE|ADDR" if name == "check" else "ADDR"
        parser.add_argument("target", metavar=target)
        parser.add_argument("port", metavar="PORT", nargs="?", type=int)
        parser.add_argument("--listener", metavar="L", help="the listener (default: by PORT)")
        parser.add_argument("--role", choices=("customer", "agent"))
        parser.add_argument("--chain", default="input", choices=("input", "output"))
        parser.add_argument("--json", action="store_true", help="print JSON")

    apply = action("apply", _apply, "apply FILE atomically")
    apply.add_argument("file", metavar="FILE", type=Path)

    save = action("save", _save, "write the running rules to the rules file (or FILE)")
    save.add_argument("file", metavar="FILE", type=Path, nargs="?")

    add = action("add", _add, "append a rule to a chain (or put it after HANDLE)")
    insert = action("insert", _insert, "put a rule first in a chain (or before HANDLE)")
    replace = action("replace", _replace, "replace the rule HANDLE, keeping its handle")
    for parser in (add, insert, replace):
        if parser is replace:
            parser.add_argument("handle", metavar="HANDLE", type=int)
        else:
            parser.add_argument("--chain", default="input", choices=("input", "output"))
        if parser is add:
            parser.add_argument("--after", metavar="HANDLE", type=int)
        if parser is insert:
            parser.add_argument("--before", metavar="HANDLE", type=int)
        parser.add_argument("--comment", metavar="TEXT")
        parser.add_argument("--persist", action="store_true", help="write the rules file too")
        parser.add_argument("rule", metavar="RULE", nargs="+", help="e.g. ip saddr 192.0.2.7 drop")

    delete = action("delete", _delete, "remove the rule HANDLE")
    delete.add_argument("handle", metavar="HANDLE", type=int)
    delete.add_argument("--persist", action="store_true", help="write the rules file too")

    element = actions.add_parser("element", parents=[common], help="set elements")
    el = element.add_subparsers(metavar="ACTION", required=True)
    for name in ("add", "delete"):
        parser = el.add_parser(name, parents=[common], help=f"{name} elements of SET")
        parser.add_argument("set", metavar="SET")
        parser.add_argument("elements", metavar="ADDR", nargs="+")
        parser.add_argument("--persist", action="store_true", help="write the rules file too")
        parser.set_defaults(run=_element, operation=name)

    action("reset-counters", _reset, "zero every counter")

    conntrack = actions.add_parser("conntrack", parents=[common], help="tracked connections")
    ct = conntrack.add_subparsers(metavar="ACTION", required=True)
    ct_list = ct.add_parser("list", parents=[common], help="list tracked connections")
    ct_list.add_argument("--json", action="store_true", help="print JSON")
    ct_list.set_defaults(run=_conntrack_list)
    ct_kill = ct.add_parser("kill", parents=[common], help="close a tracked connection")
    ct_kill.add_argument("id", metavar="ID", type=int)
    ct_kill.set_defaults(run=_conntrack_kill)
    ct_flush = ct.add_parser(
        "flush", parents=[common], help="close every connection from or to ADDR (or a network)"
    )
    ct_flush.add_argument("address", metavar="ADDR")
    ct_flush.set_defaults(run=_conntrack_flush)

    bans = actions.add_parser("bans", parents=[common], help="banned addresses and networks")
    b = bans.add_subparsers(metavar="ACTION", required=True)
    b_list = b.add_parser("list", parents=[common], help="list bans")
    b_list.add_argument("--json", action="store_true", help="print JSON")
    b_list.set_defaults(run=_bans_list)
    b_add = b.add_parser("add", parents=[common], help="ban an address or a network")
    b_add.add_argument("address", metavar="ADDR")
    b_add.add_argument("--for", dest="for_s", metavar="SECONDS", type=float, default=None)
    b_add.add_argument("--close", action="store_true", help="close its established connections")
    b_add.set_defaults(run=_bans_add)
    b_remove = b.add_parser("remove", parents=[common], help="lift a ban")
    b_remove.add_argument("address", metavar="ADDR")
    b_remove.set_defaults(run=_bans_remove)

    dnat = actions.add_parser("dnat", parents=[common], help="DNAT backends")
    d = dnat.add_subparsers(metavar="ACTION", required=True)
    d_list = d.add_parser("list", parents=[common], help="backends and their state")
    d_list.add_argument("--json", action="store_true", help="print JSON")
    d_list.set_defaults(run=_dnat_list)


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


def _saved(answer: dict[str, Any]) -> None:
    if "saved" in answer:
        print(f"written to {answer['saved']}")


def _list(args: argparse.Namespace, cfg: Config) -> None:
    if args.set:
        answer = _call(cfg, "GET", "sets/" + quote(args.set, safe=""))
        if args.json:
            print(json.dumps(answer, indent=2))
        else:
            print("\n".join(answer["elements"]))
        return
    answer = _call(cfg, "GET", "ruleset" + ("?full=1" if args.full else ""))
    if args.json:
        print(json.dumps(answer["rules"], indent=2))
    else:
        print(answer["text"], end="")


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _check(args: argparse.Namespace, cfg: Config) -> None:
    if _is_address(args.target) or args.port is not None or args.listener or args.role:
        _verdict(args, cfg, steps=False)
        return
    path = Path(args.target)
    answer = _call(cfg, "POST", "check", {"text": _read(path), "source": str(path)})
    print(answer["diff"] or f"{path}: valid; no changes against the running rules", end="")
    if not answer["diff"]:
        print()


def _trace(args: argparse.Namespace, cfg: Config) -> None:
    _verdict(args, cfg, steps=True)


def _verdict(args: argparse.Namespace, cfg: Config, *, steps: bool) -> None:
    body: dict[str, Any] = {"address": args.target, "chain": args.chain}
    for name in ("port", "listener", "role"):
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    answer = _call(cfg, "POST", "trace", body)
    if args.json:
        print(json.dumps(answer, indent=2))
        return
    if steps:
        for step in answer["steps"]:
            where = f"rule {step['handle']}: {step['rule']}" if "handle" in step else step["step"]
            print(f"{where}: {step['result']}")
    print(describe_verdict(answer))


def describe_verdict(answer: dict[str, Any]) -> str:
    """One line: the verdict and what decided it."""

    def why(verdict: str, rule: dict[str, Any] | None, reason: str) -> str:
        if rule is None:
            return f"{verdict} ({reason})" if reason != "policy" else f"{verdict} (policy)"
        note = f" # {rule['comment']}" if rule.get("comment") else ""
        return f"{verdict} (rule {rule['handle']}: {rule['rule']}{note})"

    if answer["verdict"] == "pending":
        roles = "; ".join(
            f"{role}: {why(o['verdict'], o['rule'], 'policy')}"
            for role, o in answer["roles"].items()
        )
        return f"waits for the role: {roles}"
    line = why(answer["verdict"], answer["rule"], answer["reason"])
    if answer.get("snat"):
        line += f", from {answer['snat']} (SNAT)"
    return line


def _apply(args: argparse.Namespace, cfg: Config) -> None:
    answer = _call(cfg, "POST", "apply", {"text": _read(args.file), "source": str(args.file)})
    print(f"{args.file}: applied, {answer['rules']} rules")


def _save(args: argparse.Namespace, cfg: Config) -> None:
    if args.file is None:
        _saved(_call(cfg, "POST", "save"))
        return
    text = _call(cfg, "GET", "ruleset?full=1&format=rules")["text"]
    try:
        args.file.write_text(text, "utf-8")
    except OSError as e:
        raise _failed(f"{args.file}: cannot write: {e}") from None
    print(f"written to {args.file}")


def _rule_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"rule": " ".join(args.rule)}
    if args.comment is not None:
        body["comment"] = args.comment
    if args.persist:
        body["persist"] = True
    return body


def _add(args: argparse.Namespace, cfg: Config) -> None:
    body = {"chain": args.chain, **_rule_body(args)}
    if args.after is not None:
        body["after"] = args.after
    answer = _call(cfg, "POST", "rules", body, ok=201)
    print(f"handle {answer['handle']}")
    _saved(answer)


def _insert(args: argparse.Namespace, cfg: Config) -> None:
    body = {"chain": args.chain, **_rule_body(args)}
    if args.before is not None:
        body["before"] = args.before
    else:
        body["index"] = 0
    answer = _call(cfg, "POST", "rules", body, ok=201)
    print(f"handle {answer['handle']}")
    _saved(answer)


def _replace(args: argparse.Namespace, cfg: Config) -> None:
    answer = _call(cfg, "PUT", f"rules/{args.handle}", _rule_body(args))
    print(f"replaced handle {args.handle}")
    _saved(answer)


def _delete(args: argparse.Namespace, cfg: Config) -> None:
    answer = _call(cfg, "DELETE", f"rules/{args.handle}" + ("?persist=1" if args.persist else ""))
    print(f"deleted handle {args.handle}")
    _saved(answer)


def _element(args: argparse.Namespace, cfg: Config) -> None:
    body: dict[str, Any] = {args.operation: args.elements}
    if args.persist:
        body["persist"] = True
    answer = _call(cfg, "POST", f"sets/{quote(args.set, safe='')}/elements", body)
    done = answer["added"] if args.operation == "add" else answer["deleted"]
    verb = "added" if args.operation == "add" else "deleted"
    print(f"{verb} {done} of {len(args.elements)}; set {answer['set']} has {answer['size']}")
    _saved(answer)


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


def _conntrack_flush(args: argparse.Namespace, cfg: Config) -> None:
    answer = _call(cfg, "POST", "conntrack/flush", {"address": args.address})
    print(f"closed {answer['flushed']} connections")


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
    if args.close:
        body["close"] = True
    answer = _call(cfg, "POST", "bans", body, ok=201)
    print(f"banned {answer['banned']}")


def _bans_remove(args: argparse.Namespace, cfg: Config) -> None:
    _call(cfg, "DELETE", "bans/" + quote(args.address, safe=""))
    print(f"unbanned {args.address}")


def _dnat_list(args: argparse.Namespace, cfg: Config) -> None:
    pools = _call(cfg, "GET", "dnat")["dnat"]
    if args.json:
        print(json.dumps(pools, indent=2))
        return
    for pool in pools:
        print(f"{pool['listener']}: {pool['target']}")
        for server in pool["servers"]:
            backup = " backup" if server["backup"] else ""
            error = f" ({server['last_error']})" if server["last_error"] else ""
            print(
                f"  {server['address']}{backup} {server['state']} active={server['active']}{error}"
            )
