"""Command line of the `replnode` daemon: mongod's flag names, and its YAML config keys.

Only parses and builds `ServerOptions`; a bad flag or value exits with status 2
and one line naming the flag. No behaviour.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

import yaml

from replnode import limits
from replnode.errors import ConfigError
from replnode.options import ServerOptions


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"replnode: error: {message}\n")
        raise SystemExit(2)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="replnode", description="A MongoDB-style replica set member.",
                allow_abbrev=False)
    p.add_argument("--replSet", dest="repl_set", metavar="NAME",
                   help="replica set name; without it the node is a standalone")
    p.add_argument("--port", type=int, metavar="N", help="port for clients and members (27017)")
    p.add_argument("--bind_ip", metavar="LIST",
                   help="comma-separated addresses or host names to listen on (localhost)")
    p.add_argument("--bind_ip_all", action="store_true", default=None,
                   help="listen on every interface")
    p.add_argument("--dbpath", metavar="DIR", help="data directory (./data/db)")
    p.add_argument("--oplogSize", dest="oplog_size", type=_positive_float, metavar="MB",
                   help=f"oplog size in megabytes ({limits.oplog_size_mb_default})")
    p.add_argument("--config", "-f", dest="config", metavar="FILE", help="YAML config file")
    p.add_argument("--keyFile", dest="keyfile", metavar="FILE",
                   help="shared secret for member-to-member authentication")
    p.add_argument("--logpath", metavar="FILE", help="log to this file instead of stderr")
    p.add_argument("--logFormat", dest="log_format", choices=("json", "text"),
                   help="log line format (json)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    p.add_argument("--smallfiles", action="store_true",
                   help="accepted and ignored (obsolete mongod option)")
    p.add_argument("--nojournal", action="store_true", default=None,
                   help="keep data in memory only (no journal in --dbpath)")
    p.add_argument("--setParameter", dest="set_parameter", action="append", default=[],
                   metavar="NAME=VALUE", help="server parameter, e.g. enableTestCommands=1")
    p.add_argument("--advertise", metavar="HOST:PORT",
                   help="address other members and clients should use for this node")
    p.add_argument("--members", metavar="H:P,H:P,...",
                   help="members of the set, for --initiate")
    p.add_argument("--initiate", action="store_true", default=None,
                   help="initiate the set with --members once they all answer (idempotent)")
    return p


_YAML_KEYS: dict[str, str] = {
    "net.port": "port", "net.bindIp": "bind_ip", "net.bindIpAll": "bind_ip_all",
    "replication.replSetName": "repl_set", "replication.oplogSizeMB": "oplog_size_mb",
    "storage.dbPath": "dbpath", "storage.journal.enabled": "journal",
    "storage.journal.commitIntervalMs": "journal_commit_interval_ms",
    "security.keyFile": "keyfile", "systemLog.path": "logpath",
    "systemLog.logFormat": "log_format", "systemLog.destination": "",
    "systemLog.logAppend": "", "systemLog.verbosity": "log_verbosity",
    "processManagement.fork": "", "net.advertise": "advertise",
}


def _flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name != "setParameter":
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _load_yaml(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise ConfigError([f"--config: cannot read {path}: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"--config: {path} is not valid YAML: {exc}"]) from None
    if not isinstance(doc, dict):
        raise ConfigError([f"--config: {path} must hold a mapping of options"])
    values: dict[str, Any] = {}
    for key, value in _flatten(doc).items():
        if key == "setParameter":
            if not isinstance(value, dict):
                raise ConfigError(["--config: setParameter must be a mapping"])
            values["set_parameters"] = {str(k): str(v).lower() if isinstance(v, bool) else str(v)
                                        for k, v in value.items()}
            continue
        if key not in _YAML_KEYS:
            raise ConfigError([f"--config: unrecognized option: {key}"])
        field_name = _YAML_KEYS[key]
        if field_name:
            values[field_name] = value
    return values


def _split_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_args(argv: list[str] | None = None) -> ServerOptions:
    """Flags override the config file; exits with status 2 on any bad flag or value."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        values = _load_yaml(args.config) if args.config else {}
        if isinstance(values.get("bind_ip"), str):
            values["bind_ip"] = _split_list(values["bind_ip"])
        flag_values: dict[str, Any] = {
            "repl_set": args.repl_set, "port": args.port,
            "bind_ip": _split_list(args.bind_ip) if args.bind_ip is not None else None,
            "bind_ip_all": args.bind_ip_all, "dbpath": args.dbpath,
            "oplog_size_mb": args.oplog_size, "keyfile": args.keyfile,
            "logpath": args.logpath, "log_format": args.log_format,
            "journal": False if args.nojournal else None, "advertise": args.advertise,
            "members": _split_list(args.members) if args.members else None,
            "initiate": args.initiate,
        }
        values.update({k: v for k, v in flag_values.items() if v is not None})
        if args.verbose:
            values["log_verbosity"] = args.verbose
        params = dict(values.get("set_parameters", {}))
        for item in args.set_parameter:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise ConfigError([f"--setParameter expects NAME=VALUE, not {item!r}"])
            params[name] = value
        values["set_parameters"] = params
        options = _build(values)
        options.validate()
    except ConfigError as exc:
        parser.error(exc.problems[0] if len(exc.problems) == 1 else "; ".join(exc.problems))
    if args.smallfiles:
        sys.stderr.write("replnode: note: --smallfiles is obsolete and ignored\n")
    return options


def _build(values: dict[str, Any]) -> ServerOptions:
    try:
        return ServerOptions(
            repl_set=values.get("repl_set"), port=int(values.get("port", 27017)),
            bind_ip=tuple(values.get("bind_ip", ("localhost",))),
            bind_ip_all=bool(values.get("bind_ip_all", False)),
            dbpath=str(values.get("dbpath", "./data/db")),
            oplog_size_mb=float(values.get("oplog_size_mb", limits.oplog_size_mb_default)),
            keyfile=values.get("keyfile"), logpath=values.get("logpath"),
            log_format=str(values.get("log_format", "json")),
            log_verbosity=int(values.get("log_verbosity", 0)),
            journal=bool(values.get("journal", True)),
            journal_commit_interval_ms=int(values.get("journal_commit_interval_ms", 100)),
            set_parameters=dict(values.get("set_parameters", {})),
            advertise=values.get("advertise"), members=tuple(values.get("members", ())),
            initiate=bool(values.get("initiate", False)),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError([f"--config: bad value ({exc})"]) from None
