"""The streamed turn's body: the text-prompt fast path returns exactly what the serializer does."""

from __future__ import annotations

import pytest

from ash.errors import BadRequest
from sessions_app.serializers import MAX_CONTENT_CHARS, MessageSendSerializer
from sessions_app.streaming import _validated


@pytest.mark.parametrize("body", [
    {"content": "hello"},
    {"content": ""},
    {"content": "x" * MAX_CONTENT_CHARS},
    {"content": "hi", "model": "claude-x", "maxTurns": 3},
    {"content": [{"type": "text", "text": "blocks"}]},
    {"content": "hi", "includePartialMessages": True},
])
def test_valid_bodies_give_what_the_serializer_gives(body) -> None:
    serializer = MessageSendSerializer(data=body)
    assert serializer.is_valid(), serializer.errors
    assert _validated(body) == dict(serializer.validated_data)


@pytest.mark.parametrize(("body", "message"), [
    ({"content": "x" * (MAX_CONTENT_CHARS + 1)}, "content: longer than 4 MiB"),
    ({"content": 5}, "content: must be a string or a non-empty list of content blocks"),
    ({}, "content: This field is required."),
    ({"content": "hi", "maxTurns": 0}, "maxTurns:"),
])
def test_invalid_bodies_are_refused_with_the_field_named(body, message) -> None:
    with pytest.raises(BadRequest) as caught:
        _validated(body)
    assert caught.value.message.startswith(message)
