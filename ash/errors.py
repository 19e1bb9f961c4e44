"""One error type and one envelope: `{"error": "<message>", "statusCode": <int>}` on every API path."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.http import Http404, HttpRequest, JsonResponse
from psycopg_pool import PoolTimeout
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from ash.sandbox.workspace_fs.errors import WorkspaceError

log = logging.getLogger("ash.errors")


class ApiError(Exception):
    status_code = 400
    default_message = "Bad Request"

    def __init__(self, message: str | None = None, *, status_code: int | None = None) -> None:
        self.message = message or self.default_message
        if status_code is not None:
            self.status_code = status_code
        super().__init__(self.message)


class BadRequest(ApiError):
    status_code = 400


class Unauthorized(ApiError):
    status_code = 401
    default_message = "Unauthorized"


class NotFound(ApiError):
    status_code = 404
    default_message = "Not Found"


class Conflict(ApiError):
    status_code = 409
    default_message = "Conflict"


class Gone(ApiError):
    status_code = 410
    default_message = "Gone"


class PayloadTooLarge(ApiError):
    status_code = 413
    default_message = "Payload Too Large"


class ServiceUnavailable(ApiError):
    status_code = 503
    default_message = "Service Unavailable"


def envelope(message: str, status_code: int) -> dict[str, Any]:
    return {"error": message, "statusCode": status_code}


def error_response(message: str, status_code: int) -> JsonResponse:
    return JsonResponse(envelope(message, status_code), status=status_code)


def parse_uuid(value: str, *, what: str = "id") -> uuid.UUID:
    """The UUID in a path or query value, or a 400 naming it."""
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        raise BadRequest(f"Invalid {what}: must be a UUID") from None


def _first_validation_message(detail: Any, prefix: str = "") -> str:
    """Flatten DRF's nested error detail into one message that names the field."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if not value:
                continue
            if isinstance(key, int):
                # DRF keys list/ListField errors by item index: name it files[1].content.
                name = f"{prefix}[{key}]"
            elif key == "non_field_errors":
                name = prefix
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            return _first_validation_message(value, name)
    if isinstance(detail, list) and detail:
        first = detail[0]
        if isinstance(first, (dict, list)):
            # Nested list items: name the index.
            for index, item in enumerate(detail):
                if item:
                    return _first_validation_message(item, f"{prefix}[{index}]")
        return _first_validation_message(first, prefix)
    text = str(detail)
    return f"{prefix}: {text}" if prefix else text


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's exception handler: every failure becomes the contract's envelope."""
    if isinstance(exc, ApiError):
        return Response(envelope(exc.message, exc.status_code), status=exc.status_code)
    if isinstance(exc, WorkspaceError):
        return Response(envelope(str(exc), exc.status_code), status=exc.status_code)
    if isinstance(exc, Http404):
        return Response(envelope("Not Found", 404), status=404)
    if isinstance(exc, drf_exceptions.ValidationError):
        return Response(envelope(_first_validation_message(exc.detail), 400), status=400)
    if isinstance(exc, drf_exceptions.ParseError):
        return Response(envelope(f"Invalid JSON body: {exc.detail}", 400), status=400)
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return Response(envelope(str(exc.detail), 415), status=415)
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return Response(envelope(str(exc.detail), 405), status=405)
    if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        return Response(envelope(str(exc.detail), 401), status=401)
    if isinstance(exc, PoolTimeout):
        return Response(envelope("Database connection pool exhausted; retry shortly", 503), status=503)
    if isinstance(exc, drf_exceptions.APIException):
        return Response(envelope(str(exc.detail), exc.status_code), status=exc.status_code)
    log.exception("unhandled error in %s", context.get("view").__class__.__name__ if context.get("view") else "view")
    return Response(envelope("Internal Server Error", 500), status=500)


def handler404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(f"Route {request.method}:{request.path} not found", 404)


def handler500(request: HttpRequest) -> JsonResponse:
    return error_response("Internal Server Error", 500)


def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response("Bad Request", 400)
