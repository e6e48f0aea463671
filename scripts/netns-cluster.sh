#!/usr/bin/env bash
# A replica set whose members live in their own network namespaces, joined by a bridge, so
# that links between members can be cut and healed with nft rules. Needs root, iproute2 and
# nftables (apt-get install -y iproute2 nftables).
#
#   scripts/netns-cluster.sh up [-n N] [--dir DIR] [--port P] [--name rs0] [--subnet 10.77.0]
#   scripts/netns-cluster.sh cut A B        drop all packets between members A and B (1..N)
#   scripts/netns-cluster.sh heal [A B]     undo one cut, or every cut
#   scripts/netns-cluster.sh status         pid, address and state of every member
#   scripts/netns-cluster.sh exec A CMD...  run CMD inside member A's namespace
#   scripts/netns-cluster.sh stop           kill the members, delete namespaces and bridge
#
# Everything it creates is named with the rn- prefix: namespaces rn-node1..N, bridge rn-br0,
# veth pairs rn-v<i> (the end inside a namespace is renamed eth0). Member i has address
# SUBNET.i/24 inside its namespace only; the host side gets no address, so nothing on the host
# (or beyond it) is ever a target: talk to members with `exec`. Member processes are recorded
# in DIR/rn-node<i>.pid and signalled only if that pid still runs replnode with that dbpath.
# Every subcommand can be repeated safely.
set -euo pipefail

DIR=/tmp/replnode-netns
N=3
PORT=27017
SET_NAME=rs0
SUBNET=10.77.0
BRIDGE=rn-br0
NS_PREFIX=rn-node
TABLE=rn_cut
WAIT_SECS=60

die() { echo "netns-cluster: $*" >&2; exit 1; }
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

load_state() {
    # Settings from `up`, so that later subcommands act on the same cluster.
    if [[ -f $DIR/netns.env ]]; then
        # shellcheck disable=SC1091
        source "$DIR/netns.env"
    fi
}

save_state() {
    mkdir -p "$DIR"
    printf 'N=%s\nPORT=%s\nSET_NAME=%s\nSUBNET=%s\n' "$N" "$PORT" "$SET_NAME" "$SUBNET" \
        > "$DIR/netns.env"
}

need_root_tools() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces and nft)"
    command -v ip > /dev/null || die "ip not found: apt-get install -y iproute2"
    command -v nft > /dev/null || die "nft not found: apt-get install -y nftables"
}

find_tools() {
    local here
    here=$(cd "$(dirname "$0")/.." && pwd)
    if [[ -x $here/.venv/bin/replnode ]]; then
        BIN=$here/.venv/bin
    elif command -v replnode > /dev/null; then
        BIN=$(dirname "$(command -v replnode)")
    else
        die "replnode is not installed (pip install . or make test creates .venv)"
    fi
    PY=$BIN/python
    [[ -x $PY ]] || PY=$(command -v python3)
}

ns() { echo "$NS_PREFIX$1"; }
addr() { echo "$SUBNET.$1"; }
in_ns() { local i=$1; shift; ip netns exec "$(ns "$i")" "$@"; }
check_member() {
    if ! [[ $1 =~ ^[0-9]+$ ]] || ((1 > $1 || $1 > N)); then die "no member $1 (1..$N)"; fi
    ip netns list | grep -qw "^$(ns "$1")" ||
        die "namespace $(ns "$1") does not exist; start the cluster with: $0 up"
}

# ---------------------------------------------------------------------- network

ensure_bridge() {
    if ! ip link show "$BRIDGE" > /dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
    fi
    ip link set "$BRIDGE" up
}

ensure_namespace() {
    local i=$1 name veth
    name=$(ns "$i")
    veth=rn-v$i
    ip netns list | grep -qw "^$name" || ip netns add "$name"
    in_ns "$i" ip link set lo up
    if ! in_ns "$i" ip link show eth0 > /dev/null 2>&1; then
        ip link del "$veth" > /dev/null 2>&1 || true
        ip link add "$veth" type veth peer name "rn-p$i"
        ip link set "rn-p$i" netns "$name"
        in_ns "$i" ip link set "rn-p$i" name eth0
    fi
    in_ns "$i" ip addr replace "$(addr "$i")/24" dev eth0
    in_ns "$i" ip link set eth0 up
    ip link set "$veth" master "$BRIDGE" up
    ensure_cut_table "$i"
}

