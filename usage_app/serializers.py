from __future__ import annotations

from rest_framework import serializers

from usage_app.models import UsageEvent


class UsageEventSerializer(serializers.ModelSerializer):
    tenantId = serializers.CharField(source="tenant_id")
    sessionId = serializers.UUIDField(source="session_id")
    agentName = serializers.CharField(source="agent_name")
    eventType = serializers.CharField(source="event_type")
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = UsageEvent
        fields = ["id", "tenantId", "sessionId", "agentName", "eventType", "value", "model", "createdAt"]


class UsageStatsSerializer(serializers.Serializer):
    totalInputTokens = serializers.FloatField()
    totalOutputTokens = serializers.FloatField()
    totalCacheCreationTokens = serializers.FloatField()
    totalCacheReadTokens = serializers.FloatField()
    totalToolCalls = serializers.FloatField()
    totalMessages = serializers.FloatField()
    totalComputeSeconds = serializers.FloatField()
    totalCostUsd = serializers.FloatField()
