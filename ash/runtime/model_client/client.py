"""The client: one streamed `POST /v1/messages` per call, with the SDK's retry policy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, NamedTuple

from ash import __version__
from ash.runtime.model_client.errors import (
    CONNECTION_ERROR,
    TIMED_OUT,
    ModelConnectionError,
    ModelStatusError,
    error_message,
)
from ash.runtime.model_client.http11 import Endpoint, Response, read_head
from ash.runtime.model_client.stream import MessageStream

log = logging.getLogger("ash.runtime")

API_VERSION = "2026-10-21"  # what anthropic 2.12.0 sends; the proxy forwards it upstream
USER_AGENT = f"ash-runtime/{__version__}"
CONNECT_TIMEOUT_S = 5.0  # the SDK's defaults
READ_TIMEOUT_S = 600.0
INITIAL_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 8.0
MAX_RETRY_AFTER_S = 60.0  # a longer retry-after falls back to backoff: a query must not sleep for hours
KEEPALIVE_EXPIRY_S = 5.0  # httpx's: an older idle connection may be gone without a word
MAX_ERROR_BODY = 1024 * 1024


def should_retry(status: int, headers: Mapping[str, str]) -> bool:
    """The SDK's policy: the server's x-should-retry, else 408, 409, 429 and 5xx."""
    hint = headers.get("x-should-retry")
    if hint in ("true", "false"):
        return hint == "true"
    return status in (408, 409, 429) or status >= 500


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks us to wait: retry-after-ms, else retry-after (seconds or date)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        with contextlib.suppress(KeyError, ValueError):
            return float(headers[name]) / scale
    if "retry-after" not in headers:
        return None
    import email.utils  # only an HTTP-date retry-after needs it

    parsed = email.utils.parsedate_tz(headers["retry-after"])
    return None if parsed is None else float(email.utils.mktime_tz(parsed) - time.time())


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _encoded(value: Any) -> bytes:
    return _dumps(value).encode()


class EncodedMessages:
    """The request body, reusing the JSON of the messages (and tools) earlier calls sent.

    Every call sends the whole history, so encoding it is O(history) per call (~1 ms at a few
    hundred messages on the bench machine, far more with large tool results). Each call's message
    list is kept as a snapshot with its messages' JSON; a later call whose list starts with the
    same message objects (compared by identity, at C speed) reuses that JSON and encodes only the
    messages after it. It relies on what the engine guarantees: a message dict is never changed
    once it is in a conversation (merging user turns makes a new dict), and a tool's definition
    dict never changes. Snapshots hold their items, so an id cannot be reused while it is
    compared. The body is byte for byte what `json.dumps` gives for PARAMS, UTF-8 encoded.

    The JSON is kept as bytes and the body handed over in parts, joined once with the request's
    head: the history's bytes are copied once per call, where each string operation (join,
    brackets, f-string, encode, head + body) copied them, about nine times. For a 2 MB history
    that was ~7 ms a call on the bench machine; it is ~0.1 ms.
    """

    def __init__(self) -> None:
        self._lists: dict[str, _EncodedList | _EncodedItems] = {"messages": _EncodedList(), "tools": _EncodedItems()}

    def request_parts(self, params: Mapping[str, Any]) -> tuple[list[bytes], int]:
        """The body as parts whose concatenation is the UTF-8 JSON of PARAMS, and its length
        (kept along with the parts: summing a long history's parts was O(history) per call)."""
        parts, size = [b"{"], 2
        for i, (key, value) in enumerate(params.items()):
            cache = self._lists.get(key) if isinstance(value, list) else None
            name = _encoded(key)
            parts += [b"," if i else b"", name, b":"]
            if cache is not None:
                array, array_size = cache.encode(value)
                parts += array
            else:
                array = _encoded(value)
                parts.append(array)
                array_size = len(array)
            size += bool(i) + len(name) + 1 + array_size
        parts.append(b"}")
        return parts, size

    def request_body(self, params: Mapping[str, Any]) -> str:
        return b"".join(self.request_parts(params)[0]).decode()


class _EncodedItems:
    """For short lists whose items recur in any order (tool definitions): JSON by item identity."""

    MAX = 256

    def __init__(self) -> None:
        self._cache: dict[int, tuple[Any, bytes]] = {}  # id -> (the item, kept alive; its JSON)

    def encode(self, items: list[Any]) -> tuple[list[bytes], int]:
        if len(self._cache) > self.MAX:
            self._cache.clear()
        texts = []
        for item in items:
            hit = self._cache.get(id(item))
            if hit is None:  # an id in the cache is its live item's: the entry keeps it alive
                hit = self._cache[id(item)] = (item, _encoded(item))
            texts.append(hit[1])
        return _array(texts, sum(map(len, texts)))


class _Snapshot(NamedTuple):
    ids: list[int]
    texts: list[bytes]  # each item's JSON
    ends: list[int]  # ends[k]: the bytes of texts[:k]
    items: list[Any]  # held: an id cannot be reused while it is compared


class _EncodedList:
    """For histories: JSON of the longest identical prefix of an earlier call's list."""

    KEEP = 8  # snapshots: subagent and main-thread calls interleave

    def __init__(self) -> None:
        self._snapshots: list[_Snapshot] = []  # newest last

    def encode(self, items: list[Any]) -> tuple[list[bytes], int]:
        ids = list(map(id, items))
        best: _Snapshot | None = None
        reused = 0
        for snapshot in self._snapshots:
            n = _common_prefix(ids, snapshot.ids)
            if n > reused:
                best, reused = snapshot, n
        texts = best.texts[:reused] if best is not None else []
        ends = best.ends[:reused + 1] if best is not None else [0]
        for item in items[reused:]:
            text = _encoded(item)
            texts.append(text)
            ends.append(ends[-1] + len(text))
        if best is not None:
            self._snapshots.remove(best)
        self._snapshots.append(_Snapshot(ids, texts, ends, list(items)))
        del self._snapshots[:-self.KEEP]
        return _array(texts, ends[-1])


def _array(texts: list[bytes], size: int) -> tuple[list[bytes], int]:
    """A JSON array of TEXTS (SIZE bytes together) as parts, the items themselves rather than a
    joined copy of them, and the array's length."""
    if not texts:
        return [b"[]"], 2
    parts = [b","] * (2 * len(texts) + 1)
    parts[0] = b"["
    parts[1::2] = texts
    parts[-1] = b"]"
    return parts, size + len(texts) + 1  # the commas between the items and the brackets


def _common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading items A and B share (list comparisons: C speed, no Python loop)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n - 1  # a[:lo] == b[:lo] holds; a[:hi + 1] differs
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class ModelClient:
    """Streams Messages API responses; keeps one idle connection for the next call."""

    def __init__(self, *, base_url: str, api_key: str, unix_socket: str | None = None,
                 max_retries: int = 2, connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 read_timeout_s: float = READ_TIMEOUT_S,
                 initial_retry_delay_s: float = INITIAL_RETRY_DELAY_S,
                 max_retry_delay_s: float = MAX_RETRY_DELAY_S) -> None:
        self.endpoint = Endpoint.parse(base_url, unix_socket)
        self.max_retries = max_retries
        self._api_key = api_key
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._initial_retry_delay_s = initial_retry_delay_s
        self._max_retry_delay_s = max_retry_delay_s
        self._tls: ssl.SSLContext | None = None
        self._messages = EncodedMessages()
        self._idle: tuple[asyncio.StreamReader, asyncio.StreamWriter, float] | None = None

    @contextlib.asynccontextmanager
    async def stream(self, params: Mapping[str, Any], *,
                     betas: Sequence[str] = ()) -> AsyncIterator[MessageStream]:
        """POST the params with `stream: true`; retried as the SDK does until a response starts."""
        parts, size = self._messages.request_parts({**params, "stream": True})
        head = self._request_head(size, betas)
        response = await self._send_with_retries(b"".join([head, *parts]))
        stream = MessageStream(response)
        try:
            yield stream
        finally:
            await stream.aclose()
            self._release(response)

    def _request_head(self, length: int, betas: Sequence[str]) -> bytes:
        headers = {"host": self.endpoint.authority, "accept": "application/json",
                   "content-type": "application/json", "anthropic-version": API_VERSION,
                   "authorization": f"Bearer {self._api_key}", "user-agent": USER_AGENT,
                   "content-length": str(length)}
        if betas:
            headers["anthropic-beta"] = ",".join(betas)
        if any(c in v for v in headers.values() for c in "\r\n\0"):
            raise ValueError("a model request header contains a line break or NUL")
        lines = [f"POST {self.endpoint.path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def _send_with_retries(self, request: bytes) -> Response:
        retries = 0
        while True:
            headers: Mapping[str, str] = {}
            try:
                response = await self._send(request)
            except ModelConnectionError:
                if retries >= self.max_retries:
                    raise
            else:
                if response.status < 400:
                    return response
                if retries >= self.max_retries or not should_retry(response.status,
                                                                   response.headers):
                    raise await self._status_error(response)
                response.close()
                headers = response.headers
            delay = self._retry_delay(retries, headers)
            log.info("retrying the model request in %.2f s", delay)
            await asyncio.sleep(delay)
            retries += 1

    def _retry_delay(self, retries_taken: int, headers: Mapping[str, str]) -> float:
        wait = retry_after(headers)
        if wait is not None and 0 < wait <= MAX_RETRY_AFTER_S:
            return wait
        backoff = min(self._initial_retry_delay_s * 2.0 ** min(retries_taken, 1000),
                      self._max_retry_delay_s)
        return backoff * (1 - 0.25 * random.random())

    async def _send(self, request: bytes) -> Response:
        reader, writer = await self._connection()
        try:
            status, headers, keep_alive = await self._exchange(reader, writer, request)
        except BaseException:
            writer.close()  # half a request sent or half a head read: the connection is done
            raise
        return Response(reader, writer, status, headers, keep_alive, self._read_timeout_s)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        request: bytes) -> tuple[int, dict[str, str], bool]:
        try:
            async with asyncio.timeout(self._read_timeout_s):
                writer.write(request)
                await writer.drain()
                return await read_head(reader)
        except TimeoutError:
            raise ModelConnectionError(TIMED_OUT) from None
        except (OSError, EOFError, ValueError) as exc:
            raise ModelConnectionError(CONNECTION_ERROR) from exc

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        idle, self._idle = self._idle, None
        if idle is not None:
            reader, writer, since = idle
            if (not reader.at_eof() and not writer.is_closing()
                    and time.monotonic() - since < KEEPALIVE_EXPIRY_S):
                return reader, writer
            writer.close()
        endpoint = self.endpoint
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                if endpoint.unix_socket:
                    return await asyncio.open_unix_connection(endpoint.unix_socket)
                return await asyncio.open_connection(
                    endpoint.hostname, endpoint.port,
                    ssl=self._tls_context() if endpoint.tls else None)
        except TimeoutError:
            raise ModelConnectionError(TIMED_OUT) from None
        except OSError as exc:
            raise ModelConnectionError(CONNECTION_ERROR) from exc

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    async def _status_error(self, response: Response) -> ModelStatusError:
        """The error the SDK raises for an error response: the body's message, else its text."""
        try:
            text = (await response.read_all(MAX_ERROR_BODY)).decode("utf-8", "replace").strip()
        finally:
            self._release(response)
        status = response.status
        try:
            body: Any = json.loads(text)
            fallback = f"Error code: {status} - {body}"
        except ValueError:
            body, fallback = text, text or f"Error code: {status}"
        return ModelStatusError(status, body, error_message(body, fallback))

    def _release(self, response: Response) -> None:
        """Keep the connection for the next call if its response was read to the end."""
        if response.reusable and self._idle is None:
            self._idle = (response.reader, response.writer, time.monotonic())
        else:
            response.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, None
        if idle is not None:
            idle[1].close()
            with contextlib.suppress(OSError):
                await idle[1].wait_closed()
