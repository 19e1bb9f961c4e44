from __future__ import annotations

import ipaddress

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ash.api import validated
from ash.auth import internal_secret_ok
from ash.core import services
from ash.core.health import health_payload, live_runners
from ash.core.local import local_runner_id
from ash.core.serializers import (
    HealthSerializer,
    RunnerHeartbeatSerializer,
    RunnerIdSerializer,
    RunnerRegisterSerializer,
    RunnerSerializer,
)
from ash.errors import NotFound, ServiceUnavailable, Unauthorized
from ash.schema import ERRORS, envelope_of

OK = envelope_of("InternalOk", ok=serializers.BooleanField())


class HealthView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(operation_id="health", responses={200: HealthSerializer})
    def get(self, request: Request) -> Response:
        return Response(health_payload())


def _is_loopback(request: Request) -> bool:
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


class InternalSecret(BasePermission):
    """ASH_INTERNAL_SECRET, compared in constant time; unset → 503, except embedded mode on loopback."""

    def has_permission(self, request: Request, view: object) -> bool:
        if settings.ASH_INTERNAL_SECRET:
            if not internal_secret_ok(request):
                raise Unauthorized("Invalid internal secret")
            return True
        if settings.ASH_EMBEDDED and _is_loopback(request):
            return True
        raise ServiceUnavailable("Internal API disabled: ASH_INTERNAL_SECRET is not set")


class InternalView(APIView):
    authentication_classes: list = []
    permission_classes = [InternalSecret]


class RunnerRegisterView(InternalView):
    @extend_schema(operation_id="registerRunner", request=RunnerRegisterSerializer, responses={200: OK, **ERRORS(400, 401, 503)})
    def post(self, request: Request) -> Response:
        data = validated(RunnerRegisterSerializer, request.data)
        services.runner_register(
            runner_id=data["runnerId"],
            host=data["host"],
            port=data["port"],
            max_sandboxes=data["maxSandboxes"],
            isolation=data["isolation"],
        )
        return Response({"ok": True})


class RunnerHeartbeatView(InternalView):
    @extend_schema(operation_id="runnerHeartbeat", request=RunnerHeartbeatSerializer, responses={200: OK, **ERRORS(400, 401, 404, 503)})
    def post(self, request: Request) -> Response:
        data = validated(RunnerHeartbeatSerializer, request.data)
        if not services.runner_heartbeat(runner_id=data["runnerId"], stats=data["stats"], active_count=data.get("activeCount")):
            # Unlike the original's silent no-op, tell a swept runner to register again.
            raise NotFound("Runner not registered")
        return Response({"ok": True})


class RunnerDeregisterView(InternalView):
    @extend_schema(operation_id="deregisterRunner", request=RunnerIdSerializer, responses={200: OK, **ERRORS(400, 401, 503)})
    def post(self, request: Request) -> Response:
        data = validated(RunnerIdSerializer, request.data)
        services.runner_deregister(runner_id=data["runnerId"])
        return Response({"ok": True})


class RunnerListView(InternalView):
    @extend_schema(
        operation_id="listRunners",
        responses={
            200: envelope_of(
                "RunnerList", runners=RunnerSerializer(many=True), count=serializers.IntegerField(), hasLocal=serializers.BooleanField()
            ),
            **ERRORS(401, 503),
        },
    )
    def get(self, request: Request) -> Response:
        runners = list(live_runners().order_by("runner_id"))
        return Response({"runners": RunnerSerializer(runners, many=True).data, "count": len(runners), "hasLocal": local_runner_id() is not None})
