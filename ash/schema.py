"""drf-spectacular helpers: response envelopes and the error envelope, declared once."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ApiErrorSerializer = inline_serializer(
    "ApiError", {"error": serializers.CharField(), "statusCode": serializers.IntegerField()}
)


def envelope_of(name: str, **fields: Any) -> serializers.Serializer:
    return inline_serializer(name, fields)


def ERRORS(*codes: int) -> dict[int, OpenApiResponse]:  # noqa: N802 - reads like a constant at call sites
    return {code: OpenApiResponse(ApiErrorSerializer) for code in codes}


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Declares `Authorization: Bearer <API key>` for every view using ApiKeyAuthentication."""

    target_class = "ash.auth.ApiKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An Ash API key"}
