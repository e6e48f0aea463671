"""`replctl` subcommands that mirror mongosh's `rs.*` helpers, run against a live set.

Owns what each subcommand sends and prints: which member it talks to (the one
given with `--host`, or the primary it finds from there), the config edits of
add/remove/reconfig with mongosh's retry on ConfigurationInProgress, and waiting
for a primary. Every loop has a deadline. Returns the process exit status;
failures are raised as `CtlError`s and printed by `main`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from replnode.ctl import render, rsconf
from replnode.ctl.client import (
    Client,
    CtlError,
    NoPrimary,
    ServerError,
    Unreachable,
    base_url,
    find_primary,
    first_reachable,
    from_json,
    normalize_host,
    on_primary,
    parse_seeds,
    to_json,
)

RECONFIG_ATTEMPTS_MAX = 12  # mongosh's rs.reconfig retries 12 times
RECONFIG_BACKOFF_S = (0.5, 0.7, 1.0, 1.3, 1.7, 2.2, 2.9, 3.0, 3.0, 3.0, 3.0, 3.0)
POLL_INTERVAL_S = 0.25
CATCH_UP_DEFAULT_S = 10.0  # the server's secondaryCatchUpPeriodSecs default


def out(text: str = "") -> None:
    """Print to stdout and flush (replctl output is often piped or watched)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def note(text: str) -> None:
    """Progress and hints go to stderr so stdout stays parseable."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def seeds_of(args: argparse.Namespace) -> list[str]:
    """The --host value as a list of member addresses."""
    return parse_seeds(args.host)


def member(args: argparse.Namespace) -> Client:
    """The member named by --host (the first of a seed list that answers)."""
    return first_reachable(seeds_of(args), args.timeout)


# ---------------------------------------------------------------------- status


def fetch_status(client: Client) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """replSetGetStatus and, when the member has one, its config."""
    status = client.command({"replSetGetStatus": 1})
    try:
        config = client.command({"replSetGetConfig": 1}).get("config")
    except ServerError:
        config = None
    return status, config


def initial_syncs(client: Client, status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """initialSyncStatus of every member in STARTUP2, asked of that member (2 s each)."""
    found: dict[str, dict[str, Any]] = {}
    for m in status.get("members", []):
        if m.get("state") != render.STARTUP2 or not m.get("health", 0):
            continue
        name = str(m.get("name"))
        if m.get("self"):
            doc: Any = status.get("initialSyncStatus")
        else:
            try:
                doc = (
                    Client(name, min(client.timeout_s, 2.0))
                    .command({"replSetGetStatus": 1})
                    .get("initialSyncStatus")
                )
            except CtlError:
                doc = None
        if isinstance(doc, dict):
            found[name] = doc
    return found


def status_text(client: Client, lag_ok_s: float) -> tuple[str, bool]:
    """The rendered status of the set as `client` sees it, and whether it is healthy."""
    status, config = fetch_status(client)
    syncs = initial_syncs(client, status)
    v = render.verdict(status, config, lag_ok_s, syncs)
    return render.render_status(status, config, lag_ok_s, syncs), v.healthy


def cmd_status(args: argparse.Namespace) -> int:
    """`status`: the verdict and table, raw JSON, or a refreshing view."""
    if args.watch is not None:
        return _watch(args)
    client = member(args)
    if args.json:
        out(to_json(client.command({"replSetGetStatus": 1}), indent=2))
        return 0
    text, healthy = status_text(client, args.max_lag)
    out(text)
    return 1 if args.check and not healthy else 0


def _watch(args: argparse.Namespace) -> int:
    """Redraw the status every N seconds (Ctrl-C ends it; --count bounds it)."""
    interval = max(float(args.watch or 2.0), 0.2)
    clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
    shown = 0
    while args.count is None or shown < args.count:
        try:
            client = first_reachable(seeds_of(args), min(args.timeout, 3.0))
            text, _ = status_text(client, args.max_lag)
        except CtlError as exc:
            text = f"replctl: {exc}"
        stamp = time.strftime("%H:%M:%S")
        out(f"{clear}{stamp}  every {interval:g} s (Ctrl-C to stop)\n{text}\n")
        shown += 1
        if args.count is None or shown < args.count:
            time.sleep(interval)
    return 0


def cmd_conf(args: argparse.Namespace) -> int:
    """`conf`: the current config, as rs.conf() shows it."""
    out(to_json(member(args).command({"replSetGetConfig": 1})["config"], indent=2))
    return 0


def cmd_hello(args: argparse.Namespace) -> int:
    """`hello`: what drivers see when they discover the set."""
    out(to_json(member(args).get_doc("/hello"), indent=2))
    return 0


# ---------------------------------------------------------------------- initiate


def _set_name(client: Client) -> str:
    """The --replSet the member was started with (for a config built from --members)."""
    opts = client.command({"getCmdLineOpts": 1})
    name = ((opts.get("parsed") or {}).get("replication") or {}).get("replSetName")
    if not name:
        raise CtlError(f"{client.host} was not started with --replSet; pass --name")
    return str(name)


def initiate_document(args: argparse.Namespace, client: Client) -> dict[str, Any]:
    """The config to initiate with: --config FILE, --members list, or {} (server default)."""
    settings = rsconf.parse_settings(args.settings) if args.settings else None
    if args.config:
        doc = rsconf.strip_config(from_json(Path(args.config).read_text()))
        if settings:
            doc.setdefault("settings", {}).update(settings)
        return doc
    if args.members:
        hosts = [normalize_host(h) for h in args.members.split(",") if h.strip()]
        arbiters = [normalize_host(h) for h in args.arbiter or []]
        return rsconf.initiate_config(args.name or _set_name(client), hosts, arbiters, settings)
    if settings or args.arbiter:
        raise CtlError("--settings and --arbiter need --members (or use --config FILE)")
    return {}


def cmd_initiate(args: argparse.Namespace) -> int:
    """`initiate`: replSetInitiate on --host; the server names members it cannot reach."""
    client = first_reachable(seeds_of(args)[:1], args.timeout)
    doc = initiate_document(args, client)
    reply = client.command({"replSetInitiate": doc})
    if args.json:
        out(to_json(reply, indent=2))
    else:
        hosts = (
            ", ".join(str(m["host"]) for m in doc.get("members", []))
            or f"{client.host} alone (the server's default config)"
        )
        name = f" {doc['_id']}" if doc.get("_id") else ""
        out(f"initiated replica set{name} on {client.host}: {hosts}")
    if args.wait:
        primary = wait_for_primary(
            [client.host, *[m["host"] for m in doc.get("members", [])]], args.timeout
        )
        out(f"primary: {primary}")
    else:
        note(f"next: replctl --host {client.host} wait --primary")
    return 0


# ---------------------------------------------------------------------- config edits


def reconfig_edit(
    args: argparse.Namespace, edit: Callable[[Client, dict[str, Any]], dict[str, Any]]
) -> tuple[Client, dict[str, Any], dict[str, Any]]:
    """Read the primary's config, edit it, send replSetReconfig; retry as rs.reconfig does."""
    seeds = seeds_of(args)
    for attempt in range(RECONFIG_ATTEMPTS_MAX):

        def action(client: Client) -> tuple[Client, dict[str, Any], dict[str, Any]]:
            current = client.command({"replSetGetConfig": 1})["config"]
            new = edit(client, current)
            return client, new, client.command({"replSetReconfig": new})

        try:
            return on_primary(seeds, action, args.timeout)
        except ServerError as exc:
            retryable = exc.code_name in (
                "ConfigurationInProgress",
                "NotWritablePrimary",
                "PrimarySteppedDown",
                "InterruptedDueToReplStateChange",
            )
            if not retryable or attempt == RECONFIG_ATTEMPTS_MAX - 1:
                raise
            delay = RECONFIG_BACKOFF_S[attempt]
            note(f"reconfig did not succeed yet ({exc.errmsg}); retrying in {delay:g} s")
            time.sleep(delay)
        except NoPrimary:
            if attempt == RECONFIG_ATTEMPTS_MAX - 1:
                raise
            time.sleep(RECONFIG_BACKOFF_S[attempt])
    raise CtlError("reconfig did not succeed")  # not reached: the loop returns or raises


