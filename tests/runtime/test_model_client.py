"""The runtime's Messages API client: same results as the `anthropic` SDK on the same streams,
the SDK's errors and retries, both transports, every body framing, and keep-alive."""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import jiter
import pytest

from ash.llm_proxy import CredentialKind, ModelProxy, Upstream
from ash.runtime.engines.loop import _raw_event
from ash.runtime.model_client import (
    MESSAGE_EVENTS,
    ModelClient,
    ModelConnectionError,
    ModelStatusError,
    parse_tool_input,
)
from tests.fakes.anthropic_server import (
    ErrorReply,
    FakeAnthropic,
    Reply,
    sse_events,
    text,
    thinking,
    tool_use,
    usage,
)
from tests.runtime.conftest import messages, result_of, run_query

PARAMS: dict[str, Any] = {"model": "claude-sonnet-4-6", "max_tokens": 1024,
                          "messages": [{"role": "user", "content": "hi ✓"}]}


# -- a raw HTTP/1.1 server: any framing, line ending or cut -------------------------------------

@dataclass
class Canned:
    """One raw response. `piece` splits the body into chunks of that many bytes."""

    body: bytes
    status: int = 200
    headers: dict[str, str] = field(
        default_factory=lambda: {"content-type": "text/event-stream"})
    framing: str = "chunked"  # chunked | length | eof
    piece: int = 0
    cut_after: int | None = None  # close the connection after this many body bytes
    close: bool = False  # close the connection after the response (keep-alive not honoured)


def sse(events: list[dict[str, Any]], newline: str = "\n") -> bytes:
    frames = [f"event: {e['type']}{newline}data: {json.dumps(e)}{newline}{newline}"
              for e in events]
    return "".join(frames).encode()


class CannedServer:
    def __init__(self, responses: list[Canned]) -> None:
        self.responses = responses
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self, unix_socket: str | None = None) -> str:
        if unix_socket:
            self._server = await asyncio.start_unix_server(self._serve, unix_socket)
            return "http://ash-proxy"
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()  # ends the handlers of idle keep-alive connections
        await asyncio.gather(*self._handlers)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while line := await reader.readline():
                headers = {}
                while (h := await reader.readline()) != b"\r\n":
                    name, _, value = h.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                self.requests.append((line.decode().strip(), headers, body))
                canned = self.responses.pop(0)
                if not await self._respond(writer, canned):
                    break
        finally:
            writer.close()

    async def _respond(self, writer: asyncio.StreamWriter, canned: Canned) -> bool:
        """Write `canned`; False when the connection must close afterwards."""
        body = canned.body[:canned.cut_after] if canned.cut_after is not None else canned.body
        headers = dict(canned.headers)
        if canned.framing == "chunked":
            headers["transfer-encoding"] = "chunked"
        elif canned.framing == "length":
            headers["content-length"] = str(len(canned.body))
        head = f"HTTP/1.1 {canned.status} X\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode())
        size = canned.piece or len(body) or 1
        for i in range(0, len(body), size):
            part = body[i:i + size]
            writer.write(b"%x\r\n%s\r\n" % (len(part), part) if canned.framing == "chunked"
                         else part)
            await writer.drain()
        if canned.cut_after is not None or canned.framing == "eof":
            return False
        if canned.framing == "chunked":
            writer.write(b"0\r\n\r\n")
        await writer.drain()
        return not canned.close


@pytest.fixture
async def canned() -> AsyncIterator[CannedServer]:
    server = CannedServer([])
    yield server
    await server.stop()


NewClient = Callable[..., ModelClient]


@pytest.fixture
async def new_client() -> AsyncIterator[NewClient]:
    """Clients for a base URL (no retries unless asked), closed after the test."""
    clients: list[ModelClient] = []

    def make(url: str, **kw: Any) -> ModelClient:
        kw.setdefault("max_retries", 0)
        clients.append(ModelClient(base_url=url, api_key="ash-sandbox-no-credential", **kw))
        return clients[-1]

    yield make
    for client in clients:
        await client.close()


