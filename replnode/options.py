"""Process options for one `replnode` daemon: flags and YAML config merged and validated.

Owns `ServerOptions` (a frozen dataclass built only by `cli.py` or by tests) and
`validate()`, which gathers every problem into one ConfigError. No behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from replnode import limits
from replnode.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """Everything the daemon needs from its command line and config file."""

    repl_set: str | None = None
    port: int = 27017
    bind_ip: tuple[str, ...] = ("localhost",)
    bind_ip_all: bool = False
    dbpath: str = "./data/db"
    oplog_size_mb: float = limits.oplog_size_mb_default
    keyfile: str | None = None
    logpath: str | None = None
    log_format: str = "json"
    log_verbosity: int = 0
    journal: bool = True
    journal_commit_interval_ms: int = 100
    set_parameters: dict[str, str] = field(default_factory=dict)
    advertise: str | None = None  # host:port other members and clients should use for us
    members: tuple[str, ...] = ()  # --members for self-initiation (containers)
    initiate: bool = False

    @property
    def test_commands(self) -> bool:
        return self.set_parameters.get("enableTestCommands", "0").lower() in ("1", "true")

    def parameter_int(self, name: str, default: int) -> int:
        value = self.set_parameters.get(name)
        return int(value) if value is not None else default

    def validate(self) -> None:
        """Raise ConfigError listing every invalid option."""
        problems: list[str] = []
        if not 0 <= self.port <= 65535:
            problems.append(f"--port must be between 0 and 65535, not {self.port}")
        if self.repl_set is not None and (not self.repl_set or "/" in self.repl_set
                                          or " " in self.repl_set):
            problems.append(f"--replSet {self.repl_set!r} is not a valid replica set name")
        if not limits.oplog_size_mb_min <= self.oplog_size_mb <= limits.oplog_size_mb_max:
            problems.append(f"--oplogSize must be between {limits.oplog_size_mb_min} and "
                            f"{limits.oplog_size_mb_max} MB, not {self.oplog_size_mb}")
        if not self.bind_ip and not self.bind_ip_all:
            problems.append("--bind_ip needs at least one address")
        if self.log_format not in ("json", "text"):
            problems.append(f"--logFormat must be json or text, not {self.log_format!r}")
        if not 1 <= self.journal_commit_interval_ms <= 500:
            problems.append("storage.journal.commitIntervalMs must be between 1 and 500")
        if self.initiate and not self.repl_set:
            problems.append("--initiate needs --replSet")
        if self.initiate and not self.members:
            problems.append("--initiate needs --members host:port,host:port,...")
        for name, value in self.set_parameters.items():
            if name in _INT_PARAMETERS:
                try:
                    int(value)
                except ValueError:
                    problems.append(f"--setParameter {name} must be an integer, not {value!r}")
            elif name.startswith("failpoint."):
                if not self.test_commands:
                    problems.append(f"--setParameter {name} needs enableTestCommands=1")
            elif name not in _KNOWN_PARAMETERS:
                problems.append(f"--setParameter: unknown parameter {name!r}")
        if problems:
            raise ConfigError(problems)


_INT_PARAMETERS = {
    "periodicNoopIntervalSecs", "maxSyncSourceLagSecs", "rollbackTimeLimitSecs",
    "numInitialSyncAttempts", "tickIntervalMs",
}
_KNOWN_PARAMETERS = _INT_PARAMETERS | {
    "enableTestCommands", "writePeriodicNoops", "testBugAckMajorityOnLocalApply",
    "testBugDoubleVote", "testBugLinearizableReadWithoutMajority", "testBugSkipRollback",
}