def member_options(args: argparse.Namespace, arbiter: bool) -> rsconf.MemberOptions:
    """`add`'s flags as a MemberOptions."""
    return rsconf.MemberOptions(
        priority=getattr(args, "priority", None),
        votes=getattr(args, "votes", None),
        hidden=bool(getattr(args, "hidden", False)),
        delay_secs=int(getattr(args, "delay", 0) or 0),
        build_indexes=not getattr(args, "no_build_indexes", False),
        arbiter=arbiter or bool(getattr(args, "arbiter", False)),
    )


def cmd_add(args: argparse.Namespace, arbiter: bool = False) -> int:
    """`add` / `add-arbiter`: one more member, through a reconfig on the primary."""
    opts = member_options(args, arbiter)
    notes: list[str] = []

    def edit(client: Client, current: dict[str, Any]) -> dict[str, Any]:
        new, made = rsconf.with_member_added(current, args.member, opts)
        notes[:] = made
        return new

    client, new, reply = reconfig_edit(args, edit)
    added = rsconf.find_member(new, args.member) or {}
    for n in notes:
        note(f"note: {n}")
    if args.json:
        out(to_json({"reply": reply, "member": added, "config": new}, indent=2))
    else:
        kind = "arbiter" if added.get("arbiterOnly") else "member"
        out(
            f"added {added.get('host')} as {kind} _id {added.get('_id')} (config version "
            f"{new['version']}, via primary {client.host})"
        )
    return 0


