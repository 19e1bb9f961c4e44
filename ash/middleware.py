"""Request body limits answered with a clear 413 before any view reads the body."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.security import SecurityMiddleware
from django.utils.deprecation import MiddlewareMixin

from ash.errors import error_response

# Path suffixes whose bodies carry base64 file batches or workspace bundles.
UPLOAD_SUFFIXES = ("/files", "/workspace", "/attachments")


def body_limit_for(path: str) -> int:
    if path.startswith("/api/sessions/") and path.rstrip("/").endswith(UPLOAD_SUFFIXES):
        return settings.ASH_MAX_UPLOAD_BODY_BYTES
    return settings.ASH_MAX_BODY_BYTES


def too_large_message(limit: int) -> str:
    return f"Request body too large (limit {limit} bytes)"


class InlineHooksMixin:
    """For middleware whose hooks only look at the request and headers (no I/O): in async mode
    they run on the event loop, where Django's MiddlewareMixin would hop to a thread and back for
    each hook of each middleware on every request."""

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        hooks: Any = self
        response = hooks.process_request(request) if hasattr(hooks, "process_request") else None
        response = response or await hooks.get_response(request)
        if hasattr(hooks, "process_response"):
            response = hooks.process_response(request, response)
        return response


class SecurityHeadersMiddleware(InlineHooksMixin, SecurityMiddleware):
    """Django's SecurityMiddleware (nosniff, referrer and opener policies, HSTS), without thread hops."""


class BodySizeLimitMiddleware(InlineHooksMixin, MiddlewareMixin):
    """Sync and async capable, so async SSE views stay async."""

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        limit = body_limit_for(request.path)
        if not request.META.get("CONTENT_LENGTH") and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            return self._measure_chunked(request, limit)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response("Invalid Content-Length header", 400)
        if length > limit:
            return error_response(too_large_message(limit), 413)
        return None

    @staticmethod
    def _measure_chunked(request: HttpRequest, limit: int) -> HttpResponse | None:
        # DRF treats a request without Content-Length as bodiless. Under ASGI the server has
        # already received the whole (BodyLimitASGI-bounded) body, so give it its real length.
        body = request.body
        if len(body) > limit:
            return error_response(too_large_message(limit), 413)
        request.META["CONTENT_LENGTH"] = str(len(body))
        return None
