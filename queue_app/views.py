from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ash.api import query_choice, query_int, tenant_id_of, validated
from ash.errors import parse_uuid
from ash.schema import ERRORS, envelope_of
from queue_app.models import QueueItem
from queue_app.selectors import queue_item_get, queue_item_list, queue_stats
from queue_app.serializers import QueueEnqueueSerializer, QueueItemSerializer, QueueStatsSerializer
from queue_app.services import queue_item_cancel, queue_item_enqueue

ITEM_ENVELOPE = envelope_of("QueueItemEnvelope", item=QueueItemSerializer())


class QueueListCreateView(APIView):
    @extend_schema(
        operation_id="listQueueItems",
        parameters=[
            OpenApiParameter("status", str, enum=QueueItem.Status.values, required=False),
            OpenApiParameter("limit", int, required=False, description="1..500, default 50"),
        ],
        responses={200: envelope_of("QueueItemList", items=QueueItemSerializer(many=True)), **ERRORS(400)},
    )
    def get(self, request: Request) -> Response:
        items = queue_item_list(
            tenant_id=tenant_id_of(request),
            status=query_choice(request, "status", QueueItem.Status.values),
            limit=query_int(request, "limit", default=50, minimum=1, maximum=500),
        )
        return Response({"items": QueueItemSerializer(items, many=True).data})

    @extend_schema(operation_id="enqueue", request=QueueEnqueueSerializer, responses={201: ITEM_ENVELOPE, **ERRORS(400)})
    def post(self, request: Request) -> Response:
        data = validated(QueueEnqueueSerializer, request.data)
        item = queue_item_enqueue(
            tenant_id=tenant_id_of(request),
            agent_name=data["agentName"],
            prompt=data["prompt"],
            session_id=data.get("sessionId"),
            priority=data["priority"],
            max_retries=data["maxRetries"],
        )
        return Response({"item": QueueItemSerializer(item).data}, status=status.HTTP_201_CREATED)


class QueueStatsView(APIView):
    @extend_schema(operation_id="queueStats", responses={200: envelope_of("QueueStatsEnvelope", stats=QueueStatsSerializer())})
    def get(self, request: Request) -> Response:
        return Response({"stats": queue_stats(tenant_id=tenant_id_of(request))})


class QueueItemDetailView(APIView):
    @extend_schema(operation_id="getQueueItem", responses={200: ITEM_ENVELOPE, **ERRORS(400, 404)})
    def get(self, request: Request, item_id: str) -> Response:
        item = queue_item_get(tenant_id=tenant_id_of(request), item_id=parse_uuid(item_id))
        return Response({"item": QueueItemSerializer(item).data})

    @extend_schema(operation_id="cancelQueueItem", responses={200: ITEM_ENVELOPE, **ERRORS(400, 404)})
    def delete(self, request: Request, item_id: str) -> Response:
        item = queue_item_cancel(tenant_id=tenant_id_of(request), item_id=parse_uuid(item_id))
        return Response({"item": QueueItemSerializer(item).data})
