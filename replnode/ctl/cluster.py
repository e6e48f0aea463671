"""`replctl cluster`: a local replica set of background `replnode` processes, mlaunch-style.

Owns the cluster directory: `<dir>/cluster.json` (set name, settings, and per
node its address, pid and exact command line), `<dir>/<node>/db` (dbpath) and
`<dir>/<node>/replnode.log` (stdout and stderr). Starts members detached (own
session), checks ports first, initiates idempotently, and signals processes
only by the pids it recorded, after checking that the pid still runs replnode
with that node's dbpath (a pid reused by another program is never signalled).
Every wait has a deadline.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from replnode.ctl import admin, render, rsconf
from replnode.ctl.client import Client, CtlError, NoPrimary, ServerError, Unreachable

STATE_FILE = "cluster.json"
SETTINGS_DEFAULT = {"heartbeatIntervalMillis": 500, "electionTimeoutMillis": 2000}
SETTINGS_FAST = {
    "heartbeatIntervalMillis": 200,
    "electionTimeoutMillis": 1000,
    "heartbeatTimeoutSecs": 2,
}
LISTEN_TIMEOUT_S = 30.0
INITIATE_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
PORT_SCAN_MAX = 2000


@dataclass
class NodeInfo:
    """One member of the local cluster, as recorded in cluster.json."""

    index: int
    name: str
    host: str
    port: int
    dbpath: str
    logpath: str
    cmd: list[str]
    arbiter: bool = False
    pid: int | None = None


@dataclass
class ClusterState:
    """The whole cluster.json document."""

    name: str
    dir: str
    bind_ip: str
    settings: dict[str, Any]
    nodes: list[NodeInfo] = field(default_factory=list)
    created: str = ""

    @property
    def hosts(self) -> list[str]:
        """Every member's address, in node order."""
        return [n.host for n in self.nodes]


# ---------------------------------------------------------------------- state file


def state_path(directory: str | Path) -> Path:
    """Where cluster.json lives for a cluster directory."""
    return Path(directory) / STATE_FILE


def load_state(directory: str | Path) -> ClusterState:
    """Read cluster.json; CtlError telling how to start one when absent."""
    path = state_path(directory)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise CtlError(
            f"no cluster in {directory} (no {STATE_FILE}); start one with: "
            f"replctl cluster start --dir {directory}"
        ) from None
    except (OSError, ValueError) as exc:
        raise CtlError(f"cannot read {path}: {exc}") from None
    nodes = [NodeInfo(**n) for n in doc.pop("nodes", [])]
    return ClusterState(**doc, nodes=nodes)


def save_state(state: ClusterState) -> None:
    """Write cluster.json atomically (write, then rename)."""
    path = state_path(state.dir)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------- processes


