"""The built-in local demo model, through the proxy and the anthropic SDK."""

from __future__ import annotations

import json
from typing import Any

import anthropic

from ash.llm_proxy import LOCAL_MODEL_ID, Upstream, UsageRecord
from ash.llm_proxy.local_model import local_respond
from tests.llm_proxy.conftest import ProxyFactory, uds_client
from tests.llm_proxy.test_proxy_sdk import sdk_client

BASH = {"name": "Bash", "description": "Run a shell command",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"},
                                                          "description": {"type": "string"}},
                         "required": ["command"]}}
GLOB = {"name": "Glob", "description": "Find files",
        "input_schema": {"type": "object", "properties": {"pattern": {"type": "string"}}}}
WRITE = {"name": "Write", "description": "Write a file", "input_schema": {"type": "object"}}
SYSTEM = "You are a helpful agent.\nWorking directory: /workspace"
LS_OUTPUT = ("total 16\n"
             "drwxr-xr-x 2 ash ash 4096 Nov 23 20:00 .\n"
             "drwxr-xr-x 3 ash ash 4096 Nov 23 20:00 ..\n"
             "-rw-r--r-- 1 ash ash   12 Nov 23 20:00 CLAUDE.md\n"
             "-rw-r--r-- 1 ash ash   40 Nov 23 20:00 notes.txt\n")


def request(prompt: str, tools: list[dict[str, Any]] | None = None, **kw: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-6", "max_tokens": 1024, "system": SYSTEM,
            "messages": [{"role": "user", "content": prompt}], "tools": tools or [], **kw}


async def test_list_the_files_is_a_bash_call_then_a_summary(
        make_proxy: ProxyFactory, usage_records: list[UsageRecord]) -> None:
    proxy = await make_proxy(Upstream.local())
    async with sdk_client(proxy) as client:
        async with client.messages.stream(**request("Please list the files",
                                                    [BASH, GLOB])) as stream:
            first = await stream.get_final_message()
        assert first.model == LOCAL_MODEL_ID
        assert first.stop_reason == "tool_use"
        text, call = first.content
        assert "no API key is configured" in text.text
        assert call.type == "tool_use" and call.name == "Bash"
        assert call.input["command"] == "ls -la"
        assert call.input["description"]
        follow_up = request("Please list the files", [BASH, GLOB])
        follow_up["messages"] += [
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                          "content": LS_OUTPUT}]},
        ]
        async with client.messages.stream(**follow_up) as stream:
            second = await stream.get_final_message()
    assert second.stop_reason == "end_turn"
    [summary] = second.content
    assert "2 entries: CLAUDE.md, notes.txt" in summary.text
    assert [(r.local, r.cost_usd, r.model) for r in usage_records] == [
        (True, 0.0, LOCAL_MODEL_ID)] * 2
    assert usage_records[0].output_tokens == first.usage.output_tokens > 0
    assert proxy.total_cost_usd == 0.0


async def test_glob_is_used_when_bash_is_not_offered(make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(Upstream.local())
    async with sdk_client(proxy) as client:
        message = await client.messages.create(**request("what files are here?", [GLOB]))
    assert message.content[-1].name == "Glob"
    assert message.content[-1].input == {"pattern": "*"}


async def test_without_tools_it_explains_how_to_configure_a_key(make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(Upstream.local())
    async with sdk_client(proxy) as client:
        message = await client.messages.create(**request("What is the capital of France?"))
        listing = await client.messages.create(**request("ls"))
    [block] = message.content
    assert "built-in local demo model" in block.text
    assert "ANTHROPIC_API_KEY" in block.text and "credential" in block.text
    assert "What is the capital of France?" in block.text
    assert "You are a helpful agent." in block.text  # the system prompt was read
    assert listing.stop_reason == "end_turn"
    assert "offers no Bash, Glob or LS tool" in listing.content[0].text


def test_create_a_file_is_a_write_call_in_the_working_directory() -> None:
    answer = local_respond(request('create a file named notes.txt containing "buy milk"',
                                   [BASH, WRITE])).message
    assert answer["stop_reason"] == "tool_use"
    call = answer["content"][-1]
    assert call["name"] == "Write"
    assert call["input"] == {"file_path": "/workspace/notes.txt", "content": "buy milk\n"}


def test_max_tokens_truncates_with_its_stop_reason() -> None:
    answer = local_respond(request("tell me a long story please", max_tokens=5)).message
    assert answer["stop_reason"] == "max_tokens"
    assert answer["usage"]["output_tokens"] == 5
    assert len(answer["content"][0]["text"].split()) == 5


def test_stop_sequences_are_honoured() -> None:
    answer = local_respond(request("hello", stop_sequences=["You said"])).message
    assert answer["stop_reason"] == "stop_sequence"
    assert answer["stop_sequence"] == "You said"
    assert "You said" not in answer["content"][0]["text"]


def test_forced_tool_choice_gets_a_schema_instance() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"},
                                               "count": {"type": "integer"},
                                               "kind": {"enum": ["a", "b"]}},
              "required": ["city", "count", "kind"]}
    tool = {"name": "Report", "input_schema": schema}
    answer = local_respond(request("hi", [tool], tool_choice={"type": "tool", "name": "Report"}))
    assert answer.message["content"][0]["input"] == {"city": "local demo", "count": 0, "kind": "a"}


def test_responses_are_deterministic() -> None:
    one = local_respond(request("list the files", [BASH]))
    two = local_respond(request("list the files", [BASH]))
    assert one.json_bytes() == two.json_bytes()
    assert one.sse_frames() == two.sse_frames()


def test_sse_frames_follow_the_api_event_order() -> None:
    frames = local_respond(request("list the files", [BASH])).sse_frames()
    events = [f.decode().split("\n", 1)[0].removeprefix("event: ") for f in frames]
    assert events[:2] == ["message_start", "ping"]
    assert events[-2:] == ["message_delta", "message_stop"]
    blocks = events[2:-2]
    assert blocks[0] == "content_block_start" and blocks[-1] == "content_block_stop"
    assert blocks.count("content_block_start") == 2
    start = json.loads(frames[0].decode().split("data: ", 1)[1])
    assert start["message"]["usage"]["output_tokens"] == 1
    assert start["message"]["model"] == LOCAL_MODEL_ID


async def test_models_and_count_tokens_are_served_locally(make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(Upstream.local())
    async with uds_client(proxy) as client:
        models = await client.get("/v1/models")
        one = await client.get(f"/v1/models/{LOCAL_MODEL_ID}")
        missing = await client.get("/v1/models/claude-opus-5")
        counted = await client.post("/v1/messages/count_tokens", json=request("x" * 400))
        bad = await client.post("/v1/messages", content=b"not json")
    assert [m["id"] for m in models.json()["data"]] == [LOCAL_MODEL_ID]
    assert "no API key" in one.json()["display_name"]
    assert missing.status_code == 404
    assert counted.json()["input_tokens"] > 100
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


async def test_sdk_count_tokens_and_typed_errors_with_local_model(make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(Upstream.local())
    async with sdk_client(proxy) as client:
        counted = await client.messages.count_tokens(
            model="claude-sonnet-4-6", messages=[{"role": "user", "content": "hello"}])
        assert counted.input_tokens > 0
        try:
            await client.messages.create(model="x", max_tokens=1, messages="oops")  # type: ignore[arg-type]
        except anthropic.BadRequestError as exc:
            assert exc.status_code == 400
        else:
            raise AssertionError("a malformed request must be refused")
