"""An nft table of the harness's own that drops packets between member addresses.

Owns one table `inet <prefix>_<pid>` with one input-hook chain. A cut link (src -> dst) drops
packets from src's address to dst's address and listening port, which stops src's requests
to dst (heartbeats, votes, oplog fetches) while dst's requests to src and their replies still
pass: a true one-way cut. The table is created by `open()`, emptied by `heal()` and deleted by
`close()`, which the runner calls in a finalizer; tables left behind by harness processes that
no longer exist are deleted at `open()`. Needs root and the `nft` binary; `available()` says
why not when it cannot run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

NFT_TIMEOUT_S = 10.0
CHAIN = "input"


def available() -> tuple[bool, str]:
    """Whether nft rules can be used here, and if not, why."""
    if shutil.which("nft") is None:
        return False, "nft is not installed (apt-get install -y nftables)"
    if os.geteuid() != 0:
        return False, "nft needs root"
    try:
        _run(["list", "tables"])
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"nft does not work here: {exc}"
    return True, ""


def _run(args: list[str]) -> str:
    """Run one nft command; raises CalledProcessError with nft's message on failure."""
    done = subprocess.run(
        ["nft", *args], capture_output=True, text=True, timeout=NFT_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        raise subprocess.CalledProcessError(
            done.returncode, ["nft", *args], done.stdout, done.stderr
        )
    return done.stdout


def _pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class NftTable:
    """The harness's nft table; every rule it adds lives in it and dies with it."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.name = f"{prefix}_{os.getpid()}"
        self.opened = False

    def open(self) -> None:
        """Delete stale tables of dead harness processes, then create ours, empty."""
        self._delete_stale()
        if self.name in self._tables():
            _run(["delete", "table", "inet", self.name])
        _run(["add", "table", "inet", self.name])
        _run(
            [
                "add",
                "chain",
                "inet",
                self.name,
                CHAIN,
                "{ type filter hook input priority 0; policy accept; }",
            ]
        )
        self.opened = True

    def _tables(self) -> list[str]:
        """Names of the inet tables nft knows."""
        out = _run(["list", "tables"])
        return re.findall(r"^table inet (\S+)$", out, flags=re.MULTILINE)

    def _delete_stale(self) -> None:
        """Delete our-prefixed tables whose harness process is gone."""
        for table in self._tables():
            match = re.fullmatch(re.escape(self.prefix) + r"_(\d+)", table)
            if match and int(match.group(1)) != os.getpid() and not _pid_alive(int(match.group(1))):
                _run(["delete", "table", "inet", table])

    def cut(self, links: list[tuple[str, str]]) -> None:
        """Drop src's packets to dst's port for every (src "ip:port", dst "ip:port") link."""
        for src, dst in links:
            src_ip = src.rsplit(":", 1)[0]
            dst_ip, dst_port = dst.rsplit(":", 1)
            _run(
                [
                    "add",
                    "rule",
                    "inet",
                    self.name,
                    CHAIN,
                    "ip",
                    "saddr",
                    src_ip,
                    "ip",
                    "daddr",
                    dst_ip,
                    "tcp",
                    "dport",
                    dst_port,
                    "drop",
                ]
            )

    def rules(self) -> str:
        """The chain as nft prints it, for reports."""
        return _run(["list", "chain", "inet", self.name, CHAIN])

    def heal(self) -> None:
        """Remove every rule, keeping the table."""
        if self.opened:
            _run(["flush", "chain", "inet", self.name, CHAIN])

    def close(self) -> None:
        """Delete the table; safe to call twice and when open() never ran."""
        if self.name in self._tables():
            _run(["delete", "table", "inet", self.name])
        self.opened = False
