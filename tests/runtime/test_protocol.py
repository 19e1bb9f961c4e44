"""Bridge frames: exact JSON shapes, strict decoding, size cap."""

from __future__ import annotations

import json

import pytest

from ash.runtime import protocol as p
from ash.runtime.options import OptionsError, QueryOptions


def test_command_shapes_round_trip() -> None:
    cmds = [p.QueryCmd("q1", "hi", {"maxTurns": 2}),
            p.QueryCmd("q2", [{"type": "text", "text": "hi"}]),
            p.InterruptCmd("q1"),
            p.PermissionResponseCmd("q1", "perm_1", "allow", "", {"command": "ls"}),
            p.ShutdownCmd("s1")]
    for cmd in cmds:
        assert p.decode_command(p.encode(cmd)) == cmd
    assert json.loads(p.encode(cmds[3])) == {
        "cmd": "permission_response", "qid": "q1", "request_id": "perm_1",
        "behavior": "allow", "message": "", "updatedInput": {"command": "ls"}}


def test_event_shapes() -> None:
    assert json.loads(p.encode(p.ReadyEv("native", "sid"))) == {
        "ev": "ready", "qid": "", "engine": "native", "sessionId": "sid", "protocol": 1}
    assert json.loads(p.encode(p.DoneEv("q1", "sid"))) == {"ev": "done", "qid": "q1",
                                                           "sessionId": "sid"}
    assert json.loads(p.encode(p.ErrorEv("q1", "boom", "busy"))) == {
        "ev": "error", "qid": "q1", "error": "boom", "code": "busy"}
    req = p.PermissionRequestEv("q1", "perm_1", "toolu_1", "Bash", {"command": "ls"}, "ls",
                                [], 1000)
    assert p.decode_event(p.encode(req)) == req
    assert p.encode(p.MessageEv("q1", {"type": "x"})).endswith(b"\n")


@pytest.mark.parametrize(("line", "fragment"), [
    (b"{", "malformed JSON"),
    (b"[]", "must be a JSON object"),
    (b'{"cmd":"exec","qid":"a"}', "unknown cmd"),
    (b'{"qid":"a"}', "unknown cmd None"),
    (b'{"cmd":"query","qid":"a"}', "missing field 'prompt'"),
    (b'{"cmd":"query","qid":"a","prompt":5}', "wrong type"),
    (b'{"cmd":"query","qid":"a","prompt":["x"]}', "blocks must be objects"),
    (b'{"cmd":"query","qid":"a","prompt":"x","__proto__":{}}', "unknown field"),
    (b'{"cmd":"interrupt","qid":"a","ev":"done"}', "carries 'ev'"),
    (b'{"cmd":"permission_response","qid":"a","request_id":"r","behavior":"yes"}',
     "allow or deny"),
])
def test_bad_commands_are_rejected(line: bytes, fragment: str) -> None:
    with pytest.raises(p.ProtocolError, match=fragment):
        p.decode_command(line)


def test_event_decoding_is_strict_too() -> None:
    with pytest.raises(p.ProtocolError, match="wrong type"):
        p.decode_event(b'{"ev":"ready","qid":"","engine":"x","sessionId":"","protocol":true}')
    with pytest.raises(p.ProtocolError, match="unknown ev"):
        p.decode_event(b'{"ev":"log","qid":""}')


def test_size_cap() -> None:
    big = "x" * p.MAX_FRAME_BYTES
    with pytest.raises(p.ProtocolError, match="exceeds"):
        p.encode(p.QueryCmd("q", big))
    with pytest.raises(p.ProtocolError, match="exceeds"):
        p.decode_command(b'{"cmd":"query","qid":"q","prompt":"' + big.encode() + b'"}')


def test_options_validation() -> None:
    opts = QueryOptions.from_wire({
        "model": "m", "maxTurns": 3, "maxBudgetUsd": 1, "thinking": {"type": "enabled",
                                                                     "budgetTokens": 2000},
        "subagents": {"r": {"description": "d", "prompt": "p", "tools": ["Bash"]}},
        "initialAgent": "r", "permissionMode": "default", "sessionId": "ignored"})
    assert opts.max_turns == 3 and opts.agents["r"].tools == ["Bash"] and opts.agent == "r"
    for bad in ({"maxTurns": 0}, {"nope": 1}, {"effort": "huge"}, {"initialAgent": "x"},
                {"outputFormat": {"type": "json"}}, {"mcpServers": {"a": {}}},
                {"includePartialMessages": "yes"}):
        with pytest.raises(OptionsError):
            QueryOptions.from_wire(bad)
