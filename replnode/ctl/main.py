"""`replctl`: the command line for operating a replica set (mongosh's rs.* plus a local cluster).

Owns the argument grammar and the exit statuses: 0 ok, 1 the server refused or
the command failed, 2 usage, 3 a member was unreachable, 4 no primary. Every
failure prints one `replctl: error: ...` line with the server's errmsg, code and
codeName (and where the primary is, for "not primary"). The work is in
`admin` (live set) and `cluster` (local processes).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from replnode.ctl import admin, cluster
from replnode.ctl.client import CtlError, ServerError

Handler = Callable[[argparse.Namespace], int]
HINTS = {
    "NotYetInitialized": "the set has no config yet; run: replctl --host {host} initiate "
    "--members h1:p,h2:p,h3:p",
    "NoReplicationEnabled": "that member was started without --replSet",
    "NodeNotFound": "start the member named above (and check --bind_ip), then try again",
    "NotWritablePrimary": "add/remove/reconfig/step-down find the primary themselves; for "
    "`command`, add --primary",
    "ExceededTimeLimit": "for step-down: no secondary caught up in time; `replctl step-down "
    "--force` steps down anyway",
    "InvalidReplicaSetConfig": "a member that was removed from the set says this; ask another "
    "member with --host",
}


class _Parser(argparse.ArgumentParser):
    """Usage errors exit with status 2 and one `replctl: error:` line."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        sys.stderr.write(f"replctl: error: {message}\n")
        raise SystemExit(2)


def _common(suppress: bool) -> argparse.ArgumentParser:
    """--host/--json/--timeout, accepted before or after the subcommand."""
    p = argparse.ArgumentParser(add_help=False)
    d: Any = argparse.SUPPRESS if suppress else None
    p.add_argument(
        "--host",
        default=d if suppress else admin.env_default_host(),
        help="member h:p, or a seed list h1:p,h2:p, or mongodb://h1,h2/?replicaSet="
        "rs0 (default $REPLCTL_HOST or localhost:27017)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        default=d if suppress else False,
        help="print the server's reply as Extended JSON",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=d,
        metavar="S",
        help="seconds to wait for a member's answer (10; for wait: the deadline, 30)",
    )
    return p


def _sub(
    subs: Any, name: str, handler: Handler, help_text: str, aliases: tuple[str, ...] = ()
) -> argparse.ArgumentParser:
    """One subcommand with the common options and its handler."""
    p: argparse.ArgumentParser = subs.add_parser(
        name, help=help_text, description=help_text, parents=[_common(True)], aliases=list(aliases)
    )
    p.set_defaults(func=handler)
    return p


def _add_status(subs: Any, handler: Handler, name: str = "status") -> None:
    """`status` (also under `cluster`)."""
    p = _sub(subs, name, handler, "verdict, then one row per member (rs.status())")
    p.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=2.0,
        default=None,
        metavar="SECS",
        help="redraw every SECS seconds (2), with initial sync progress bars",
    )
    p.add_argument(
        "--count", type=int, default=None, metavar="N", help="with --watch: stop after N refreshes"
    )
    p.add_argument(
        "--max-lag",
        type=float,
        default=10.0,
        metavar="S",
        help="a secondary further behind than this is reported (10)",
    )
    p.add_argument("--check", action="store_true", help="exit 1 unless the verdict is healthy")


def _add_member_edits(subs: Any) -> None:
    """add, add-arbiter, remove, reconfig: config changes through the primary."""
    p = _sub(subs, "add", admin.cmd_add, "add a member (rs.add()): reconfig on the primary")
    p.add_argument("member", metavar="h:p")
    p.add_argument("--priority", type=float)
    p.add_argument("--votes", type=int, choices=(0, 1))
    p.add_argument("--hidden", action="store_true")
    p.add_argument(
        "--delay",
        type=int,
        default=0,
        metavar="SECS",
        help="secondaryDelaySecs (implies priority 0)",
    )
    p.add_argument("--no-build-indexes", action="store_true", help="buildIndexes: false")
    p.add_argument("--arbiter", action="store_true", help="arbiterOnly: true")
    p = _sub(
        subs,
        "add-arbiter",
        admin.cmd_add_arbiter,
        "add an arbiter (rs.addArb())",
        aliases=("addArb",),
    )
    p.add_argument("member", metavar="h:p")
    p = _sub(subs, "remove", admin.cmd_remove, "remove a member (rs.remove())")
    p.add_argument("member", metavar="h:p")
    p = _sub(
        subs,
        "reconfig",
        admin.cmd_reconfig,
        "replace the config with FILE (rs.reconfig()); version is set for you",
    )
    p.add_argument("file", metavar="FILE", help="Extended JSON config (replctl conf's output)")
    p.add_argument(
        "--force", action="store_true", help="force: run on this member even without a primary"
    )