# -- what the engine sees, through the SDK and through our client ---------------------------------

async def sdk_view(url: str) -> dict[str, Any]:
    """The SDK calls the old loop made, reduced to what the engine used."""
    view: dict[str, Any] = {"events": [], "stops": []}
    client = anthropic.AsyncAnthropic(api_key="k", base_url=url, max_retries=0)
    async with client, client.messages.stream(**PARAMS) as stream:
        async for ev in stream:
            if ev.type not in MESSAGE_EVENTS:
                continue
            snap = stream.current_message_snapshot
            view["events"].append(
                {"type": ev.type, "index": ev.index} if ev.type == "content_block_stop"
                else {"type": "message_stop"} if ev.type == "message_stop"
                else ev.model_dump(mode="json", exclude_unset=True))
            if ev.type == "content_block_stop":
                view["stops"].append((
                    snap.id, snap.model,
                    ev.content_block.model_dump(mode="json", exclude_none=True),
                    snap.usage.model_dump(mode="json", exclude_none=True)))
        msg = await stream.get_final_message()
    view["content"] = [b.model_dump(mode="json", exclude_none=True) for b in msg.content]
    view["stop_reason"] = msg.stop_reason
    view["usage"] = msg.usage.model_dump(mode="json", exclude_none=True)
    return view


async def our_view(client: ModelClient) -> dict[str, Any]:
    view: dict[str, Any] = {"events": [], "stops": []}
    async with client.stream(PARAMS) as stream:
        async for ev in stream:
            view["events"].append(_raw_event(ev))
            if ev["type"] == "content_block_stop":
                view["stops"].append((stream.message["id"], stream.message["model"],
                                      stream.block(ev["index"]), stream.usage()))
        msg = stream.final_message()
    view.update(content=msg.content, stop_reason=msg.stop_reason, usage=msg.usage)
    return view


def reply_events(reply: Reply) -> list[dict[str, Any]]:
    return [data for _, data in sse_events(reply, PARAMS["model"])]


def message_start(**usage_fields: Any) -> dict[str, Any]:
    return {"type": "message_start", "message": {
        "id": "msg_x", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": [], "stop_reason": None, "stop_sequence": None, "container": None,
        "usage": {"input_tokens": 12, "output_tokens": 1, "cache_creation_input_tokens": None,
                  "cache_read_input_tokens": 3, "server_tool_use": None,
                  "service_tier": "standard", **usage_fields}}}


def block_events(index: int, start: dict[str, Any], *deltas: dict[str, Any]) -> list[dict]:
    return [{"type": "content_block_start", "index": index, "content_block": start},
            *({"type": "content_block_delta", "index": index, "delta": d} for d in deltas),
            {"type": "content_block_stop", "index": index}]


def message_end(stop_reason: str, **usage_fields: Any) -> list[dict[str, Any]]:
    return [{"type": "message_delta", "delta": {"stop_reason": stop_reason,
                                                "stop_sequence": None, "stop_details": None},
             "usage": {"output_tokens": 42, **usage_fields}},
            {"type": "message_stop"}]


CITATION = {"type": "char_location", "cited_text": "the sky is blue", "document_index": 0,
            "document_title": None, "start_char_index": 0, "end_char_index": 15,
            "file_id": None}
SEARCH_RESULT = {"type": "web_search_result", "url": "https://example.com", "title": "Ex",
                 "encrypted_content": "enc", "page_age": None}

