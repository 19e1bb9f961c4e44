"""A small streaming client for the Messages API, on asyncio streams and the standard library.

The runtime used the `anthropic` SDK, whose import alone cost ~1 s of CPU and ~76 MB in every
sandbox, and whose request building and pydantic parsing cost milliseconds per call. The native
loop needs one thing: `POST /v1/messages` with `stream: true`, over the model proxy's unix socket
or an http(s) base URL. This client does that with the SDK's retry policy and error statuses, and
accumulates the streamed message as the SDK's `accumulate_event` does, as plain JSON.
"""

from ash.runtime.model_client.client import ModelClient
from ash.runtime.model_client.errors import ModelConnectionError, ModelError, ModelStatusError
from ash.runtime.model_client.stream import (
    MESSAGE_EVENTS,
    Message,
    MessageStream,
    parse_tool_input,
)

__all__ = [
    "MESSAGE_EVENTS",
    "Message",
    "MessageStream",
    "ModelClient",
    "ModelConnectionError",
    "ModelError",
    "ModelStatusError",
    "parse_tool_input",
]