def _add_member_commands(subs: Any) -> None:
    """step-down, freeze, sync-from, resync, maintenance."""
    p = _sub(
        subs,
        "step-down",
        admin.cmd_step_down,
        "step the primary down (rs.stepDown())",
        aliases=("stepDown",),
    )
    p.add_argument(
        "secs",
        type=float,
        nargs="?",
        default=60.0,
        metavar="SECS",
        help="seconds it will not stand for election (60)",
    )
    p.add_argument(
        "--catch-up",
        type=float,
        default=None,
        metavar="S",
        help="secondaryCatchUpPeriodSecs (server default 10; SECS/2 when SECS is 10 or less)",
    )
    p.add_argument("--force", action="store_true", help="step down even if no one caught up")
    p.add_argument(
        "--no-wait", dest="wait", action="store_false", help="do not wait to report the new primary"
    )
    p = _sub(subs, "freeze", admin.cmd_freeze, "keep --host from standing for election")
    p.add_argument("secs", type=float, metavar="SECS", help="seconds; 0 unfreezes")
    p = _sub(
        subs,
        "sync-from",
        admin.cmd_sync_from,
        "make --host sync from h:p (rs.syncFrom())",
        aliases=("syncFrom",),
    )
    p.add_argument("member", metavar="h:p")
    _sub(subs, "resync", admin.cmd_resync, "wipe --host's data and redo initial sync")
    p = _sub(subs, "maintenance", admin.cmd_maintenance, "maintenance mode on --host")
    p.add_argument("mode", choices=("on", "off"))


def _add_reports(subs: Any) -> None:
    """conf, hello, replication-info, secondary-info, command, wait, uri."""
    _sub(subs, "conf", admin.cmd_conf, "print the config (rs.conf())", aliases=("config",))
    _sub(subs, "hello", admin.cmd_hello, "print the hello reply (rs.hello())")
    _sub(
        subs,
        "replication-info",
        admin.cmd_replication_info,
        "oplog size and time window (rs.printReplicationInfo())",
        aliases=("oplog",),
    )
    _sub(
        subs,
        "secondary-info",
        admin.cmd_secondary_info,
        "each secondary's lag (rs.printSecondaryReplicationInfo())",
        aliases=("lag",),
    )
    p = _sub(subs, "command", admin.cmd_command, "run any command document on DB")
    p.add_argument("db", metavar="DB")
    p.add_argument("document", metavar="JSON", help="Extended JSON, e.g. '{\"ping\": 1}'")
    p.add_argument("--primary", action="store_true", help="send it to the primary")
    p.add_argument("--compact", action="store_true", help="one line of output")
    p = _sub(subs, "wait", admin.cmd_wait, "exit 0 once there is a writable primary (or ready)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--primary", action="store_true", default=True, help="(default)")
    g.add_argument("--ready", action="store_true", help="--host's /readyz answers 200")
    p.set_defaults(default_timeout=30.0)
    _sub(subs, "uri", admin.cmd_uri, "connection string and HTTP base URLs from the config")


def _add_initiate(subs: Any) -> None:
    """`initiate` with --config or --members."""
    p = _sub(subs, "initiate", admin.cmd_initiate, "initiate the set (rs.initiate())")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--config", metavar="FILE", help="Extended JSON config document")
    g.add_argument("--members", metavar="h:p,h:p,...", help="data-bearing members")
    p.add_argument("--arbiter", action="append", metavar="h:p", help="an arbiter (repeatable)")
    p.add_argument("--name", help="set name (default: the member's --replSet)")
    p.add_argument(
        "--settings",
        metavar="k=v,...",
        help="e.g. heartbeatIntervalMillis=500,electionTimeoutMillis=2000",
    )
    p.add_argument("--wait", action="store_true", help="wait until a primary is elected")