STREAMS: dict[str, list[dict[str, Any]]] = {
    "text": reply_events(Reply.text("Hello there, a longer reply in small pieces. ✓", chunk=5)),
    "thinking_text_tool": reply_events(Reply(
        [thinking("Let me think about this carefully.", "sig_abc"), text("Running it."),
         tool_use("Bash", {"command": "ls -la", "env": None, "opts": {"deep": [1, None, "ü"]}},
                  "toolu_1")],
        chunk=3, usage=usage(100, 20, cache_creation=5, cache_read=7, cache_creation_1h=2))),
    "empty_tool_input": reply_events(Reply([tool_use("TodoWrite", {}, "toolu_2")])),
    "citations_and_server_tools": [
        message_start(),
        {"type": "ping"},
        *block_events(0, {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
                          "input": {}},
                      {"type": "input_json_delta", "partial_json": '{"query": "sk'},
                      {"type": "input_json_delta", "partial_json": 'y colour"}'}),
        *block_events(1, {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1",
                          "content": [SEARCH_RESULT]}),
        *block_events(2, {"type": "text", "text": "", "citations": None},
                      {"type": "citations_delta", "citation": CITATION},
                      {"type": "text_delta", "text": "The sky "},
                      {"type": "citations_delta", "citation": {**CITATION, "document_index": 1}},
                      {"type": "text_delta", "text": "is blue."}),
        *block_events(3, {"type": "redacted_thinking", "data": "opaque"}),
        {"type": "some_future_event", "detail": None},
        *message_end("end_turn", input_tokens=15, cache_read_input_tokens=None,
                     server_tool_use={"web_search_requests": 1, "web_fetch_requests": None}),
    ],
    "cut_at_max_tokens": [
        message_start(),
        *block_events(0, {"type": "tool_use", "id": "toolu_3", "name": "Write", "input": {}},
                      {"type": "input_json_delta", "partial_json": '{"file_path": "a.txt", '},
                      {"type": "input_json_delta", "partial_json": '"content": "unfinis'}),
        *message_end("max_tokens"),
    ],
}


@pytest.mark.parametrize("name", list(STREAMS))
async def test_stream_gives_what_the_sdk_gave(canned: CannedServer, name: str,
                                              new_client: NewClient) -> None:
    body = sse(STREAMS[name])
    canned.responses = [Canned(body), Canned(body)]
    url = await canned.start()
    expected = await sdk_view(url)
    assert await our_view(new_client(url)) == expected
    assert len(expected["stops"]) == sum(e["type"] == "content_block_stop" for e in STREAMS[name])


@pytest.mark.parametrize("framing", [
    {"framing": "length"}, {"framing": "eof"}, {"piece": 1},
    {"piece": 7, "headers": {"content-type": "text/event-stream", "connection": "close"}},
], ids=["content-length", "read-to-eof", "1-byte-chunks", "7-byte-chunks"])
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
async def test_every_framing_and_line_ending_gives_the_same_message(
        canned: CannedServer, framing: dict[str, Any], newline: str,
        new_client: NewClient) -> None:
    events = STREAMS["thinking_text_tool"]
    body = sse(events, newline) + b": a comment\n\n"
    canned.responses = [Canned(sse(events)), Canned(body, **framing)]
    client = new_client(await canned.start())
    assert await our_view(client) == await our_view(client)


async def test_request_matches_the_sdk(fake_anthropic: FakeAnthropic,
                                       new_client: NewClient) -> None:
    fake_anthropic.script([Reply.text("a"), Reply.text("b")])
    params = {**PARAMS, "system": "Be terse.", "tools": [{"name": "T", "input_schema": {}}],
              "thinking": {"type": "enabled", "budget_tokens": 2000},
              "output_config": {"effort": "high"}}
    sdk = anthropic.AsyncAnthropic(api_key="ash-sandbox-no-credential",
                                   base_url=fake_anthropic.base_url)
    async with sdk, sdk.messages.stream(**params,
                                        extra_headers={"anthropic-beta": "b1,b2"}) as stream:
        await stream.get_final_message()
    async with new_client(fake_anthropic.base_url).stream(params, betas=["b1", "b2"]) as ours:
        assert [e async for e in ours]
    theirs, mine = fake_anthropic.message_requests
    assert mine.method == "POST" and mine.path == "/v1/messages"
    assert mine.body == theirs.body and mine.body["stream"] is True
    for name in ("content-type", "accept", "anthropic-version", "anthropic-beta",
                 "authorization", "host"):
        assert mine.headers[name] == theirs.headers[name], name
    assert mine.headers["user-agent"].startswith("ash-runtime/")


