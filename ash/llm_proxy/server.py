"""ModelProxy: one sandbox's only way out, an HTTP/1.1 server on a unix socket.

The sandbox's runtime sends Messages API requests with a placeholder key; the proxy strips the
client's auth headers, adds the real credential, relays the response (SSE chunk by chunk),
meters usage and cost per call, and refuses calls once the turn's budget is spent. Without a
credential it answers from the built-in local demo model.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import certifi

from ash.llm_proxy import local_model
from ash.llm_proxy.errors import (
    ASH_ERROR_HEADER,
    BUDGET_EXCEEDED,
    BUDGET_EXCEEDED_STATUS,
    error_bytes,
    new_request_id,
)
from ash.llm_proxy.http11 import HttpConnection, IncomingRequest, ProxyLimits, RequestRejected
from ash.llm_proxy.metering import CallMeter, UsageMeter, UsageRecord
from ash.llm_proxy.relay import relay_upstream
from ash.llm_proxy.upstream import Upstream
from ash.llm_proxy.upstream_http import UpstreamHttp

logger = logging.getLogger("ash.llm_proxy")

SOCKET_NAME = "llm.sock"
UsageCallback = Callable[[UsageRecord], Awaitable[None]]
JSON = [("content-type", "application/json")]
SSE = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]
MESSAGES = "/v1/messages"
COUNT_TOKENS = "/v1/messages/count_tokens"
MODELS = "/v1/models"
_MODEL_ID = re.compile(r"[A-Za-z0-9._:@-]{1,200}")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """What an HTTPS model API is verified against: the CA file in SSL_CERT_FILE and the
    directory in SSL_CERT_DIR when either is set, as httpx (and so the anthropic SDK) and OpenSSL
    read them (a private gateway's CA, a TLS-inspecting corporate proxy); else certifi's bundle.
    Loading a bundle takes ~30 ms: every proxy in the process shares one context."""
    cafile, capath = os.environ.get("SSL_CERT_FILE") or None, os.environ.get("SSL_CERT_DIR") or None
    if cafile or capath:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    return ssl.create_default_context(cafile=certifi.where())


class ModelProxy:
    """The model-API proxy of one sandbox; see the module docstring."""

    def __init__(self, *, socket_dir: str | os.PathLike[str], upstream: Upstream,
                 sandbox_id: str = "", on_usage: UsageCallback | None = None,
                 limits: ProxyLimits | None = None,
                 socket_name: str = SOCKET_NAME) -> None:
        self.socket_dir = Path(socket_dir)
        self.socket_path = self.socket_dir / socket_name
        self.upstream = upstream
        self.sandbox_id = sandbox_id
        self.on_usage = on_usage
        self.limits = limits or ProxyLimits()
        self.total_cost_usd = 0.0
        self.turn_cost_usd = 0.0
        self.budget_usd: float | None = None
        self.calls = 0  # model calls answered (upstream 2xx or local), metered or not
        self._client: UpstreamHttp | None = None
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        # The directory is private to this sandbox and bound read-only into it.
        os.chmod(self.socket_dir, 0o755)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # a stale socket from a crashed runner
        self._server = await asyncio.start_unix_server(
            self._on_connection, path=str(self.socket_path), limit=self.limits.max_header_bytes)
        # The sandbox runs under its own uid; the socket must be connectable by it.
        os.chmod(self.socket_path, 0o666)

    async def stop(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.close()
            self._server = None
            await asyncio.sleep(0)  # let connections accepted before close() register
        # Connections accepted just before close() register while we wait: loop until none.
        while tasks := list(self._connections):
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._connections.difference_update(tasks)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    async def __aenter__(self) -> ModelProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    # -- budget ------------------------------------------------------------------------------

    def set_budget(self, max_usd: float | None) -> None:
        """Start a turn: reset the turn's spend and cap it at `max_usd` (None: no cap)."""
        self.budget_usd = max_usd
        self.turn_cost_usd = 0.0

    def set_upstream(self, upstream: Upstream) -> None:
        """Switch credential/base URL (a pre-warmed sandbox claimed by a session)."""
        self.upstream = upstream

    @property
    def budget_exhausted(self) -> bool:
        return self.budget_usd is not None and self.turn_cost_usd >= self.budget_usd

    # -- connections -------------------------------------------------------------------------

    def upstream_client(self) -> UpstreamHttp:
        """The keep-alive HTTP client for upstream calls (created on first use). It never reads
        HTTP(S)_PROXY or netrc: the runner's environment must not redirect model calls."""
        if self._client is None:
            self._client = UpstreamHttp(_tls_context)
        return self._client

    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._handle_connection(HttpConnection(reader, writer, self.limits))
        except asyncio.CancelledError:
            # stop() cancels its own connection tasks; asyncio would log a re-raised cancel.
            if not self._stopping:
                raise
        finally:
            self._connections.discard(task)

    async def _handle_connection(self, conn: HttpConnection) -> None:
        try:
            if self._stopping:
                return
            if len(self._connections) > self.limits.max_connections:
                await conn.reject(429, JSON, error_bytes(429, "too many concurrent connections "
                                                         "to the model proxy"))
                return
            await self._serve(conn)
        except (ConnectionError, asyncio.IncompleteReadError):
            # The client went away; there is nobody to answer.
            logger.debug("model proxy client disconnected (sandbox %s)", self.sandbox_id)
        except Exception:
            logger.exception("model proxy connection failed (sandbox %s)", self.sandbox_id)
        finally:
            await conn.close()

    async def _serve(self, conn: HttpConnection) -> None:
        while True:
            try:
                request = await conn.next_request()
            except RequestRejected as exc:
                await conn.reject(exc.status, JSON, error_bytes(exc.status, exc.message))
                return
            if request is None:
                return
            started = time.monotonic()
            status = await self._dispatch(conn, request)
            logger.debug("model proxy %s %s -> %s in %.1f ms (sandbox %s)", request.method,
                         request.path, status, (time.monotonic() - started) * 1000,
                         self.sandbox_id)

    async def _error(self, conn: HttpConnection, status: int, message: str,
                     extra: list[tuple[str, str]] | None = None) -> int:
        request_id = new_request_id()
        await conn.respond(status, JSON + [("request-id", request_id)] + (extra or []),
                           error_bytes(status, message, request_id=request_id))
        return status

    async def _dispatch(self, conn: HttpConnection, request: IncomingRequest) -> int:
        path, method = request.path.rstrip("/") or "/", request.method
        expected = ("GET" if path == MODELS or path.startswith(MODELS + "/")
                    else "POST" if path in (MESSAGES, COUNT_TOKENS) else None)
        if expected is None or (path.startswith(MODELS + "/")
                                and not _MODEL_ID.fullmatch(path[len(MODELS) + 1:])):
            return await self._error(conn, 404, f"Not found: {method} {path}")
        if method != expected:
            return await self._error(conn, 405, f"Method {method} not allowed on {path}")
        problem = self.upstream.problem
        if problem:
            return await self._error(conn, 400, problem)
        if path == MESSAGES and self.budget_exhausted:
            message = (f"Ash budget exceeded: this turn spent ${self.turn_cost_usd:.6f} of its "
                       f"${self.budget_usd:.6f} budget")
            return await self._error(conn, BUDGET_EXCEEDED_STATUS, message,
                                     [(ASH_ERROR_HEADER, BUDGET_EXCEEDED)])
        if self.upstream.is_local:
            return await self._local(conn, request, path)
        return await relay_upstream(self, conn, request, path == MESSAGES)

    async def _local(self, conn: HttpConnection, request: IncomingRequest, path: str) -> int:
        if path.startswith(MODELS):
            model_id = path[len(MODELS) + 1:]
            if not model_id:
                payload = local_model.local_models_list()
            elif model_id == local_model.LOCAL_MODEL_ID:
                payload = local_model.local_model_info()
            else:
                return await self._error(conn, 404, f"model: {model_id}")
            await conn.respond(200, JSON, json.dumps(payload).encode())
            return 200
        try:
            body = json.loads(request.body)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return await self._error(conn, 400, "request body must be a JSON object with messages")
        if path == COUNT_TOKENS:
            await conn.respond(200, JSON, json.dumps(local_model.local_count_tokens(body)).encode())
            return 200
        started = time.monotonic()
        answer = local_model.local_respond(body)
        request_id = new_request_id()
        call = CallMeter(self, UsageMeter(local_model.LOCAL_MODEL_ID), request_id, started, local=True,
                         stream=bool(body.get("stream")))
        headers = [("request-id", request_id)]
        try:
            if body.get("stream"):
                await conn.start_stream(200, SSE + headers)
                for frame in answer.sse_frames():
                    await call.feed(frame)
                    await conn.send_chunk(frame)
                await conn.end_stream()
            else:
                data = answer.json_bytes()
                await call.feed_json(data)
                await conn.respond(200, JSON + headers, data)
        finally:
            await call.finish()
        return 200

    async def record_usage(self, meter: UsageMeter, request_id: str | None, started: float,
                           *, local: bool, stream: bool) -> None:
        """Count one answered model call and report its usage (never raises); `CallMeter` calls it."""
        self.calls += 1
        if not meter.seen:
            return
        record = meter.record(sandbox_id=self.sandbox_id, request_id=request_id,
                              duration_ms=int((time.monotonic() - started) * 1000),
                              local=local, stream=stream)
        self.total_cost_usd += record.cost_usd
        self.turn_cost_usd += record.cost_usd
        if self.on_usage is not None:
            try:
                await self.on_usage(record)
            except Exception:
                logger.exception("on_usage callback failed (sandbox %s)", self.sandbox_id)
