"""Small helpers shared by every API view: tenant, query parameters, validated bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers
from rest_framework.request import Request

from ash.errors import BadRequest


def tenant_id_of(request: Request) -> str:
    return request.user.tenant_id  # set by ash.auth.ApiKeyAuthentication


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def query_int(request: Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}: must be an integer") from None
    if not minimum <= value <= maximum:
        raise BadRequest(f"{name}: must be between {minimum} and {maximum}")
    return value


def query_choice(request: Request, name: str, choices: list[str] | tuple[str, ...]) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise BadRequest(f"{name}: must be one of {', '.join(choices)}")
    return raw


def query_datetime(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = parse_datetime(raw.replace(" ", "+"))
    except ValueError:
        value = None
    if value is None:
        raise BadRequest(f"{name}: must be an ISO-8601 date-time")
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)  # no offset given: read as UTC
    return value


def query_bool(request: Request, name: str, *, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise BadRequest(f"{name}: must be true or false")
