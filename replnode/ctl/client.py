"""HTTP client of `replctl`: one member's routes, Extended JSON in and out, primary following.

Owns how `replctl` reaches members: `host:port` parsing (also seed lists and
`mongodb://` strings), `GET /status`-style routes, `POST /command/{db}`, the
mapping of `{ok: 0}` replies onto `ServerError` and of connection failures onto
`Unreachable`, and finding the primary through `/hello`. Uses only the standard
library and `bson.json_util`, so the CLI starts fast. Never retries a command
that could have been applied, except where the caller asks (`retrying`).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from bson import json_util

JSON_OPTIONS = json_util.JSONOptions(
    json_mode=json_util.JSONMode.RELAXED, tz_aware=False, uuid_representation=4
)
DEFAULT_TIMEOUT_S = 10.0
T = TypeVar("T")


class CtlError(Exception):
    """Base of every failure `replctl` reports; `exit_status` is the process exit code."""

    exit_status = 1


class Unreachable(CtlError):
    """A member did not answer (refused, timed out, name not resolved)."""

    exit_status = 3


class NoPrimary(CtlError):
    """No writable primary could be found among the members asked."""

    exit_status = 4


class ServerError(CtlError):
    """A member answered `{ok: 0, errmsg, code, codeName}`; keeps the whole reply."""

    def __init__(self, host: str, reply: dict[str, Any]) -> None:
        self.host = host
        self.reply = reply
        self.errmsg = str(reply.get("errmsg", "command failed"))
        self.code = reply.get("code")
        self.code_name = str(reply.get("codeName", ""))
        self.primary = reply.get("primary")
        super().__init__(self.describe())

    def describe(self) -> str:
        """One line: the server's message, its code and codeName, and where the primary is."""
        text = f"{self.errmsg} (code {self.code} {self.code_name}; from {self.host})"
        if self.code == 10107 or self.code_name == "NotWritablePrimary":
            if not self.primary:
                text += "; no primary is known right now"
            elif str(self.primary) not in self.errmsg:
                text += f"; the primary is {self.primary}"
        return text


def to_json(obj: Any, indent: int | None = None) -> str:
    """Relaxed Extended JSON, as mongosh prints it."""
    return json_util.dumps(obj, json_options=JSON_OPTIONS, indent=indent)


def from_json(text: str | bytes) -> Any:
    """Parse (relaxed or canonical) Extended JSON; raises CtlError with the parser's reason."""
    try:
        return json_util.loads(text, json_options=JSON_OPTIONS)
    except Exception as exc:  # json and bson raise several unrelated types
        raise CtlError(f"not valid (Extended) JSON: {exc}") from None


def normalize_host(text: str) -> str:
    """`h`, `h:p`, `http://h:p/` -> `h:p` (port 27017 when missing)."""
    text = text.strip()
    if "://" in text:
        text = urllib.parse.urlsplit(text).netloc or text
    text = text.rstrip("/")
    if text.startswith("[") and "]" in text:
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":") or "27017"
        return f"[{host}]:{port}"
    if text.count(":") == 1:
        host, port = text.split(":")
        return f"{host}:{port or '27017'}"
    if ":" in text:  # bare IPv6 address
        return f"[{text}]:27017"
    return f"{text}:27017"


def parse_seeds(text: str) -> list[str]:
    """`h1:p,h2:p` or `mongodb://h1,h2/?replicaSet=rs0` -> [h1:p, h2:p]."""
    if text.startswith("mongodb://"):
        text = text[len("mongodb://") :]
        text = text.split("@", 1)[-1].split("/", 1)[0].split("?", 1)[0]
    seeds = [normalize_host(part) for part in text.split(",") if part.strip()]
    if not seeds:
        raise CtlError(f"no host in {text!r}")
    return seeds


def base_url(host: str) -> str:
    """http://h:p for a member address."""
    return f"http://{normalize_host(host)}"