# -- errors and retries ---------------------------------------------------------------------------

async def test_error_status_carries_the_api_message(fake_anthropic: FakeAnthropic,
                                                    new_client: NewClient) -> None:
    fake_anthropic.script([ErrorReply(400, "messages: field required")])
    with pytest.raises(ModelStatusError) as err:
        await our_view(new_client(fake_anthropic.base_url, max_retries=2))
    assert err.value.status == 400 and err.value.message == "messages: field required"
    assert err.value.body["error"]["type"] == "invalid_request_error"
    assert len(fake_anthropic.message_requests) == 1  # 400 is not retried


async def test_error_without_an_api_body_gets_the_sdk_message(canned: CannedServer,
                                                              new_client: NewClient) -> None:
    canned.responses = [Canned(b"<html>bad gateway</html>", status=502, framing="length",
                               headers={"content-type": "text/html"})]
    with pytest.raises(ModelStatusError) as err:
        await our_view(new_client(await canned.start()))
    assert err.value.status == 502 and err.value.message == "<html>bad gateway</html>"


async def test_5xx_and_overload_are_retried_then_succeed(fake_anthropic: FakeAnthropic,
                                                         new_client: NewClient) -> None:
    fake_anthropic.script([ErrorReply(529, "Overloaded"), ErrorReply(500), Reply.text("ok")])
    client = new_client(fake_anthropic.base_url, max_retries=2, initial_retry_delay_s=0.01)
    view = await our_view(client)
    assert view["content"] == [{"type": "text", "text": "ok"}]
    assert len(fake_anthropic.message_requests) == 3


async def test_retries_give_up_after_max_retries(fake_anthropic: FakeAnthropic,
                                                 new_client: NewClient) -> None:
    fake_anthropic.script([ErrorReply(429, "slow down")] * 3)
    client = new_client(fake_anthropic.base_url, max_retries=2, initial_retry_delay_s=0.01)
    with pytest.raises(ModelStatusError) as err:
        await our_view(client)
    assert err.value.status == 429 and err.value.message == "slow down"
    assert len(fake_anthropic.message_requests) == 3


async def test_x_should_retry_false_is_obeyed(fake_anthropic: FakeAnthropic,
                                              new_client: NewClient) -> None:
    fake_anthropic.script([ErrorReply(529, "no", headers={"x-should-retry": "false"}),
                           Reply.text("ok")])
    client = new_client(fake_anthropic.base_url, max_retries=2, initial_retry_delay_s=0.01)
    with pytest.raises(ModelStatusError):
        await our_view(client)
    assert len(fake_anthropic.message_requests) == 1


async def test_x_should_retry_true_retries_a_400(fake_anthropic: FakeAnthropic,
                                                 new_client: NewClient) -> None:
    fake_anthropic.script([ErrorReply(400, "again", headers={"x-should-retry": "true"}),
                           Reply.text("ok")])
    client = new_client(fake_anthropic.base_url, max_retries=2, initial_retry_delay_s=0.01)
    assert (await our_view(client))["content"] == [{"type": "text", "text": "ok"}]
    assert len(fake_anthropic.message_requests) == 2


async def test_retry_after_ms_is_obeyed(fake_anthropic: FakeAnthropic,
                                        new_client: NewClient) -> None:
    fake_anthropic.script([ErrorReply(429, "wait", headers={"retry-after-ms": "20"}),
                           Reply.text("ok")])
    # The backoff alone would wait 30 s.
    client = new_client(fake_anthropic.base_url, max_retries=1, initial_retry_delay_s=30)
    async with asyncio.timeout(5):
        await our_view(client)