# One table per namespace: packets from addresses in @blocked are dropped on input.
# Created once; an existing table (and the cuts in it) is left as it is.
ensure_cut_table() {
    in_ns "$1" nft list table inet "$TABLE" > /dev/null 2>&1 && return
    in_ns "$1" nft -f - << EOF
table inet $TABLE {
    set blocked { type ipv4_addr; }
    chain input { type filter hook input priority 0; policy accept; ip saddr @blocked drop; }
}
EOF
}

block() { in_ns "$1" nft add element inet "$TABLE" blocked "{ $(addr "$2") }"; }

unblock() {
    if in_ns "$1" nft list set inet "$TABLE" blocked 2> /dev/null | grep -qw "$(addr "$2")"; then
        in_ns "$1" nft delete element inet "$TABLE" blocked "{ $(addr "$2") }"
    fi
}

# ---------------------------------------------------------------------- members

pidfile() { echo "$DIR/$(ns "$1").pid"; }
dbpath() { echo "$DIR/$(ns "$1")/db"; }

member_pid() {
    # The recorded pid if it is still a live replnode using this member's dbpath.
    local i=$1 pid
    [[ -f $(pidfile "$i") ]] || return 1
    pid=$(cat "$(pidfile "$i")")
    [[ -r /proc/$pid/cmdline ]] || return 1
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2> /dev/null) != Z ]] || return 1
    tr '\0' '\n' < "/proc/$pid/cmdline" | grep -qx -- "$(dbpath "$i")" || return 1
    echo "$pid"
}

start_member() {
    local i=$1 log
    if member_pid "$i" > /dev/null; then
        echo "$(ns "$i"): already running (pid $(member_pid "$i"))"
        return
    fi
    mkdir -p "$(dbpath "$i")"
    log="$DIR/$(ns "$i")/replnode.log"
    setsid ip netns exec "$(ns "$i")" "$BIN/replnode" --replSet "$SET_NAME" \
        --port "$PORT" --bind_ip "$(addr "$i")" --dbpath "$(dbpath "$i")" \
        --logFormat text < /dev/null >> "$log" 2>&1 &
    echo $! > "$(pidfile "$i")"
    echo "$(ns "$i"): replnode on $(addr "$i"):$PORT (pid $!), log $log"
}

