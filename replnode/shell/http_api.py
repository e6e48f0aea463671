"""HTTP routes on the node's one port: client commands, status, health, metrics, member RPC.

Owns request parsing (relaxed Extended JSON by default, msgpack by content
negotiation), size limits (413 with MongoDB's BSONObjectTooLarge), mapping of
failures to HTTP status (400 unparseable, 413 too large, 200 for every
command reply including errors), and the member endpoints `/_repl/<Request>`.
Contains no replication rules.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from aiohttp import web

from replnode import codec, limits
from replnode.domain import MemberState
from replnode.errors import BadRequestBody, BodyTooLarge, CommandError, RemoteProtocolError
from replnode.shell import wirecodec
from replnode.shell.commands import CommandRunner
from replnode.shell.failpoints import Failpoints
from replnode.shell.peers import AUTH_HEADER, FROM_HEADER

log = logging.getLogger("replnode.shell")

MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")
RUNNER_KEY = web.AppKey("runner", CommandRunner)
EXTRAS_KEY = web.AppKey("extras", dict)


def _wants_msgpack(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    if any(t in accept for t in MSGPACK_TYPES):
        return True
    if accept and "json" in accept:
        return False
    return request.content_type in MSGPACK_TYPES


def render(request: web.Request, body: Any, status: int = 200) -> web.Response:
    if _wants_msgpack(request):
        return web.Response(body=codec.pack(body), status=status,
                            content_type="application/msgpack")
    return web.Response(text=codec.to_json(body), status=status,
                        content_type="application/json")


def error_response(request: web.Request, exc: CommandError) -> web.Response:
    return render(request, exc.to_reply(), status=exc.http_status)


async def read_body(request: web.Request) -> Any:
    """Parse the body; BadRequestBody (400) or BodyTooLarge (413) when it cannot be."""
    try:
        data = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLarge(f"request body exceeds the limit of {limits.request_body_bytes_max} "
                           "bytes") from None
    if len(data) > limits.request_body_bytes_max:
        raise BodyTooLarge(f"request body exceeds the limit of {limits.request_body_bytes_max} "
                           "bytes")
    if not data:
        raise BadRequestBody("empty request body: send one command document")
    try:
        if request.content_type in MSGPACK_TYPES:
            return codec.unpack(data)
        return codec.from_json(data)
    except RemoteProtocolError as exc:
        raise BadRequestBody(str(exc)) from None


async def handle_command(request: web.Request) -> web.Response:
    runner = request.app[RUNNER_KEY]
    db = request.match_info["db"]
    try:
        cmd = await read_body(request)
    except CommandError as exc:
        return error_response(request, exc)
    if not isinstance(cmd, dict):
        return error_response(request, BadRequestBody("the body must be one command document "
                                                      "(a JSON object)"))
    reply = await runner.run(db, cmd)
    return render(request, reply)


async def handle_status(request: web.Request) -> web.Response:
    reply = await request.app[RUNNER_KEY].run("admin", {"replSetGetStatus": 1})
    return render(request, reply)


async def handle_hello(request: web.Request) -> web.Response:
    reply = await request.app[RUNNER_KEY].run("admin", {"hello": 1})
    return render(request, reply)


async def handle_config(request: web.Request) -> web.Response:
    reply = await request.app[RUNNER_KEY].run("admin", {"replSetGetConfig": 1})
    return render(request, reply)


async def handle_health(request: web.Request) -> web.Response:
    node = request.app[RUNNER_KEY].node
    return render(request, {"ok": 1.0, "state": node.state.name})


async def handle_readyz(request: web.Request) -> web.Response:
    """200 only for a PRIMARY, or a SECONDARY within the lag bound (?maxLagSecs=, default 10)."""
    node = request.app[RUNNER_KEY].node
    try:
        max_lag_s = float(request.query.get("maxLagSecs", "10"))
    except ValueError:
        max_lag_s = 10.0
    ready = node.standalone or node.state == MemberState.PRIMARY
    reason = f"state is {node.state.name}"
    if node.state == MemberState.SECONDARY:
        pv = node._primary_view()  # noqa: SLF001 - read-only
        lag_s = (pv.applied_wall_ms - node.applied_wall_ms) / 1000 if pv is not None else 0.0
        ready = lag_s <= max_lag_s
        reason = f"secondary lag {lag_s:.1f}s (bound {max_lag_s}s)"
    body = {"ready": ready, "state": node.state.name, "reason": reason}
    return render(request, body, status=200 if ready else 503)


async def handle_metrics(request: web.Request) -> web.Response:
    render_metrics = request.app[EXTRAS_KEY].get("metrics")
    if render_metrics is None:
        return web.Response(status=404, text="metrics disabled\n")
    data, content_type = render_metrics()
    return web.Response(body=data, headers={"Content-Type": content_type})


async def handle_peer(request: web.Request) -> web.Response:
    """Member-to-member RPC: msgpack request in, msgpack response out."""
    runner = request.app[RUNNER_KEY]
    extras = request.app[EXTRAS_KEY]
    key_digest = extras.get("key_digest")
    if key_digest and not hmac.compare_digest(request.headers.get(AUTH_HEADER, ""), key_digest):
        return web.Response(status=401, text="member authentication failed (keyFile)\n")
    failpoints: Failpoints = extras["failpoints"]
    sender = request.headers.get(FROM_HEADER, "")
    if sender and failpoints.drops(sender, "in"):
        return web.Response(status=503, text="dropped by failpoint dropInternalMessages\n")
    kind = request.match_info["kind"]
    try:
        data = await request.read()
        message = wirecodec.decode_request(kind, data)
    except web.HTTPRequestEntityTooLarge:
        return web.Response(status=413, text="request too large\n")
    except RemoteProtocolError as exc:
        return web.Response(status=400, text=f"{exc}\n")
    if runner.driver.stopping:
        return web.Response(status=503, text="shutting down\n")
    response = await runner.driver.peer_request(message)
    delay = failpoints.delay_ms(sender, "in") if sender else 0
    if delay:
        import asyncio
        await asyncio.sleep(delay / 1000)
    return web.Response(body=wirecodec.encode(response), content_type="application/msgpack")


async def handle_not_found(request: web.Request) -> web.Response:
    return render(request, {"ok": 0.0, "errmsg": f"no route {request.method} {request.path}; "
                            "see README for the routes", "code": 59,
                            "codeName": "CommandNotFound"}, status=404)


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPRequestEntityTooLarge:
        return error_response(request, BodyTooLarge(
            f"request body exceeds the limit of {limits.request_body_bytes_max} bytes"))
    except web.HTTPNotFound:
        return await handle_not_found(request)
    except web.HTTPMethodNotAllowed as exc:
        return render(request, {"ok": 0.0, "errmsg": f"method {request.method} not allowed on "
                                f"{request.path}; allowed: {sorted(exc.allowed_methods)}",
                                "code": 59, "codeName": "CommandNotFound"}, status=405)


def create_app(runner: CommandRunner, *, failpoints: Failpoints, key_digest: str | None,
               metrics: Any = None) -> web.Application:
    app = web.Application(client_max_size=limits.request_body_bytes_max + 1024,
                          middlewares=[_errors])
    app[RUNNER_KEY] = runner
    app[EXTRAS_KEY] = {"failpoints": failpoints, "key_digest": key_digest, "metrics": metrics}
    app.router.add_post("/command/{db}", handle_command)
    app.router.add_get("/status", handle_status)
    app.router.add_get("/hello", handle_hello)
    app.router.add_get("/config", handle_config)
    app.router.add_get("/health", handle_health)
    app.router.add_get("/readyz", handle_readyz)
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_post("/_repl/{kind}", handle_peer)
    return app