async def test_a_retry_after_over_a_minute_falls_back_to_backoff(fake_anthropic: FakeAnthropic,
                                                                 new_client: NewClient) -> None:
    fake_anthropic.script([ErrorReply(429, "come back in an hour", headers={"retry-after": "3600"}),
                           Reply.text("ok")])
    client = new_client(fake_anthropic.base_url, max_retries=1, initial_retry_delay_s=0.01)
    async with asyncio.timeout(5):
        assert (await our_view(client))["content"] == [{"type": "text", "text": "ok"}]


async def test_refused_connection_is_a_connection_error(new_client: NewClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    client = new_client(f"http://127.0.0.1:{port}", max_retries=2, initial_retry_delay_s=0.05)
    started = time.monotonic()
    with pytest.raises(ModelConnectionError) as err:
        await our_view(client)
    assert err.value.message == "Connection error."
    assert time.monotonic() - started >= 0.05 * 0.75 + 0.1 * 0.75  # two backoffs


async def test_a_cut_stream_is_a_connection_error_and_not_retried(canned: CannedServer,
                                                                  new_client: NewClient) -> None:
    body = sse(STREAMS["text"])
    canned.responses = [Canned(body, cut_after=len(body) // 2), Canned(body)]
    with pytest.raises(ModelConnectionError) as err:
        await our_view(new_client(await canned.start(), max_retries=2))
    assert err.value.message == "Connection error."
    assert len(canned.requests) == 1


async def test_a_stalled_stream_times_out(fake_anthropic: FakeAnthropic,
                                          new_client: NewClient) -> None:
    fake_anthropic.script([Reply.text("slow", delay=1.0)])
    client = new_client(fake_anthropic.base_url, max_retries=2, read_timeout_s=0.1)
    with pytest.raises(ModelConnectionError) as err:
        await our_view(client)
    assert err.value.message == "Request timed out."
    assert len(fake_anthropic.message_requests) == 1  # the response had started


async def test_an_error_event_mid_stream_is_a_status_error(fake_anthropic: FakeAnthropic,
                                                           new_client: NewClient) -> None:
    fake_anthropic.script([Reply([text("partial"), text("more")], stream_error={
        "type": "overloaded_error", "message": "Overloaded"})])
    with pytest.raises(ModelStatusError) as err:
        await our_view(new_client(fake_anthropic.base_url))
    # As the SDK: the status of the (successful) response, the message of the event.
    assert err.value.status == 200 and err.value.message == "Overloaded"


# -- transports and connections -------------------------------------------------------------------

async def test_unix_socket_transport(canned: CannedServer, new_client: NewClient) -> None:
    canned.responses = [Canned(sse(STREAMS["text"]))]
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "llm.sock")
        url = await canned.start(unix_socket=path)
        view = await our_view(new_client(url, unix_socket=path))
    assert view["content"][0]["text"].startswith("Hello there")
    line, headers, _ = canned.requests[0]
    assert line == "POST /v1/messages HTTP/1.1" and headers["host"] == "ash-proxy"


async def test_sequential_calls_through_the_model_proxy(fake_anthropic: FakeAnthropic,
                                                        new_client: NewClient) -> None:
    fake_anthropic.script([Reply.text("one"), ErrorReply(400, "bad"), Reply.text("three")])
    with tempfile.TemporaryDirectory() as tmp:
        proxy = ModelProxy(socket_dir=Path(tmp) / "p", sandbox_id="sbx-test",
                           upstream=Upstream(CredentialKind.ANTHROPIC, "sk-ant-real",
                                             fake_anthropic.base_url))
        await proxy.start()
        try:
            client = new_client("http://ash-proxy", unix_socket=str(proxy.socket_path))
            first = await our_view(client)
            with pytest.raises(ModelStatusError):
                await our_view(client)
            third = await our_view(client)
            await client.close()
        finally:
            await proxy.stop()
    assert first["content"] == [{"type": "text", "text": "one"}]
    assert third["content"] == [{"type": "text", "text": "three"}]
    assert [r.headers["x-api-key"] for r in fake_anthropic.message_requests] == \
        ["sk-ant-real"] * 3


async def test_one_connection_serves_sequential_calls(canned: CannedServer,
                                                      new_client: NewClient) -> None:
    body = sse(STREAMS["text"])
    canned.responses = [Canned(body), Canned(b'{"type": "error", "error": {"message": "no"}}',
                                             status=400, framing="length"), Canned(body)]
    client = new_client(await canned.start())
    await our_view(client)
    with pytest.raises(ModelStatusError):
        await our_view(client)
    await our_view(client)
    assert canned.connections == 1


async def test_a_connection_the_server_closed_is_not_reused(canned: CannedServer,
                                                            new_client: NewClient) -> None:
    body = sse(STREAMS["text"])
    canned.responses = [Canned(body, close=True), Canned(body)]
    client = new_client(await canned.start())
    await our_view(client)
    await asyncio.sleep(0.05)  # the server's FIN arrives while the client is idle
    await our_view(client)  # no retries allowed: the stale connection must not be tried
    assert canned.connections == 2


async def test_an_idle_connection_expires(canned: CannedServer, new_client: NewClient,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ash.runtime.model_client.client.KEEPALIVE_EXPIRY_S", 0.0)
    body = sse(STREAMS["text"])
    canned.responses = [Canned(body), Canned(body)]
    client = new_client(await canned.start())
    await our_view(client)
    await our_view(client)
    assert canned.connections == 2


# -- tool input cut short -------------------------------------------------------------------------

@pytest.mark.parametrize("cut", [
    '{"a": 1, "b": "xy', '{"a": 12', '{"a": tr', '{"a": {"b": 1', '{"a": {', '{"a"', '{"a": ',
    '{"a": [1, {"b": "c"}, ', '{"a": 1.5e', '{"a": "x\\', '{"a": null', '{"a": 1,',
    '{"k": "v", "n": tru', '{"s": "a \\" } ] ,", "t": [', '{"a": "b"}'])
def test_tool_input_cut_short_keeps_what_the_sdk_keeps(cut: str) -> None:
    assert parse_tool_input(cut) == jiter.from_json(cut.encode(), partial_mode=True)


def test_broken_tool_input_still_raises() -> None:
    with pytest.raises(ValueError):
        parse_tool_input('{"a": 1} trailing')


# -- in the runtime -------------------------------------------------------------------------------

@pytest.mark.slow
async def test_runtime_reports_a_cut_stream_as_an_api_error(start_runtime,
                                                            canned: CannedServer) -> None:
    body = sse(STREAMS["text"])
    canned.responses = [Canned(body, cut_after=len(body) // 2), Canned(body)]
    client = await start_runtime(ASH_MODEL_BASE_URL=await canned.start())
    res = result_of(await run_query(client, "x"))
    assert res["is_error"] is True and res["terminal_reason"] == "api_error"
    assert res["result"] == "API Error: Connection error."
    assert result_of(await run_query(client, "again"))["result"].startswith("Hello there")


@pytest.mark.slow
async def test_the_init_message_comes_first_even_when_the_model_is_unreachable(start_runtime) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    client = await start_runtime(ASH_MODEL_BASE_URL=f"http://127.0.0.1:{port}", ASH_MODEL_MAX_RETRIES="0")
    kinds = [(m["type"], m.get("subtype")) for m in messages(await run_query(client, "x"))]
    assert kinds == [("system", "init"), ("assistant", None), ("result", "success")]


def test_request_bodies_reuse_the_json_of_messages_sent_before(monkeypatch) -> None:
    """Byte for byte json.dumps of the params, while only new messages are encoded."""
    import json as _json

    from ash.runtime.model_client import client as client_module

    encoded: list[Any] = []
    real = client_module._dumps

    def counting(value: Any) -> str:
        encoded.append(value)
        return real(value)

    monkeypatch.setattr(client_module, "_dumps", counting)
    cache = client_module.EncodedMessages()
    history: list[dict[str, Any]] = [{"role": "user", "content": "héllo ✓"}]
    params = {"model": "m", "max_tokens": 5, "messages": history, "tools": [{"name": "t"}], "stream": True}

    def expected() -> str:
        return _json.dumps(params, ensure_ascii=False, separators=(",", ":"), allow_nan=False)

    assert cache.request_body(params) == expected()
    history.append({"role": "assistant", "content": [{"type": "text", "text": "hi"}]})
    history.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x", "content": "ok"}]})
    encoded.clear()
    assert cache.request_body(params) == expected()
    assert [m for m in encoded if isinstance(m, dict) and "role" in m] == history[1:]  # only the new ones
    assert params["tools"][0] not in encoded  # the same tool definition: its JSON is reused
    history[-1] = {**history[-1], "content": "merged"}  # a merged user turn is a new dict
    assert cache.request_body(params) == expected()
    other = {**params, "messages": [{"role": "user", "content": "a subagent's thread"}]}
    assert cache.request_body(other) == _json.dumps(other, ensure_ascii=False, separators=(",", ":"))
    encoded.clear()
    assert cache.request_body(params) == expected()  # the main thread's entries survived
    assert not [m for m in encoded if isinstance(m, dict) and "role" in m]
    with pytest.raises(ValueError):
        cache.request_body({**params, "temperature": float("nan")})


def test_request_bodies_stay_exact_whatever_the_history_does() -> None:
    """Reuse is by identity of a common prefix: a changed middle, a shorter list, a reordered
    one all still give json.dumps's bytes."""
    import random

    from ash.runtime.model_client import client as client_module

    rng = random.Random(7)
    cache = client_module.EncodedMessages()
    pool = [{"role": "user" if i % 2 else "assistant", "content": f"m{i} ✓"} for i in range(40)]
    history = pool[:10]
    for step in range(200):
        action = rng.choice(["append", "replace", "truncate", "shuffle", "other"])
        if action == "append":
            history = [*history, rng.choice(pool)]
        elif action == "replace" and history:
            history = list(history)
            history[rng.randrange(len(history))] = {"role": "user", "content": f"new {step}"}
        elif action == "truncate":
            history = history[: rng.randrange(len(history) + 1)]
        elif action == "shuffle":
            history = rng.sample(history, len(history))
        params = {"model": "m", "messages": history if action != "other" else pool[step % 7:], "stream": True}
        _assert_exact(cache, params)
    for params in ({"messages": [], "tools": []}, {}, {"messages": [pool[0]], "tools": [{"name": "t"}], "x": [1, "é"]},
                   {"tools": [{"name": "ü"}, {"name": "t"}], "messages": pool[:1]}):
        _assert_exact(cache, params)


def _assert_exact(cache: Any, params: dict[str, Any]) -> None:
    """The body is json.dumps's, UTF-8; the length given with the parts is theirs."""
    import json as _json

    expected = _json.dumps(params, ensure_ascii=False, separators=(",", ":"))
    parts, size = cache.request_parts(params)
    assert b"".join(parts) == expected.encode() and size == len(expected.encode())
    assert cache.request_body(params) == expected


@pytest.mark.parametrize(("a", "b", "n"), [
    ([], [], 0), ([1], [], 0), ([1, 2, 3], [1, 2, 3], 3), ([1, 2, 3], [1, 2], 2), ([1, 2], [1, 2, 3], 2),
    ([1, 2, 3], [1, 9, 3], 1), ([1, 2, 3], [9, 2, 3], 0), ([1, 2, 3, 4, 5], [1, 2, 3, 4, 9], 4),
])
def test_common_prefix(a: list[int], b: list[int], n: int) -> None:
    from ash.runtime.model_client.client import _common_prefix

    assert _common_prefix(a, b) == n
