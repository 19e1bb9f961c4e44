"""The errors of a model call, with the messages the loop shows after "API Error:"."""

from __future__ import annotations

from typing import Any

CONNECTION_ERROR = "Connection error."  # the SDK's messages
TIMED_OUT = "Request timed out."


class ModelError(Exception):
    """A model call failed; `message` is what the loop shows after "API Error:"."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ModelStatusError(ModelError):
    """The API answered with an error status, or sent an `error` event mid-stream."""

    def __init__(self, status: int, body: Any, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class ModelConnectionError(ModelError):
    """No complete answer: refused, reset, timed out, or cut off mid-response."""


def error_message(body: Any, fallback: str) -> str:
    """`error.message` from an error body, else the SDK's own message for it."""
    body = body if isinstance(body, dict) else {}
    err = body.get("error") if isinstance(body.get("error"), dict) else body
    return str(err.get("message") or fallback)
