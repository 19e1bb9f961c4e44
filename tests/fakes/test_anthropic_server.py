"""The official `anthropic` SDK consumes the fake server, streaming and not."""

from __future__ import annotations

import anthropic
import pytest

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


def _client(fake: FakeAnthropic) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.base_url, api_key="sk-test", max_retries=0)


def test_non_streaming_message_round_trips(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script([Reply([text("Hi."), tool_use("Bash", {"command": "echo hi"}, "toolu_1")],
                                 usage=usage(12, 7, cache_creation=3, cache_read=4))])
    msg = _client(fake_anthropic).messages.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=[{"role": "user", "content": "hey"}])
    assert msg.stop_reason == "tool_use"
    assert msg.content[0].text == "Hi."
    assert msg.content[1].input == {"command": "echo hi"} and msg.content[1].id == "toolu_1"
    assert msg.usage.input_tokens == 12 and msg.usage.cache_read_input_tokens == 4
    assert msg.usage.cache_creation.ephemeral_5m_input_tokens == 3
    req = fake_anthropic.requests[0]
    # anthropic 2.12 sends the api key as a bearer token
    assert req.headers["authorization"] == "Bearer sk-test"
    assert req.body["messages"] == [{"role": "user", "content": "hey"}]


def test_streaming_accumulates_thinking_text_and_tool_input(fake_anthropic: FakeAnthropic) -> None:
    content = [thinking("Let me think about this carefully.", "sig-abc"),
               text("I will run a long command now."),
               tool_use("Bash", {"command": "echo " + "x" * 40, "description": "Echo"})]
    fake_anthropic.script([Reply(content, usage=usage(100, 40))])
    with _client(fake_anthropic).messages.stream(
        model="claude-sonnet-4-6", max_tokens=2000, messages=[{"role": "user", "content": "go"}],
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as stream:
        kinds = [ev.type for ev in stream]
        final = stream.get_final_message()
    assert [b.model_dump(exclude_none=True) for b in final.content] == content
    assert final.usage.output_tokens == 40 and final.usage.input_tokens == 100
    assert final.stop_reason == "tool_use"
    assert "thinking" in kinds and "signature" in kinds and "input_json" in kinds
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"


def test_sse_sequence_is_exact() -> None:
    names = [n for n, _ in sse_events(Reply([text("ab")], chunk=1), "m")]
    assert names == ["message_start", "ping", "content_block_start", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta", "message_stop"]


@pytest.mark.parametrize(("status", "exc", "kind"), [
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (529, anthropic.OverloadedError, "overloaded_error"),
    (500, anthropic.InternalServerError, "api_error"),
])
def test_http_errors_raise_the_sdk_exception(fake_anthropic: FakeAnthropic, status: int,
                                             exc: type, kind: str) -> None:
    fake_anthropic.script([ErrorReply(status, "nope")])
    with pytest.raises(exc) as info:
        _client(fake_anthropic).messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}], stream=True)
    assert info.value.status_code == status
    assert info.value.body["error"] == {"type": kind, "message": "nope"}


def test_mid_stream_error_raises(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script([Reply([text("partial"), text("never")],
                                 stream_error={"type": "overloaded_error", "message": "Overloaded"})])
    with pytest.raises(anthropic.APIStatusError), _client(fake_anthropic).messages.stream(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]) as s:
        s.get_final_message()


async def test_async_client_and_callable_script() -> None:
    def echo(req):  # branches on the request, as a callable script item may
        return Reply.text("model was " + req.body["model"])

    async with FakeAnthropic([echo]) as fake:
        client = anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="k", max_retries=0)
        async with client.messages.stream(model="claude-haiku-4-5", max_tokens=10,
                                          messages=[{"role": "user", "content": "x"}]) as s:
            msg = await s.get_final_message()
        assert msg.content[0].text == "model was claude-haiku-4-5"
        with pytest.raises(anthropic.InternalServerError, match="exhausted"):
            await client.messages.create(model="m", max_tokens=10,
                                         messages=[{"role": "user", "content": "x"}])
        await client.close()
