"""SDK message → stored rows and SSE frames."""

from __future__ import annotations

from sessions_app.derive import derive


def test_assistant_message_is_stored_with_one_event_per_block_and_tool_use_frames() -> None:
    message = {
        "type": "assistant",
        "parent_tool_use_id": None,
        "message": {"content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "hello"},
            {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
        ]},
    }
    out = derive(message)
    assert out.store_message and out.tool_calls == 1
    assert [t for t, _ in out.events] == ["reasoning", "text", "tool_start"]
    assert out.events[2][1] == {"id": "toolu_1", "name": "Bash", "input": {"command": "ls"}, "parentToolUseId": None}
    assert out.frames == [("tool_use", {"id": "toolu_1", "name": "Bash", "input": {"command": "ls"}})]


def test_tool_results_become_events_and_snake_case_frames_but_no_message_row() -> None:
    message = {"type": "user", "message": {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "is_error": True},
    ]}}
    out = derive(message)
    assert not out.store_message
    assert out.events == [("tool_result", {"tool_use_id": "toolu_1", "content": "ab", "is_error": True})]
    assert out.frames == out.events


def test_result_is_stored_with_turn_complete() -> None:
    out = derive({"type": "result", "subtype": "success", "is_error": False, "num_turns": 2, "result": "done",
                  "duration_ms": 5, "total_cost_usd": 0.01, "usage": {"input_tokens": 1}})
    assert out.store_message
    assert out.events[0][0] == "turn_complete" and out.events[0][1]["numTurns"] == 2
    assert out.frames == [("turn_complete", {"numTurns": 2, "result": "done"})]


def test_partial_text_and_thinking_deltas_become_delta_frames_only() -> None:
    text = derive({"type": "stream_event", "event": {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "he"}}})
    think = derive({"type": "stream_event", "event": {"type": "content_block_delta", "delta": {"type": "thinking_delta", "thinking": "h"}}})
    other = derive({"type": "stream_event", "event": {"type": "message_start"}})
    assert text.frames == [("text_delta", {"delta": "he"})] and not text.store_message and not text.events
    assert think.frames == [("thinking_delta", {"delta": "h"})]
    assert other.frames == [] and not other.events


def test_system_messages_are_streamed_but_not_stored() -> None:
    out = derive({"type": "system", "subtype": "init"})
    assert not out.store_message and not out.events and not out.frames
