#!/usr/bin/env bash
# The replica set example from "MongoDB: The Definitive Guide" (chapter "Setting Up a Replica
# Set"), with replnode in place of mongod: three members on one machine, named mdbDefGuide,
# data in ~/data/rs1..rs3, ports 27017-27019, bound to 127.0.0.1 and a second address, then
# replSetInitiate and a status call with curl.
#
#   scripts/book-example.sh [start] SECOND_ADDRESS [options]   e.g. 127.0.0.2
#   scripts/book-example.sh status [options]
#   scripts/book-example.sh stop [options]
#
# Options:
#   --dir DIR            base directory for rs1, rs2, rs3 (default ~/data, as the book)
#   --ports P1,P2,P3     ports (default 27017,27018,27019)
#   --member-host HOST   host name put in the replica set config (default localhost, as the
#                        book; use the second address to have members talk over it)
#
# Each member writes its log to DIR/rsN.log and its pid to DIR/rsN.pid. `stop` signals only
# the pids recorded there, and only if that process is a replnode using that dbpath.
set -euo pipefail

SET_NAME=mdbDefGuide
DIR="${HOME}/data"
PORTS="27017,27018,27019"
MEMBER_HOST=localhost
ACTION=start
SECOND=""
WAIT_SECS=30

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
die() { echo "book-example: $*" >&2; exit 1; }

parse_args() {
    if [[ $# -gt 0 && ( $1 == start || $1 == stop || $1 == status ) ]]; then
        ACTION=$1; shift
    fi
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --dir) DIR=${2:?--dir needs a value}; shift 2 ;;
            --ports) PORTS=${2:?--ports needs a value}; shift 2 ;;
            --member-host) MEMBER_HOST=${2:?--member-host needs a value}; shift 2 ;;
            -h|--help) usage 0 ;;
            -*) echo "book-example: unknown option $1" >&2; usage 2 ;;
            *) [[ -z $SECOND ]] || { echo "book-example: extra argument $1" >&2; usage 2; }
               SECOND=$1; shift ;;
        esac
    done
    IFS=, read -r -a PORT_LIST <<< "$PORTS"
    [[ ${#PORT_LIST[@]} -eq 3 ]] || die "--ports needs three ports, e.g. 27017,27018,27019"
}

find_replnode() {
    local here
    here=$(cd "$(dirname "$0")/.." && pwd)
    if command -v replnode > /dev/null; then
        REPLNODE=$(command -v replnode)
    elif [[ -x $here/.venv/bin/replnode ]]; then
        REPLNODE=$here/.venv/bin/replnode
    else
        die "replnode is not installed (pip install . or make test creates .venv)"
    fi
}

# Is PID a live replnode process using DBPATH? (guards against signalling a reused pid)
is_member_pid() {
    local pid=$1 dbpath=$2
    [[ -r /proc/$pid/cmdline ]] || return 1
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2> /dev/null) != Z ]] || return 1
    tr '\0' '\n' < "/proc/$pid/cmdline" | grep -qx -- "$dbpath" &&
        tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q replnode
}

http_ok() { curl -fs -o /dev/null --max-time 2 "$1"; }

# Indent JSON for reading when python3 is there (key order is kept).
pretty() { if command -v python3 > /dev/null; then python3 -m json.tool; else cat; echo; fi; }

