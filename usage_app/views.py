from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ash.api import query_datetime, query_int, tenant_id_of
from ash.errors import BadRequest, parse_uuid
from ash.schema import ERRORS, envelope_of
from usage_app.selectors import usage_event_list, usage_stats
from usage_app.serializers import UsageEventSerializer, UsageStatsSerializer

FILTER_PARAMETERS = [
    OpenApiParameter("sessionId", str, required=False),
    OpenApiParameter("agentName", str, required=False),
    OpenApiParameter("after", str, required=False, description="ISO-8601, inclusive"),
    OpenApiParameter("before", str, required=False, description="ISO-8601, inclusive"),
]


def usage_filters(request: Request) -> dict[str, Any]:
    session_id = request.query_params.get("sessionId")
    after, before = query_datetime(request, "after"), query_datetime(request, "before")
    if after and before and after > before:
        raise BadRequest("after: must not be later than before")
    return {
        "tenant_id": tenant_id_of(request),
        "session_id": parse_uuid(session_id, what="sessionId") if session_id else None,
        "agent_name": request.query_params.get("agentName") or None,
        "after": after,
        "before": before,
    }


class UsageListView(APIView):
    @extend_schema(
        operation_id="listUsage",
        parameters=[*FILTER_PARAMETERS, OpenApiParameter("limit", int, required=False, description="1..1000, default 100")],
        responses={200: envelope_of("UsageEventList", events=UsageEventSerializer(many=True)), **ERRORS(400)},
    )
    def get(self, request: Request) -> Response:
        limit = query_int(request, "limit", default=100, minimum=1, maximum=1000)
        events = usage_event_list(limit=limit, **usage_filters(request))
        return Response({"events": UsageEventSerializer(events, many=True).data})


class UsageStatsView(APIView):
    @extend_schema(
        operation_id="usageStats",
        parameters=FILTER_PARAMETERS,
        responses={200: envelope_of("UsageStatsEnvelope", stats=UsageStatsSerializer()), **ERRORS(400)},
    )
    def get(self, request: Request) -> Response:
        return Response({"stats": usage_stats(**usage_filters(request))})
