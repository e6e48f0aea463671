"""A client that follows the primary, and the rules sorting replies into ok / fail / unknown.

Owns the HTTP round trip of a workload operation (no retries: one attempt, one record),
primary discovery through `/hello` (members asked in a seeded random order, so during a
partition some clients keep talking to a primary that no longer is one, as real drivers
can), and `classify`, the single place that decides whether a reply proves an operation
happened, proves it did not, or leaves it unknown.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any

from tests.chaos.history import FAIL, OK, UNKNOWN
from tests.integration.harness import http

# Errors after which a write certainly did not happen: it was refused before being applied.
WRITE_REFUSED_CODES = frozenset(
    {
        10107,  # NotWritablePrimary
        13435,  # NotPrimaryNoSecondaryOk
        13436,  # NotPrimaryOrSecondary
        94,  # NotYetInitialized
        2,  # BadValue
        9,  # FailedToParse
        14,  # TypeMismatch
        59,  # CommandNotFound
    }
)
NOT_PRIMARY_CODES = frozenset({10107, 13435, 13436, 189, 11602, 11600, 91})
HELLO_TIMEOUT_S = 1.0
DISCOVERY_PAUSE_S = 0.1

NETWORK_ERRORS = (OSError, HTTPException, ValueError)


@dataclass(frozen=True, slots=True)
class Reply:
    """What came back from one request: a body, or the network error instead."""

    body: dict[str, Any] | None
    error: str = ""
    host: str = ""


def classify(reply: Reply, *, write: bool) -> tuple[str, str]:
    """(status, note): OK, FAIL (certainly not applied) or UNKNOWN, and why."""
    body = reply.body
    if body is None:
        return UNKNOWN, f"no reply: {reply.error}"
    if body.get("ok") == 1:
        if "writeConcernError" in body:
            wce = body["writeConcernError"]
            return UNKNOWN, f"writeConcernError {wce.get('code')} {wce.get('codeName')}"
        if body.get("writeErrors"):
            err = body["writeErrors"][0]
            return FAIL, f"writeError {err.get('code')} {err.get('errmsg', '')[:80]}"
        return OK, ""
    code = body.get("code")
    note = f"error {code} {body.get('codeName')}: {str(body.get('errmsg', ''))[:120]}"
    if not write or code in WRITE_REFUSED_CODES:
        return FAIL, note
    return UNKNOWN, note


class PrimaryFollower:
    """Sends commands to the member it believes is primary; rediscovers after errors."""

    def __init__(
        self, hosts: Callable[[], list[str]], rng: random.Random, op_timeout_s: float
    ) -> None:
        self.hosts = hosts
        self.rng = rng
        self.op_timeout_s = op_timeout_s
        self.primary: str | None = None

    def request(self, host: str, db: str, cmd: dict[str, Any]) -> Reply:
        """POST one command; a connection error or timeout becomes `Reply(None, error)`."""
        try:
            status, body = http(f"http://{host}/command/{db}", cmd, timeout=self.op_timeout_s)
        except NETWORK_ERRORS as exc:
            return Reply(None, f"{type(exc).__name__}: {exc}", host)
        if not isinstance(body, dict):
            return Reply(None, f"HTTP {status}: {str(body)[:120]}", host)
        return Reply(body, "", host)

    def discover(self) -> str | None:
        """The first member (in random order) that says it is a writable primary."""
        hint = None
        for host in self.rng.sample(self.hosts(), len(self.hosts())):
            try:
                _, hello = http(f"http://{host}/hello", timeout=HELLO_TIMEOUT_S)
            except NETWORK_ERRORS:
                continue
            if not isinstance(hello, dict):
                continue
            if hello.get("isWritablePrimary"):
                self.primary = host
                return host
            hint = hint or hello.get("primary")
        self.primary = hint if hint in self.hosts() else None
        return self.primary

    def target(self) -> str | None:
        """The current primary guess, discovering one if there is none (None: nobody)."""
        if self.primary is None and self.discover() is None:
            time.sleep(DISCOVERY_PAUSE_S)
            return None
        return self.primary

    def observe(self, reply: Reply) -> None:
        """Follow a `primary` hint, or forget the primary after an error that disowns it."""
        body = reply.body
        if body is None:
            self.primary = None
            return
        if body.get("ok") != 1 and body.get("code") in NOT_PRIMARY_CODES:
            hint = body.get("primary")
            self.primary = hint if isinstance(hint, str) and hint in self.hosts() else None

    def any_member(self) -> str:
        """A random member, for reads any member may serve."""
        return self.rng.choice(self.hosts())