class Client:
    """Talks to one member over HTTP; every call is bounded by `timeout_s`."""

    def __init__(self, host: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.host = normalize_host(host)
        self.timeout_s = timeout_s

    def _request(self, path: str, body: Any = None) -> tuple[int, Any]:
        """One HTTP exchange; connection failures become Unreachable."""
        data = to_json(body).encode() if body is not None else None
        req = urllib.request.Request(
            base_url(self.host) + path,
            data=data,
            method="POST" if data is not None else "GET",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return resp.status, _decode(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _decode(exc.read())
        except (TimeoutError, urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(f"cannot reach {self.host}: {reason}") from None

    def get(self, path: str) -> tuple[int, Any]:
        """GET a route; returns (HTTP status, decoded body), whatever the status."""
        return self._request(path)

    def get_doc(self, path: str) -> dict[str, Any]:
        """GET a route that answers a MongoDB-shaped document; `{ok: 0}` raises ServerError."""
        _status, body = self._request(path)
        return self._checked(body)

    def command(self, cmd: dict[str, Any], db: str = "admin") -> dict[str, Any]:
        """Run one command document; `{ok: 0}` raises ServerError."""
        _status, body = self._request(f"/command/{urllib.parse.quote(db, safe='')}", cmd)
        return self._checked(body)

    def raw_command(self, cmd: dict[str, Any], db: str = "admin") -> dict[str, Any]:
        """Run one command document and return the reply as is, errors included."""
        _status, body = self._request(f"/command/{urllib.parse.quote(db, safe='')}", cmd)
        if not isinstance(body, dict):
            raise CtlError(f"{self.host} answered something that is not a document: {body!r}")
        return body

    def _checked(self, body: Any) -> dict[str, Any]:
        """The reply document, or ServerError for {ok: 0}."""
        if not isinstance(body, dict):
            raise CtlError(f"{self.host} answered something that is not a document: {body!r}")
        if not body.get("ok"):
            raise ServerError(self.host, body)
        return body


def _decode(raw: bytes) -> Any:
    """Extended JSON when the body is JSON, else the text (error pages)."""
    if not raw:
        return {}
    try:
        return json_util.loads(raw, json_options=JSON_OPTIONS)
    except (ValueError, json.JSONDecodeError, TypeError):
        return raw.decode(errors="replace")
    except Exception:  # bson's own errors for bad $-types
        return raw.decode(errors="replace")


def first_reachable(seeds: list[str], timeout_s: float = DEFAULT_TIMEOUT_S) -> Client:
    """The first seed whose /hello answers; Unreachable names every seed tried."""
    problems = []
    for seed in seeds:
        client = Client(seed, timeout_s)
        try:
            client.get_doc("/hello")
            return client
        except CtlError as exc:
            problems.append(str(exc))
    raise Unreachable("; ".join(problems))


def find_primary(seeds: list[str], timeout_s: float = DEFAULT_TIMEOUT_S) -> Client:
    """A client for the writable primary, found through `/hello` of the seeds (one hop)."""
    problems: list[str] = []
    asked: set[str] = set()
    candidates = list(seeds)
    for _ in range(len(seeds) + 8):  # seeds, then primaries they name; bounded
        if not candidates:
            break
        host = normalize_host(candidates.pop(0))
        if host in asked:
            continue
        asked.add(host)
        client = Client(host, timeout_s)
        try:
            hello = client.get_doc("/hello")
        except CtlError as exc:
            problems.append(str(exc))
            continue
        if hello.get("isWritablePrimary"):
            return client
        named = hello.get("primary")
        if named:
            candidates.insert(0, str(named))
        candidates.extend(str(h) for h in hello.get("hosts", []) if h not in asked)
    detail = "; ".join(problems)
    raise NoPrimary(
        "no writable primary found (asked "
        + ", ".join(sorted(asked))
        + ")"
        + (f": {detail}" if detail else "")
    )


def on_primary(
    seeds: list[str], action: Callable[[Client], T], timeout_s: float, attempts: int = 3
) -> T:
    """Run `action` on the primary; if it answers NotWritablePrimary, follow and retry."""
    last: ServerError | None = None
    for _ in range(attempts):
        client = find_primary(seeds, timeout_s)
        try:
            return action(client)
        except ServerError as exc:
            if exc.code != 10107:
                raise
            last = exc
            seeds = [str(exc.primary)] + seeds if exc.primary else seeds
            time.sleep(0.5)
    assert last is not None
    raise last