def _add_cluster(subs: Any) -> None:
    """`cluster start|stop|list|kill|restart|status`."""
    top = subs.add_parser(
        "cluster",
        help="a local set of background processes (mlaunch-style)",
        description="a local replica set of replnode processes",
    )
    csubs = top.add_subparsers(dest="cluster_command", metavar="SUBCOMMAND", required=True)
    d = argparse.ArgumentParser(add_help=False)
    d.add_argument("--dir", default="./data", help="cluster directory (./data)")
    d.add_argument(
        "--stop-timeout",
        type=float,
        default=cluster.STOP_TIMEOUT_S,
        metavar="S",
        help="SIGKILL members that have not exited S seconds after SIGTERM (15)",
    )

    def csub(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = csubs.add_parser(
            name, help=help_text, description=help_text, parents=[d, _common(True)]
        )
        p.set_defaults(func=handler)
        return p

    p = csub("start", cluster.cmd_start, "start N members, initiate, wait for a primary")
    p.add_argument("--nodes", type=int, default=3, help="data-bearing members (3)")
    p.add_argument("--arbiter", action="store_true", help="add one arbiter")
    p.add_argument("--base-port", type=int, default=27017, help="first port (27017)")
    p.add_argument("--bind-ip", default="127.0.0.1", help="address to bind (127.0.0.1)")
    p.add_argument("--name", default="rs0", help="replica set name (rs0)")
    p.add_argument("--oplog-size", type=float, default=None, metavar="MB")
    p.add_argument(
        "--fast",
        action="store_true",
        help="heartbeat 200 ms, election timeout 1000 ms (default 500/2000)",
    )
    p.add_argument("--heartbeat-ms", type=int, default=None)
    p.add_argument("--election-timeout-ms", type=int, default=None)
    p.add_argument("--log-format", choices=("json", "text"), default="text")
    p.add_argument(
        "--replnode-args",
        default="",
        metavar="ARGS",
        help="extra flags for every member, e.g. '--nojournal'",
    )
    p.add_argument(
        "--wait", type=float, default=60.0, metavar="S", help="seconds to wait for a primary (60)"
    )
    p = csub("stop", cluster.cmd_stop, "stop members (SIGTERM, then SIGKILL)")
    p.add_argument("node", nargs="?", default=None, metavar="NODE")
    p = csub("list", cluster.cmd_list, "nodes, pids, alive?, state")
    p.add_argument("--startup", action="store_true", help="also print each command line")
    p = csub("kill", cluster.cmd_kill, "signal one member (SIGKILL): NODE|primary|secondary")
    p.add_argument("node", metavar="NODE")
    p.add_argument("--signal", default="KILL", help="signal name (KILL)")
    p = csub("restart", cluster.cmd_restart, "start NODE (or all) again, same command line")
    p.add_argument("node", metavar="NODE")
    _add_status(csubs, cluster.cmd_status)
    csubs.choices["status"].add_argument("--dir", default="./data")


def build_parser() -> argparse.ArgumentParser:
    """The whole `replctl` grammar."""
    p = _Parser(
        prog="replctl",
        parents=[_common(False)],
        description="Operate a replnode replica set: mongosh's rs.* helpers and a "
        "local cluster. NODE is an index, a name, h:p, or primary.",
    )
    subs = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_status(subs, admin.cmd_status)
    _add_reports(subs)
    _add_initiate(subs)
    _add_member_edits(subs)
    _add_member_commands(subs)
    _add_cluster(subs)
    return p


def report(exc: CtlError, host: str) -> None:
    """One error line (and a hint when there is a well-known next step)."""
    sys.stderr.write(f"replctl: error: {exc}\n")
    if isinstance(exc, ServerError) and exc.code_name in HINTS:
        sys.stderr.write("hint: " + HINTS[exc.code_name].format(host=exc.host or host) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `replctl` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.timeout is None:
        args.timeout = getattr(args, "default_timeout", 10.0)
    try:
        return int(args.func(args) or 0)
    except CtlError as exc:
        report(exc, getattr(args, "host", ""))
        return exc.exit_status
    except OSError as exc:
        sys.stderr.write(f"replctl: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
