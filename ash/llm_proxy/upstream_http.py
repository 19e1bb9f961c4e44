"""The proxy's client for the model API: HTTP/1.1 on asyncio streams, with keep-alive.

Relaying needs little: write the request at once, read the status line and headers, pass the
body through in its framing. httpx (its request model, httpcore's pool, h11 parsing) cost ~2 ms
of CPU per proxied call on the bench machine, on the runner's event loop that also serves every
other sandbox; this client does the same work directly. Response framing (chunked, sized, to
EOF, with read timeouts) is the runtime model client's (`ash.runtime.model_client.http11`).

No `accept-encoding` is sent, so bodies arrive as the API produced them and are relayed as is.

An HTTP proxy named by the environment is used as httpx (the anthropic SDK's client), curl and
urllib use it: HTTPS_PROXY / HTTP_PROXY / ALL_PROXY (either case) by the model API's scheme,
NO_PROXY for the hosts to reach directly. An https model API is reached through a CONNECT tunnel,
so the proxy relays TLS it cannot read (the credential included); an http one is sent to the proxy
with its absolute URL. Credentials in the proxy's URL go in `Proxy-Authorization` (Basic).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ash.runtime.model_client.client import KEEPALIVE_EXPIRY_S
from ash.runtime.model_client.errors import TIMED_OUT, ModelConnectionError
from ash.runtime.model_client.http11 import Response, read_head

MAX_IDLE_PER_ORIGIN = 8


class UpstreamError(Exception):
    """The request got no response: refused, reset, or timed out (`timed_out`)."""

    def __init__(self, timed_out: bool, reason: str) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


def is_timeout(exc: ModelConnectionError) -> bool:
    """A failure while reading a response body: did it time out (else the connection failed)?"""
    return exc.message == TIMED_OUT


@dataclass(frozen=True)
class HttpProxy:
    """The HTTP proxy requests to an origin go through."""

    host: str
    port: int
    authorization: str | None = None  # the Proxy-Authorization value, from the proxy URL's user:password


@dataclass(frozen=True)
class _Origin:
    host: str
    port: int
    tls: bool
    authority: str  # the Host header
    base_path: str  # the base URL's path, prefixed to every request target
    proxy: HttpProxy | None = None


@dataclass(frozen=True)
class Timeouts:
    connect_s: float
    read_s: float
    write_s: float


def proxy_for(scheme: str, host: str) -> HttpProxy | None:
    """The proxy the environment names for SCHEME://HOST, or None to go direct. Raises
    UpstreamError for a proxy URL this client cannot use."""
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme) or proxies.get("all")
    if not url or ("no" in proxies and urllib.request.proxy_bypass_environment(host, proxies)):
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise UpstreamError(False, f"the {scheme.upper()}_PROXY setting is not an http://host:port proxy URL")
    authorization = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        authorization = "Basic " + base64.b64encode(credentials).decode("ascii")
    return HttpProxy(parts.hostname, parts.port or 80, authorization)


_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _through_proxy(origin: _Origin, proxy: HttpProxy, tls: ssl.SSLContext | None) -> _Conn:
    """A connection to PROXY: as it is for a plain-HTTP origin, else tunnelled to ORIGIN with
    CONNECT, then TLS end to end with the origin."""
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    if tls is None:
        return reader, writer
    try:
        authority = f"{origin.host}:{origin.port}" if ":" not in origin.host else f"[{origin.host}]:{origin.port}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"host: {authority}"]
        if proxy.authorization:
            lines.append(f"proxy-authorization: {proxy.authorization}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            status, _, _ = await read_head(reader)
        except (EOFError, ValueError):
            raise UpstreamError(False, "the HTTP proxy did not answer CONNECT") from None
        if status != 200:
            raise UpstreamError(False, f"the HTTP proxy refused the tunnel (HTTP {status})")
        await writer.start_tls(tls, server_hostname=origin.host)
    except BaseException:
        writer.close()
        raise
    return reader, writer


class UpstreamResponse(Response):
    """A response and the origin its connection belongs to (for `release`)."""

    def __init__(self, origin: _Origin, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.origin = origin


class UpstreamHttp:
    """Keep-alive HTTP/1.1 connections to the model API, shared by one proxy's requests."""

    def __init__(self, tls: Callable[[], ssl.SSLContext]) -> None:
        self._tls = tls
        self._idle: dict[_Origin, list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]]] = {}
        self._origins: dict[str, _Origin] = {}

    def _origin(self, base_url: str) -> _Origin:
        origin = self._origins.get(base_url)
        if origin is None:
            url = urlsplit(base_url)
            tls = url.scheme == "https"
            origin = _Origin(host=url.hostname or "", port=url.port or (443 if tls else 80), tls=tls,
                             authority=url.netloc.rpartition("@")[2], base_path=url.path.rstrip("/"),
                             proxy=proxy_for(url.scheme, url.hostname or ""))
            self._origins[base_url] = origin
        return origin

    async def send(self, base_url: str, method: str, target: str, headers: list[tuple[str, str]],
                   body: bytes | None, timeouts: Timeouts) -> UpstreamResponse:
        """Send one request; the response's head is read, its body is the caller's to read
        (then `release` it). Raises UpstreamError when no response arrives."""
        origin = self._origin(base_url)
        path = f"{origin.base_path}{target}"
        lines = [f"{method} {path} HTTP/1.1", f"host: {origin.authority}"]
        if origin.proxy is not None and not origin.tls:  # plain HTTP through the proxy: absolute form
            lines[0] = f"{method} http://{origin.authority}{path} HTTP/1.1"
            if origin.proxy.authorization:
                lines.append(f"proxy-authorization: {origin.proxy.authorization}")
        lines += [f"{name}: {value}" for name, value in headers if name not in ("host", "content-length")]
        if body is not None:
            lines.append(f"content-length: {len(body)}")
        text = "\r\n".join(lines) + "\r\n\r\n"
        if "\0" in text or any("\r" in h or "\n" in h for pair in headers for h in pair):
            raise UpstreamError(False, "a request header contains a line break or NUL")
        request = text.encode("latin-1") + (body or b"")
        reader, writer = await self._connect(origin, timeouts.connect_s)
        try:
            async with asyncio.timeout(timeouts.write_s):
                writer.write(request)
                await writer.drain()
            async with asyncio.timeout(timeouts.read_s):
                status, response_headers, keep_alive = await read_head(reader)
        except TimeoutError:
            writer.close()
            raise UpstreamError(True, "timed out") from None
        except (OSError, EOFError, ValueError) as exc:
            writer.close()
            raise UpstreamError(False, type(exc).__name__) from exc
        except BaseException:
            writer.close()
            raise
        if status in (204, 304) or method == "HEAD":
            response_headers["content-length"] = "0"  # no body, whatever else the head says
        return UpstreamResponse(origin, reader, writer, status, response_headers, keep_alive, timeouts.read_s)

    async def _connect(self, origin: _Origin, timeout_s: float) -> _Conn:
        idle = self._idle.get(origin)
        while idle:
            reader, writer, since = idle.pop()
            if not reader.at_eof() and not writer.is_closing() and time.monotonic() - since < KEEPALIVE_EXPIRY_S:
                return reader, writer
            writer.close()
        try:
            tls = self._tls() if origin.tls else None
        except OSError as exc:  # a CA file or directory that cannot be read (ssl.SSLError included)
            raise UpstreamError(False, f"TLS trust store (SSL_CERT_FILE, SSL_CERT_DIR) not loaded: {exc}") from exc
        try:
            async with asyncio.timeout(timeout_s):
                if origin.proxy is None:
                    return await asyncio.open_connection(origin.host, origin.port, ssl=tls)
                return await _through_proxy(origin, origin.proxy, tls)
        except TimeoutError:
            raise UpstreamError(True, "connect timed out") from None
        except OSError as exc:
            raise UpstreamError(False, type(exc).__name__) from exc

    def release(self, response: UpstreamResponse) -> None:
        """Done with RESPONSE: keep its connection for the next request if the body was read
        to the end, else close it."""
        idle = self._idle.setdefault(response.origin, [])
        if response.reusable and len(idle) < MAX_IDLE_PER_ORIGIN:
            idle.append((response.reader, response.writer, time.monotonic()))
        else:
            response.close()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        writers = [writer for conns in idle.values() for _, writer, _ in conns]
        for writer in writers:
            writer.close()
        for writer in writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
