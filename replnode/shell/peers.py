"""Outbound member-to-member calls over HTTP with msgpack bodies.

Owns the client session (bound to this node's own address when it listens on a
specific one, so per-address firewall rules cut exactly the links they name),
per-call timeouts, in-flight bounds per peer, and turning every failure into a
value (`(None, reason)`), never an exception for the caller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp

from replnode import limits
from replnode.core.rsconfig import split_host
from replnode.errors import RemoteProtocolError
from replnode.shell import wirecodec
from replnode.shell.failpoints import Failpoints

log = logging.getLogger("replnode.peers")

AUTH_HEADER = "X-Replnode-Key"
FROM_HEADER = "X-Replnode-From"


def peer_url(host: str, path: str) -> str:
    name, port = split_host(host)
    if ":" in name:
        name = f"[{name}]"
    return f"http://{name}:{port}{path}"


class PeerClient:
    """One aiohttp session shared by every call to every member."""

    def __init__(self, *, source_address: str | None, key_digest: str | None,
                 failpoints: Failpoints) -> None:
        self.source_address = source_address
        self.key_digest = key_digest
        self.failpoints = failpoints
        self.self_host = ""
        self._session: aiohttp.ClientSession | None = None
        self._inflight: dict[str, int] = {}

    async def start(self) -> None:
        local_addr = (self.source_address, 0) if self.source_address else None
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=limits.peer_inflight_requests_max,
                                         local_addr=local_addr, enable_cleanup_closed=True,
                                         keepalive_timeout=30)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, target: str, request: Any, timeout_ms: int) -> tuple[Any, str, int]:
        """(response, "", rtt) or (None, reason, rtt)."""
        started = time.monotonic()
        if self.failpoints.drops(target, "out"):
            await asyncio.sleep(min(timeout_ms, 50) / 1000)
            return None, "dropped by failpoint dropInternalMessages", _ms_since(started)
        delay = self.failpoints.delay_ms(target, "out")
        if delay:
            await asyncio.sleep(delay / 1000)
        if self._session is None:
            return None, "shutting down", 0
        headers = {"Content-Type": "application/msgpack", FROM_HEADER: self.self_host}
        if self.key_digest:
            headers[AUTH_HEADER] = self.key_digest
        try:
            url = peer_url(target, wirecodec.request_path(request))
            body = wirecodec.encode(request)
            timeout = aiohttp.ClientTimeout(total=timeout_ms / 1000)
            async with self._session.post(url, data=body, headers=headers,
                                          timeout=timeout) as resp:
                data = await resp.read()
                if resp.status != 200:
                    reason = f"HTTP {resp.status}: {data[:200].decode(errors='replace')}"
                    return None, reason, _ms_since(started)
            return wirecodec.decode_response(request, data), "", _ms_since(started)
        except asyncio.TimeoutError:
            return None, f"timed out after {timeout_ms}ms", _ms_since(started)
        except (aiohttp.ClientError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}", _ms_since(started)
        except RemoteProtocolError as exc:
            return None, f"malformed reply: {exc}", _ms_since(started)
        except ValueError as exc:
            return None, f"bad target {target!r}: {exc}", _ms_since(started)


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
