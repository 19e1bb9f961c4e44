from __future__ import annotations

from rest_framework import serializers

from queue_app.models import QueueItem


class QueueEnqueueSerializer(serializers.Serializer):
    agentName = serializers.CharField(max_length=255)
    prompt = serializers.CharField(min_length=1, trim_whitespace=False, max_length=1 << 20)
    sessionId = serializers.UUIDField(required=False, error_messages={"invalid": "must be a UUID"})
    priority = serializers.IntegerField(required=False, default=0, min_value=0, max_value=1_000_000)
    maxRetries = serializers.IntegerField(required=False, default=3, min_value=0, max_value=100)


class QueueItemSerializer(serializers.ModelSerializer):
    tenantId = serializers.CharField(source="tenant_id")
    sessionId = serializers.UUIDField(source="session_id", allow_null=True)
    agentName = serializers.CharField(source="agent_name")
    retryCount = serializers.IntegerField(source="retry_count")
    maxRetries = serializers.IntegerField(source="max_retries")
    createdAt = serializers.DateTimeField(source="created_at")
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    completedAt = serializers.DateTimeField(source="completed_at", allow_null=True)

    class Meta:
        model = QueueItem
        fields = [
            "id", "tenantId", "sessionId", "agentName", "prompt", "status", "priority",
            "retryCount", "maxRetries", "error", "createdAt", "startedAt", "completedAt",
        ]


class QueueStatsSerializer(serializers.Serializer):
    pending = serializers.IntegerField()
    processing = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