start_members() {
    local i port dbpath pidfile
    for i in 1 2 3; do
        port=${PORT_LIST[$((i - 1))]}
        dbpath="$DIR/rs$i"
        pidfile="$DIR/rs$i.pid"
        mkdir -p "$dbpath"
        if [[ -f $pidfile ]] && is_member_pid "$(cat "$pidfile")" "$dbpath"; then
            echo "rs$i already running (pid $(cat "$pidfile"))"
            continue
        fi
        echo "$ replnode --replSet $SET_NAME --dbpath $dbpath --port $port --smallfiles" \
             "--oplogSize 200 --bind_ip 127.0.0.1,$SECOND"
        setsid "$REPLNODE" --replSet "$SET_NAME" --dbpath "$dbpath" --port "$port" \
            --smallfiles --oplogSize 200 --bind_ip "127.0.0.1,$SECOND" \
            < /dev/null >> "$DIR/rs$i.log" 2>&1 &
        echo $! > "$pidfile"
    done
    for i in 1 2 3; do
        port=${PORT_LIST[$((i - 1))]}
        wait_for "member rs$i on port $port" http_ok "http://127.0.0.1:$port/health" ||
            die "rs$i did not start; see $DIR/rs$i.log"
        http_ok "http://$SECOND:$port/health" || die "rs$i does not answer on $SECOND:$port"
    done
}

# wait_for WHAT COMMAND...: retry COMMAND every 0.2 s for up to WAIT_SECS seconds.
wait_for() {
    local what=$1; shift
    local tries=$((WAIT_SECS * 5))
    while ((tries-- > 0)); do
        "$@" && return 0
        sleep 0.2
    done
    echo "book-example: gave up waiting for $what after ${WAIT_SECS}s" >&2
    return 1
}

has_primary() {
    curl -fs --max-time 2 "http://127.0.0.1:${PORT_LIST[0]}/hello" | grep -q '"primary"'
}

initiate() {
    local first=${PORT_LIST[0]} config
    if curl -fs --max-time 5 "http://127.0.0.1:$first/status" | grep -q '"ok": 1'; then
        echo "replica set $SET_NAME is already initiated"
        return
    fi
    config=$(printf '{"replSetInitiate": {"_id": "%s", "members": [
    {"_id": 0, "host": "%s:%s"},
    {"_id": 1, "host": "%s:%s"},
    {"_id": 2, "host": "%s:%s"}]}}' "$SET_NAME" "$MEMBER_HOST" "${PORT_LIST[0]}" \
        "$MEMBER_HOST" "${PORT_LIST[1]}" "$MEMBER_HOST" "${PORT_LIST[2]}")
    echo "$ curl -s -X POST http://127.0.0.1:$first/command/admin -d '$config'"
    curl -sS --max-time 30 -X POST -H 'Content-Type: application/json' \
        "http://127.0.0.1:$first/command/admin" -d "$config"
    echo
}

show_status() {
    echo "$ curl -s http://127.0.0.1:${PORT_LIST[0]}/status"
    curl -sS --max-time 5 "http://127.0.0.1:${PORT_LIST[0]}/status" | pretty
}

stop_members() {
    local i pid dbpath pidfile tries
    for i in 1 2 3; do
        dbpath="$DIR/rs$i"
        pidfile="$DIR/rs$i.pid"
        [[ -f $pidfile ]] || continue
        pid=$(cat "$pidfile")
        if is_member_pid "$pid" "$dbpath"; then
            kill -TERM "$pid"
            tries=75
            while ((tries-- > 0)) && is_member_pid "$pid" "$dbpath"; do sleep 0.2; done
            if is_member_pid "$pid" "$dbpath"; then kill -KILL "$pid"; fi
            echo "stopped rs$i (pid $pid)"
        else
            echo "rs$i was not running"
        fi
        rm -f "$pidfile"
    done
}

main() {
    parse_args "$@"
    case "$ACTION" in
        start)
            [[ -n $SECOND ]] || { echo "book-example: give the second address, e.g." \
                "127.0.0.2" >&2; usage 2; }
            command -v curl > /dev/null || die "curl is needed"
            find_replnode
            mkdir -p "$DIR"
            start_members
            initiate
            wait_for "a primary" has_primary || die "no primary; see $DIR/rs*.log"
            show_status
            echo "stop them with: $0 stop --dir $DIR" ;;
        status) show_status ;;
        stop) stop_members ;;
    esac
}

main "$@"