def cmd_add_arbiter(args: argparse.Namespace) -> int:
    """`add-arbiter`: `add` with arbiterOnly."""
    return cmd_add(args, arbiter=True)


def cmd_remove(args: argparse.Namespace) -> int:
    """`remove`: the config without that member, through a reconfig on the primary."""

    def edit(client: Client, current: dict[str, Any]) -> dict[str, Any]:
        if normalize_host(args.member) == client.host:
            raise CtlError(
                f"{client.host} is the primary; step it down first "
                f"(replctl --host {client.host} step-down), then remove it"
            )
        return rsconf.with_member_removed(current, args.member)

    client, new, reply = reconfig_edit(args, edit)
    if args.json:
        out(to_json({"reply": reply, "config": new}, indent=2))
    else:
        out(
            f"removed {normalize_host(args.member)} (config version {new['version']}, via "
            f"primary {client.host}); it will report REMOVED until it is stopped"
        )
    return 0


def cmd_reconfig(args: argparse.Namespace) -> int:
    """`reconfig FILE`: the file's config with the next version (or forced on --host)."""
    wanted = rsconf.strip_config(from_json(Path(args.file).read_text()))
    if args.force:
        client = member(args)
        reply = client.command({"replSetReconfig": wanted, "force": True})
        out(
            to_json(reply, indent=2)
            if args.json
            else f"forced reconfig accepted by {client.host} (the server picks a higher version)"
        )
        return 0

    def edit(client: Client, current: dict[str, Any]) -> dict[str, Any]:
        return rsconf.with_version_after(wanted, current)

    client, new, reply = reconfig_edit(args, edit)
    out(
        to_json(reply, indent=2)
        if args.json
        else f"reconfigured {new.get('_id')} to config version {new['version']} via primary "
        f"{client.host}"
    )
    return 0


# ---------------------------------------------------------------------- member commands


def cmd_step_down(args: argparse.Namespace) -> int:
    """`step-down`: replSetStepDown on the primary, then name its successor."""
    cmd: dict[str, Any] = {"replSetStepDown": args.secs}
    if args.catch_up is not None:
        cmd["secondaryCatchUpPeriodSecs"] = args.catch_up
    elif args.secs <= CATCH_UP_DEFAULT_S:  # the server's default would exceed SECS
        cmd["secondaryCatchUpPeriodSecs"] = args.secs / 2
    if args.force:
        cmd["force"] = True
    old, reply = on_primary(seeds_of(args), lambda c: (c, c.command(cmd)), args.timeout)
    if args.json:
        out(to_json(reply, indent=2))
        return 0
    out(f"{old.host} stepped down; it will not stand for election for {args.secs:g} s")
    if args.wait:
        hosts = [old.host, *seeds_of(args)]
        try:
            out(f"new primary: {wait_for_primary(hosts, min(args.timeout, 30.0))}")
        except NoPrimary as exc:
            note(f"no new primary yet: {exc}")
    return 0


def _simple(args: argparse.Namespace, cmd: dict[str, Any], done: str) -> int:
    """Send one command to --host and print a one-line outcome (or the reply with --json)."""
    client = member(args)
    reply = client.command(cmd)
    if args.json:
        out(to_json(reply, indent=2))
        return 0
    out(done.format(host=client.host))
    for key in ("info", "warning"):
        if reply.get(key):
            note(f"{key}: {reply[key]}")
    return 0


def cmd_freeze(args: argparse.Namespace) -> int:
    """`freeze`: keep --host from standing for election for a while (0 unfreezes)."""
    done = (
        "{host} unfrozen"
        if args.secs <= 0
        else f"{{host}} will not stand for election for {args.secs:g} s"
    )
    return _simple(args, {"replSetFreeze": args.secs}, done)


def cmd_sync_from(args: argparse.Namespace) -> int:
    """`sync-from`: override --host's sync source."""
    target = normalize_host(args.member)
    return _simple(
        args,
        {"replSetSyncFrom": target},
        f"{{host}} will sync from {target} (until it has reason to choose again)",
    )


