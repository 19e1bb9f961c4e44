from __future__ import annotations

from rest_framework import serializers

from ash.core.services import POOL_KEYS


class RunnerRegisterSerializer(serializers.Serializer):
    runnerId = serializers.RegexField(r"^[A-Za-z0-9_.:@-]{1,255}$", error_messages={"invalid": "must be 1-255 of A-Z a-z 0-9 _ . : @ -"})
    host = serializers.CharField(max_length=255)
    port = serializers.IntegerField(min_value=0, max_value=65535)
    maxSandboxes = serializers.IntegerField(required=False, default=100, min_value=1, max_value=100_000)
    isolation = serializers.ChoiceField(choices=["strict", "degraded"], required=False, default="")


class RunnerHeartbeatSerializer(serializers.Serializer):
    runnerId = serializers.CharField(max_length=255)
    stats = serializers.DictField(required=False, default=dict)
    activeCount = serializers.IntegerField(required=False, min_value=0)


class RunnerIdSerializer(serializers.Serializer):
    runnerId = serializers.CharField(max_length=255)


class PoolStatsSerializer(serializers.Serializer):
    def get_fields(self) -> dict:
        return {key: serializers.IntegerField() for key in POOL_KEYS}


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok"])
    version = serializers.CharField()
    coordinatorId = serializers.CharField()
    activeSessions = serializers.IntegerField()
    activeSandboxes = serializers.IntegerField()
    remoteRunners = serializers.IntegerField()
    uptime = serializers.IntegerField()
    pool = PoolStatsSerializer()
    isolation = serializers.CharField(allow_null=True)


class RunnerSerializer(serializers.Serializer):
    runnerId = serializers.CharField(source="runner_id")
    host = serializers.CharField()
    port = serializers.IntegerField()
    active = serializers.IntegerField(source="active_count")
    max = serializers.IntegerField(source="max_sandboxes")
    isolation = serializers.CharField()
    lastHeartbeat = serializers.DateTimeField(source="last_heartbeat_at")
