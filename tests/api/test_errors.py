"""Every failure under /api/ and /health is the contract's envelope `{"error", "statusCode"}`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ash.asgi_limits import BodyLimitASGI
from ash.errors import handler500
from tests.conftest import assert_error


def test_unknown_api_route_is_404_envelope(api):
    body = assert_error(api.get("/api/nope"), 404)
    assert body["error"] == "Route GET:/api/nope not found"


def test_unknown_route_without_auth_is_still_json_404(anon):
    assert_error(anon.post("/api/nope/deeper"), 404, "Route POST:/api/nope/deeper not found")


def test_trailing_slash_is_not_redirected(api):
    response = api.get("/api/agents/")
    assert_error(response, 404)
    assert "Location" not in response


def test_wrong_method_is_405_envelope(api):
    body = assert_error(api.put("/api/agents", {}, format="json"), 405)
    assert body["error"] == 'Method "PUT" not allowed.'


def test_wrong_method_on_health_is_405_envelope(anon):
    assert_error(anon.post("/health"), 405)


@pytest.mark.parametrize("path", ["/api/queue/not-a-uuid", "/api/credentials/not-a-uuid"])
def test_non_uuid_id_is_400(api, path):
    method = api.get if path.startswith("/api/queue") else api.delete
    body = assert_error(method(path), 400)
    assert body["error"] == "Invalid id: must be a UUID"


def test_validation_error_names_the_field(api):
    body = assert_error(api.post_json("/api/agents", {"name": "bad name!"}), 400)
    assert body["error"] == "name: must match ^[a-zA-Z0-9_-]{1,255}$"


def test_missing_required_field_names_it(api):
    body = assert_error(api.post_json("/api/queue", {"prompt": "hi"}), 400)
    assert body["error"] == "agentName: This field is required."


def test_nested_validation_error_names_the_list_index(api):
    body = assert_error(api.post_json("/api/agents", {"name": "a", "files": [{"path": "x", "content": ""}, {"path": "y"}]}), 400)
    assert body["error"] == "files[1].content: This field is required."


def test_malformed_json_is_400_envelope(api):
    response = api.post("/api/agents", data='{"name": ', content_type="application/json")
    body = assert_error(response, 400)
    assert body["error"].startswith("Invalid JSON body:")


def test_json_that_is_not_an_object_is_400(api):
    response = api.post("/api/agents", data="[1, 2]", content_type="application/json")
    assert_error(response, 400, "the body must be a JSON object")


def test_unsupported_media_type_is_415_envelope(api):
    response = api.post("/api/agents", data="name=x", content_type="application/x-www-form-urlencoded")
    assert_error(response, 415)


def test_empty_json_body_is_read_as_empty_object(api):
    # {} reaches validation: the message is about the missing field, not about the JSON.
    response = api.post("/api/agents", data="", content_type="application/json")
    body = assert_error(response, 400)
    assert body["error"] == "name: This field is required."


def test_oversized_body_by_content_length_is_413(api, settings):
    settings.ASH_MAX_BODY_BYTES = 1000
    response = api.post_json("/api/agents", {"name": "big", "systemPrompt": "x" * 2000})
    body = assert_error(response, 413)
    assert body["error"] == "Request body too large (limit 1000 bytes)"


def test_body_under_the_limit_is_accepted(api, settings):
    settings.ASH_MAX_BODY_BYTES = 1000
    response = api.post_json("/api/agents", {"name": "small", "systemPrompt": "x" * 100})
    assert response.status_code == 201


def test_upload_routes_get_the_larger_limit(settings):
    from ash.middleware import body_limit_for

    settings.ASH_MAX_BODY_BYTES = 10
    settings.ASH_MAX_UPLOAD_BODY_BYTES = 99
    assert body_limit_for("/api/sessions/abc/files") == 99
    assert body_limit_for("/api/sessions/abc/workspace") == 99
    assert body_limit_for("/api/sessions/abc/messages") == 10
    assert body_limit_for("/api/agents") == 10


def test_invalid_content_length_is_400(api):
    response = api.generic("POST", "/api/agents", b"{}", content_type="application/json", CONTENT_LENGTH="abc")
    assert_error(response, 400, "Invalid Content-Length header")


# --- the ASGI wrapper, for bodies without Content-Length (chunked) -------------------------------


def _http_scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 4100),
    }


async def _call(app: Any, path: str, chunks: list[bytes]) -> tuple[int, dict[bytes, bytes], bytes]:
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)  # a client that keeps the connection open
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(app(_http_scope(path), receive, send), timeout=10)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


async def test_asgi_wrapper_refuses_chunked_body_over_the_limit_with_413(settings):
    from ash.asgi import application

    settings.ASH_MAX_BODY_BYTES = 1024
    status, headers, body = await _call(application, "/api/agents", [b"x" * 600, b"x" * 600, b"x" * 600])
    assert status == 413
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body) == {"error": "Request body too large (limit 1024 bytes)", "statusCode": 413}


async def test_asgi_wrapper_passes_bodies_under_the_limit_through(settings):
    settings.ASH_MAX_BODY_BYTES = 1024

    async def echo_length(scope: Any, receive: Any, send: Any) -> None:
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})

    status, _, body = await _call(BodyLimitASGI(echo_length), "/api/agents", [b"x" * 500, b"x" * 500])
    assert (status, body) == (200, b"1000")


# --- crashes ------------------------------------------------------------------------------------


def test_unexpected_exception_is_500_without_details(api, monkeypatch, caplog):
    def explode(**kwargs: Any) -> None:
        raise RuntimeError("secret detail at /srv/ash/agents_app/selectors.py")

    monkeypatch.setattr("agents_app.views.agent_list", explode)
    response = api.get("/api/agents")
    body = assert_error(response, 500)
    assert body == {"error": "Internal Server Error", "statusCode": 500}
    text = response.content.decode()
    assert "secret detail" not in text and "/srv" not in text and "Traceback" not in text
    # The operator still gets the trace in the log.
    assert "secret detail" in caplog.text


def test_handler500_is_the_envelope(rf):
    response = handler500(rf.get("/api/agents"))
    assert response.status_code == 500
    assert json.loads(response.content) == {"error": "Internal Server Error", "statusCode": 500}


def _chunked_request(rf, body: bytes):
    request = rf.post("/api/agents", data=body, content_type="application/json")
    del request.META["CONTENT_LENGTH"]
    request.META["HTTP_TRANSFER_ENCODING"] = "chunked"
    return request


def test_chunked_body_gets_its_real_length_for_the_parsers(rf):
    from ash.middleware import BodySizeLimitMiddleware

    request = _chunked_request(rf, b'{"name": "chunky"}')
    assert BodySizeLimitMiddleware(lambda r: None).process_request(request) is None
    assert request.META["CONTENT_LENGTH"] == "18"


def test_chunked_body_over_the_limit_is_413_without_the_asgi_wrapper(rf, settings):
    from ash.middleware import BodySizeLimitMiddleware

    settings.ASH_MAX_BODY_BYTES = 10
    response = BodySizeLimitMiddleware(lambda r: None).process_request(_chunked_request(rf, b"x" * 11))
    assert response.status_code == 413
    assert json.loads(response.content) == {"error": "Request body too large (limit 10 bytes)", "statusCode": 413}


async def test_the_async_session_views_close_their_responses_on_one_shared_thread():
    """Django closes a response on a thread-sensitive executor: a new thread per request unless
    the view runs in ash.asgi's shared context (the async session views)."""
    import threading
    import uuid

    from django.core.signals import request_finished

    from ash.asgi import application

    closed_on: list[tuple[str, str]] = []

    def record(sender: Any, **kwargs: Any) -> None:
        closed_on.append(threading.current_thread().name)

    request_finished.connect(record)
    try:
        paths = [f"/api/sessions/{uuid.uuid4()}/{view}" for view in ("messages", "stream", "interrupt", "messages")]
        for path in [*paths, "/api/agents", "/api/agents"]:
            status, _, _ = await _call(application, path, [b"{}"])
            assert status in (401, 405)  # no key, or not a POST view: answered either way
    finally:
        request_finished.disconnect(record)
    shared, other = closed_on[:4], closed_on[4:]
    assert len(set(shared)) == 1 and shared[0].startswith("ash-response-close"), closed_on
    assert len(other) == 2 and not any(name.startswith("ash-response-close") for name in other)