def _proc_state(pid: int) -> str | None:
    """The one-letter process state from /proc (Z for a zombie), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[0]


def is_ours(node: NodeInfo) -> bool:
    """The recorded pid is alive (not a zombie) and runs replnode with this node's dbpath."""
    if not node.pid:
        return False
    try:
        os.kill(node.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    if Path("/proc").is_dir():
        if _proc_state(node.pid) in (None, "Z", "X"):
            return False
        try:
            cmdline = Path(f"/proc/{node.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return b"replnode" in b" ".join(cmdline) and node.dbpath.encode() in cmdline
    return True


def port_free(ip: str, port: int) -> bool:
    """Whether `ip:port` can be bound right now."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            s.bind((ip, port))
        except OSError:
            return False
    return True


def suggest_base_port(ip: str, count: int, after: int) -> int | None:
    """The first base port above `after` with `count` consecutive free ports."""
    port = after + 1
    while port + count <= min(after + PORT_SCAN_MAX, 65535):
        if all(port_free(ip, p) for p in range(port, port + count)):
            return port
        port += 1
    return None


def spawn(node: NodeInfo, cwd: str) -> int:
    """Start one member detached (own session), output appended to its log; its pid."""
    Path(node.dbpath).mkdir(parents=True, exist_ok=True)
    with open(node.logpath, "ab") as log:
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        log.write(
            f"--- replctl cluster: starting {node.name} at {stamp}: "
            f"{shlex.join(node.cmd)}\n".encode()
        )
        log.flush()
        proc = subprocess.Popen(
            node.cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    return proc.pid


def log_tail(node: NodeInfo, lines: int = 15) -> str:
    """The last lines of a member's log, to show why it failed to start."""
    try:
        text = Path(node.logpath).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def wait_listening(node: NodeInfo, timeout_s: float = LISTEN_TIMEOUT_S) -> None:
    """Poll /health until the member answers; CtlError with its log tail if it exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            code, _ = Client(node.host, 1.0).get("/health")
            if code == 200:
                return
        except Unreachable:
            pass
        if not is_ours(node):
            raise CtlError(
                f"{node.name} ({node.host}) exited during start-up; last lines of "
                f"{node.logpath}:\n{log_tail(node)}"
            )
        time.sleep(0.1)
    raise CtlError(
        f"{node.name} ({node.host}) did not answer within {timeout_s:g} s; see {node.logpath}"
    )


def signal_node(node: NodeInfo, sig: signal.Signals) -> bool:
    """Send `sig` to the node's recorded pid if it is still ours; whether it was sent."""
    if not is_ours(node) or node.pid is None:
        return False
    try:
        os.kill(node.pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(nodes: list[NodeInfo], timeout_s: float) -> list[NodeInfo]:
    """Wait until the nodes' processes have exited; the ones still running at the deadline."""
    deadline = time.monotonic() + timeout_s
    left = [n for n in nodes if is_ours(n)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [n for n in left if is_ours(n)]
    return left


def stop_nodes(nodes: list[NodeInfo], timeout_s: float = STOP_TIMEOUT_S) -> list[str]:
    """SIGTERM, wait, then SIGKILL what is left; one line per node saying what happened."""
    lines = []
    running = [n for n in nodes if signal_node(n, signal.SIGTERM)]
    stubborn = wait_gone(running, timeout_s)
    for n in stubborn:
        signal_node(n, signal.SIGKILL)
    still = wait_gone(stubborn, 5.0)
    for n in nodes:
        if n in still:
            lines.append(f"{n.name} ({n.host}, pid {n.pid}) did not exit even after SIGKILL")
        elif n in stubborn:
            lines.append(f"killed {n.name} ({n.host}, pid {n.pid}) after {timeout_s:g} s")
        elif n in running:
            lines.append(f"stopped {n.name} ({n.host}, pid {n.pid})")
        else:
            lines.append(f"{n.name} ({n.host}) was not running")
    return lines


# ---------------------------------------------------------------------- start


def build_state(args: argparse.Namespace) -> ClusterState:
    """The cluster.json for a new cluster from `cluster start`'s flags."""
    directory = os.path.abspath(args.dir)
    settings = dict(SETTINGS_FAST if args.fast else SETTINGS_DEFAULT)
    if args.heartbeat_ms:
        settings["heartbeatIntervalMillis"] = args.heartbeat_ms
    if args.election_timeout_ms:
        settings["electionTimeoutMillis"] = args.election_timeout_ms
    count = args.nodes + (1 if args.arbiter else 0)
    extra = shlex.split(args.replnode_args or "")
    state = ClusterState(
        name=args.name,
        dir=directory,
        bind_ip=args.bind_ip,
        settings=settings,
        created=datetime.datetime.now().isoformat(timespec="seconds"),
    )
    for i in range(count):
        port = args.base_port + i
        name = f"node{i}"
        node_dir = Path(directory) / name
        dbpath = str(node_dir / "db")
        cmd = [
            sys.executable,
            "-m",
            "replnode",
            "--replSet",
            args.name,
            "--port",
            str(port),
            "--bind_ip",
            args.bind_ip,
            "--dbpath",
            dbpath,
            "--logFormat",
            args.log_format,
            *extra,
        ]
        if args.oplog_size:
            cmd[cmd.index("--dbpath") : cmd.index("--dbpath")] = [
                "--oplogSize",
                f"{args.oplog_size:g}",
            ]
        state.nodes.append(
            NodeInfo(
                index=i,
                name=name,
                host=_host(args.bind_ip, port),
                port=port,
                dbpath=dbpath,
                logpath=str(node_dir / "replnode.log"),
                cmd=cmd,
                arbiter=args.arbiter and i == count - 1,
            )
        )
    return state


def _host(bind_ip: str, port: int) -> str:
    """The member address for a bind address (loopback name for wildcard binds)."""
    ip = bind_ip.split(",")[0].strip()
    if ip in ("0.0.0.0", "::", "*"):
        ip = "localhost"
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def check_ports(state: ClusterState, nodes: list[NodeInfo]) -> None:
    """CtlError listing busy ports with mlaunch's three suggestions."""
    ip = state.bind_ip.split(",")[0].strip()
    busy = [n.port for n in nodes if not port_free(ip, n.port)]
    if not busy:
        return
    first = min(n.port for n in state.nodes)
    base = suggest_base_port(ip, len(state.nodes), first)
    hint = f"--base-port {base}" if base else "another --base-port"
    raise CtlError(
        f"port(s) {', '.join(map(str, busy))} on {ip} are in use. Either a cluster from "
        f"this directory is running (replctl cluster list --dir {state.dir}), another one is "
        f"(replctl cluster stop --dir <its dir>), or pick free ports: {hint}"
    )


def launch(state: ClusterState, nodes: list[NodeInfo]) -> None:
    """Spawn the nodes, record their pids, wait until each answers /health."""
    check_ports(state, nodes)
    for n in nodes:
        n.pid = spawn(n, state.dir)
        save_state(state)
        admin.out(f"launching: {n.name} on {n.host} (pid {n.pid}), log {n.logpath}")
    for n in nodes:
        wait_listening(n)


def initiate(state: ClusterState, timeout_s: float = INITIATE_TIMEOUT_S) -> bool:
    """replSetInitiate through node 0 unless the set has a config; whether it initiated now."""
    first = Client(state.nodes[0].host, 10.0)
    try:
        first.command({"replSetGetStatus": 1})
        return False
    except ServerError as exc:
        if exc.code_name != "NotYetInitialized":
            raise
    doc = rsconf.initiate_config(
        state.name,
        [n.host for n in state.nodes if not n.arbiter],
        [n.host for n in state.nodes if n.arbiter],
        state.settings,
    )
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            first.command({"replSetInitiate": doc})
            return True
        except ServerError as exc:
            if exc.code_name == "AlreadyInitialized":
                return False
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def cmd_start(args: argparse.Namespace) -> int:
    """`cluster start`: launch (or relaunch stopped) members, initiate, wait, report."""
    if state_path(args.dir).exists():
        state = load_state(args.dir)
        down = [n for n in state.nodes if not is_ours(n)]
        admin.note(
            f"cluster in {state.dir} exists; starting its {len(down)} stopped node(s) "
            "with their recorded command lines (topology flags are ignored)"
        )
    else:
        Path(args.dir).mkdir(parents=True, exist_ok=True)
        state = build_state(args)
        down = list(state.nodes)
    launch(state, down)
    started = time.monotonic()
    if initiate(state):
        s = state.settings
        admin.out(
            f"replica set {state.name} initiated: heartbeatIntervalMillis "
            f"{s.get('heartbeatIntervalMillis')}, electionTimeoutMillis "
            f"{s.get('electionTimeoutMillis')} (shortened for quick local failover)"
        )
    primary = admin.wait_for_primary(state.hosts, args.wait)
    admin.out(f"primary: {primary} (after {time.monotonic() - started:.1f} s)\n")
    text, _ = admin.status_text(Client(primary, 10.0), render.LAG_OK_S_DEFAULT)
    admin.out(text)
    admin.out(connection_text(state, primary))
    return 0


def replctl_command() -> str:
    """How to type replctl here: `replctl` if it is on PATH, else its path (e.g. .venv/bin)."""
    if shutil.which("replctl"):
        return "replctl"
    beside = Path(sys.executable).with_name("replctl")
    if beside.exists():
        rel = os.path.relpath(beside)
        return rel if not rel.startswith("..") else str(beside)
    return f"{sys.executable} -m replnode.ctl.main"


def connection_text(state: ClusterState, primary: str) -> str:
    """The uri, HTTP URLs and ready-to-paste commands for this cluster."""
    data = [n.host for n in state.nodes if not n.arbiter]
    rel = os.path.relpath(state.dir)
    d = rel if not rel.startswith("..") else state.dir
    ctl = replctl_command()
    insert = (
        '{"insert": "people", "documents": [{"name": "ada"}], "writeConcern": {"w": "majority"}}'
    )
    return "\n".join(
        [
            "",
            f"uri:   mongodb://{','.join(data)}/?replicaSet={state.name}",
            "http:  " + "  ".join(f"http://{h}" for h in state.hosts),
            f"data:  {state.dir}/<node>/db    logs: {state.dir}/<node>/replnode.log",
            "",
            f"curl -s http://{primary}/status",
            f"curl -s -X POST http://{primary}/command/test -H 'Content-Type: application/json' "
            f"-d '{insert}'",
            f"{ctl} --host {primary} status",
            f"{ctl} cluster kill primary --dir {d}    # failover drill",
            f"{ctl} cluster stop --dir {d}",
        ]
    )


# ---------------------------------------------------------------------- other subcommands


def node_state(node: NodeInfo) -> str:
    """The member's own state name, 'not initiated', 'unreachable' or 'stopped'."""
    if not is_ours(node):
        return "stopped"
    try:
        status = Client(node.host, 1.5).command({"replSetGetStatus": 1})
    except ServerError as exc:
        return "not initiated" if exc.code_name == "NotYetInitialized" else exc.code_name
    except CtlError:
        return "unreachable"
    return render.STATE_NAMES.get(int(status.get("myState", 6)), "?")


def resolve_node(state: ClusterState, token: str) -> NodeInfo:
    """NODE: index, node name, port, host:port, 'primary' or 'secondary'."""
    token = token.strip()
    if token in ("primary", "secondary"):
        want = "PRIMARY" if token == "primary" else "SECONDARY"
        for n in state.nodes:
            if node_state(n) == want:
                return n
        raise (
            NoPrimary(f"no {token} among the running nodes")
            if token == "primary"
            else CtlError("no secondary among the running nodes")
        )
    for n in state.nodes:
        if token in (str(n.index), n.name, n.host) or (token.isdigit() and int(token) == n.port):
            return n
    names = ", ".join(f"{n.index}/{n.name}/{n.host}" for n in state.nodes)
    raise CtlError(f"no node {token!r} in {state.dir} (nodes: {names}; or primary, secondary)")


def cmd_stop(args: argparse.Namespace) -> int:
    """`cluster stop [NODE]`: end members by recorded pid."""
    state = load_state(args.dir)
    nodes = state.nodes if args.node in (None, "all") else [resolve_node(state, args.node)]
    lines = stop_nodes(nodes, args.stop_timeout)
    for line in lines:
        admin.out(line)
    save_state(state)
    return 1 if any("did not exit" in line for line in lines) else 0


def cmd_list(args: argparse.Namespace) -> int:
    """`cluster list`: each node's pid, liveness and state."""
    state = load_state(args.dir)
    rows = [
        {
            "index": n.index,
            "name": n.name,
            "host": n.host,
            "pid": n.pid,
            "alive": is_ours(n),
            "state": node_state(n),
            "arbiter": n.arbiter,
            "dbpath": n.dbpath,
            "logpath": n.logpath,
            "cmd": n.cmd,
        }
        for n in state.nodes
    ]
    if args.json:
        admin.out(json.dumps({"name": state.name, "dir": state.dir, "nodes": rows}, indent=2))
        return 0
    admin.out(f"cluster {state.name} in {state.dir}")
    admin.out(render.cluster_table(rows))
    if args.startup:
        for n in state.nodes:
            admin.out(f"{n.name}: {shlex.join(n.cmd)}")
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    """`cluster kill NODE`: signal one member (SIGKILL by default) for failover drills."""
    state = load_state(args.dir)
    node = resolve_node(state, args.node)
    was = node_state(node)
    sig = signal.Signals[f"SIG{args.signal.upper().removeprefix('SIG')}"]
    if not signal_node(node, sig):
        raise CtlError(f"{node.name} ({node.host}) is not running")
    if sig == signal.SIGKILL and wait_gone([node], 5.0):
        raise CtlError(f"{node.name} (pid {node.pid}) still runs after SIGKILL")
    admin.out(f"sent {sig.name} to {node.name} ({node.host}, pid {node.pid}, was {was})")
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    """`cluster restart NODE|all`: stop if running, start with the same command line."""
    state = load_state(args.dir)
    nodes = state.nodes if args.node == "all" else [resolve_node(state, args.node)]
    for line in stop_nodes([n for n in nodes if is_ours(n)], args.stop_timeout):
        admin.out(line)
    launch(state, nodes)
    for n in nodes:
        admin.out(f"{n.name} ({n.host}) is up again as pid {n.pid}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """`cluster status`: `status` against the cluster's running members."""
    state = load_state(args.dir)
    args.host = ",".join(n.host for n in state.nodes if is_ours(n)) or ",".join(state.hosts)
    return admin.cmd_status(args)