def cmd_resync(args: argparse.Namespace) -> int:
    """`resync`: wipe --host's data and run initial sync again."""
    return _simple(
        args,
        {"replSetResync": 1},
        "{host} dropped its data and started initial sync (watch: replctl --host "
        "{host} status --watch)",
    )


def cmd_maintenance(args: argparse.Namespace) -> int:
    """`maintenance on|off`: RECOVERING on purpose, so --host serves no reads."""
    on = args.mode == "on"
    return _simple(
        args,
        {"replSetMaintenance": on},
        "{host} " + ("entered maintenance mode (RECOVERING)" if on else "left maintenance mode"),
    )


def cmd_replication_info(args: argparse.Namespace) -> int:
    """`replication-info`: the oplog's size and the time span it covers."""
    client = member(args)
    hello = client.get_doc("/hello")
    if hello.get("arbiterOnly"):
        out("cannot provide replication status from an arbiter")
        return 1
    info = client.command({"getReplicationInfo": 1})
    out(to_json(info, indent=2) if args.json else render.replication_info_text(info))
    return 0


def cmd_secondary_info(args: argparse.Namespace) -> int:
    """`secondary-info`: how far each secondary is behind the primary."""
    info = member(args).command({"getSecondaryReplicationInfo": 1})
    out(to_json(info, indent=2) if args.json else render.secondary_info_text(info))
    return 0


def cmd_command(args: argparse.Namespace) -> int:
    """`command DB JSON`: any command document, Extended JSON in and out."""
    doc = from_json(args.document)
    if not isinstance(doc, dict) or not doc:
        raise CtlError("the command must be a non-empty JSON object, e.g. '{\"ping\": 1}'")
    seeds = seeds_of(args)
    client = (
        find_primary(seeds, args.timeout) if args.primary else first_reachable(seeds, args.timeout)
    )
    reply = client.raw_command(doc, args.db)
    out(to_json(reply, indent=None if args.compact else 2))
    if not reply.get("ok"):
        raise ServerError(client.host, reply)
    return 0


# ---------------------------------------------------------------------- wait, uri


def wait_for_primary(seeds: list[str], timeout_s: float) -> str:
    """Poll /hello until a writable primary answers; its address, or NoPrimary at the deadline."""
    deadline = time.monotonic() + timeout_s
    last: CtlError | None = None
    while time.monotonic() < deadline:
        try:
            return find_primary(seeds, min(2.0, max(deadline - time.monotonic(), 0.2))).host
        except CtlError as exc:
            last = exc
        time.sleep(POLL_INTERVAL_S)
    raise NoPrimary(
        f"no writable primary within {timeout_s:g} s" + (f" (last: {last})" if last else "")
    )


def _wait_ready(seeds: list[str], timeout_s: float) -> str:
    """Poll /readyz of the seeds until one answers 200; its address."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        for seed in seeds:
            try:
                code, body = Client(seed, 2.0).get("/readyz")
            except Unreachable as exc:
                last = str(exc)
                continue
            if code == 200:
                return seed
            last = f"{seed}: HTTP {code} {body}"
        time.sleep(POLL_INTERVAL_S)
    raise NoPrimary(f"not ready within {timeout_s:g} s ({last})")


def cmd_wait(args: argparse.Namespace) -> int:
    """`wait`: block until there is a writable primary (or --host is ready); for scripts."""
    seeds = seeds_of(args)
    if args.ready:
        out(f"ready: {_wait_ready(seeds, args.timeout)}")
        return 0
    out(f"primary: {wait_for_primary(seeds, args.timeout)}")
    return 0


def connection_info(config: dict[str, Any]) -> dict[str, Any]:
    """mongodb:// URI from the config's data-bearing hosts, and each member's HTTP base URL."""
    members = config.get("members", [])
    hosts = [str(m["host"]) for m in members if not m.get("arbiterOnly")]
    uri = f"mongodb://{','.join(hosts)}/?replicaSet={config.get('_id')}"
    return {
        "uri": uri,
        "setName": config.get("_id"),
        "http": [base_url(str(m["host"])) for m in members],
    }


def cmd_uri(args: argparse.Namespace) -> int:
    """`uri`: the connection string and HTTP base URLs from the config."""
    config = member(args).command({"replSetGetConfig": 1})["config"]
    info = connection_info(config)
    if args.json:
        out(to_json(info, indent=2))
        return 0
    out(info["uri"])
    for url in info["http"]:
        out(url)
    return 0


def env_default_host() -> str:
    """REPLCTL_HOST, else localhost:27017 (mongo's default)."""
    return os.environ.get("REPLCTL_HOST", "localhost:27017")