http() {
    # http I PATH [BODY]: from inside member I's namespace to member I.
    local i=$1 path=$2
    if [[ $# -ge 3 ]]; then
        in_ns "$i" curl -s --max-time 10 -X POST -H 'Content-Type: application/json' \
            "http://$(addr "$i"):$PORT$path" -d "$3"
    else
        in_ns "$i" curl -s --max-time 3 "http://$(addr "$i"):$PORT$path"
    fi
}

wait_for() {
    local what=$1 tries=$((WAIT_SECS * 5)); shift
    while ((tries-- > 0)); do
        "$@" > /dev/null 2>&1 && return 0
        sleep 0.2
    done
    die "gave up waiting for $what after ${WAIT_SECS}s (logs under $DIR)"
}

answers() { http "$1" /health | grep -q .; }
has_primary() { http 1 /hello | grep -q '"primary"'; }

initiate() {
    local i members=""
    if http 1 /status | grep -q '"ok": 1'; then
        echo "replica set $SET_NAME is already initiated"
        return
    fi
    for ((i = 1; i <= N; i++)); do
        members+="${members:+, }{\"_id\": $((i - 1)), \"host\": \"$(addr "$i"):$PORT\"}"
    done
    http 1 /command/admin "{\"replSetInitiate\": {\"_id\": \"$SET_NAME\", \"members\": [$members],
        \"settings\": {\"heartbeatIntervalMillis\": 500, \"electionTimeoutMillis\": 2000}}}"
    echo
}

member_state() {
    # STATE (primary: HOST) as member I sees it, or DOWN/UNREACHABLE.
    local i=$1
    member_pid "$i" > /dev/null || { echo "DOWN"; return; }
    http "$i" /hello | "$PY" -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    print("UNREACHABLE"); sys.exit()
state = "PRIMARY" if d.get("isWritablePrimary") else "SECONDARY" if d.get("secondary") else \
    "OTHER"
primary = d.get("primary", "none")
print(f"{state} (sees primary: {primary})")' 2> /dev/null || echo "UNREACHABLE"
}

# ---------------------------------------------------------------------- subcommands

cmd_up() {
    need_root_tools
    find_tools
    command -v curl > /dev/null || die "curl not found: apt-get install -y curl"
    ((N >= 1 && N <= 50)) || die "-n must be 1..50"
    save_state
    ensure_bridge
    local i
    for ((i = 1; i <= N; i++)); do
        mkdir -p "$DIR/$(ns "$i")"
        ensure_namespace "$i"
        start_member "$i"
    done
    for ((i = 1; i <= N; i++)); do wait_for "$(ns "$i") to answer" answers "$i"; done
    initiate
    wait_for "a primary" has_primary
    cmd_status
}

cmd_cut() {
    need_root_tools
    check_member "$1"; check_member "$2"
    [[ $1 != "$2" ]] || die "cut needs two different members"
    block "$1" "$2"
    block "$2" "$1"
    echo "cut $(ns "$1") ($(addr "$1")) <-> $(ns "$2") ($(addr "$2"))"
}

cmd_heal() {
    need_root_tools
    local i
    if [[ $# -eq 2 ]]; then
        check_member "$1"; check_member "$2"
        unblock "$1" "$2"
        unblock "$2" "$1"
        echo "healed $(ns "$1") <-> $(ns "$2")"
        return
    fi
    for ((i = 1; i <= N; i++)); do
        ip netns list | grep -qw "^$(ns "$i")" || continue
        in_ns "$i" nft flush set inet "$TABLE" blocked 2> /dev/null || true
    done
    echo "healed every link"
}

cmd_status() {
    find_tools
    local i pid cuts
    for ((i = 1; i <= N; i++)); do
        pid=$(member_pid "$i" || echo "-")
        cuts=$(in_ns "$i" nft list set inet "$TABLE" blocked 2> /dev/null |
            grep -o 'elements = {[^}]*}' | sed 's/elements = //' || true)
        printf '%-9s %-15s pid %-7s %s%s\n' "$(ns "$i")" "$(addr "$i"):$PORT" "$pid" \
            "$(member_state "$i")" "${cuts:+  drops from $cuts}"
    done
}

cmd_exec() {
    check_member "$1"
    local i=$1; shift
    [[ $# -gt 0 ]] || die "exec needs a command"
    in_ns "$i" "$@"
}

cmd_stop() {
    need_root_tools
    local i pid tries name link
    for ((i = 1; i <= N; i++)); do
        if pid=$(member_pid "$i"); then
            kill -TERM "$pid" || true
            tries=50
            while ((tries-- > 0)) && member_pid "$i" > /dev/null; do sleep 0.2; done
            if member_pid "$i" > /dev/null; then kill -KILL "$pid" || true; fi
            echo "stopped $(ns "$i") (pid $pid)"
        fi
        rm -f "$(pidfile "$i")"
    done
    for name in $(ip netns list | awk '{print $1}' | grep -E "^${NS_PREFIX}[0-9]+$" || true); do
        ip netns del "$name" && echo "deleted namespace $name"
    done
    for link in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 |
        grep -E '^rn-v[0-9]+$' || true); do
        ip link del "$link" 2> /dev/null || true
    done
    if ip link show "$BRIDGE" > /dev/null 2>&1; then
        ip link del "$BRIDGE" && echo "deleted bridge $BRIDGE"
    fi
}

main() {
    [[ $# -gt 0 ]] || usage 2
    local action=$1; shift
    local args=()
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --dir) DIR=${2:?--dir needs a value}; shift 2 ;;
            *) args+=("$1"); shift ;;
        esac
    done
    load_state
    set -- "${args[@]+"${args[@]}"}"
    case "$action" in
        up)
            while [[ $# -gt 0 ]]; do
                case "$1" in
                    -n) N=${2:?-n needs a value}; shift 2 ;;
                    --port) PORT=${2:?}; shift 2 ;;
                    --name) SET_NAME=${2:?}; shift 2 ;;
                    --subnet) SUBNET=${2:?}; shift 2 ;;
                    *) die "unknown option for up: $1" ;;
                esac
            done
            cmd_up ;;
        cut) [[ $# -eq 2 ]] || usage 2; cmd_cut "$1" "$2" ;;
        heal) [[ $# -eq 0 || $# -eq 2 ]] || usage 2; cmd_heal "$@" ;;
        status) cmd_status ;;
        exec) cmd_exec "$@" ;;
        stop|down) cmd_stop ;;
        -h|--help|help) usage 0 ;;
        *) usage 2 ;;
    esac
}

main "$@"
