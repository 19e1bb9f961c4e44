from __future__ import annotations

from rest_framework import serializers

from agents_app.models import AGENT_NAME_PATTERN, Agent
from agents_app.services import SYSTEM_PROMPT_MAX_BYTES


class AgentFileInputSerializer(serializers.Serializer):
    path = serializers.CharField(max_length=1024, trim_whitespace=False)
    content = serializers.CharField(allow_blank=True, trim_whitespace=False, help_text="base64")


class AgentDeploySerializer(serializers.Serializer):
    name = serializers.RegexField(
        AGENT_NAME_PATTERN,
        max_length=255,
        error_messages={"invalid": "must match ^[a-zA-Z0-9_-]{1,255}$"},
    )
    path = serializers.CharField(required=False, max_length=4096, trim_whitespace=False)
    systemPrompt = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=SYSTEM_PROMPT_MAX_BYTES
    )
    files = AgentFileInputSerializer(many=True, required=False)

    def validate(self, attrs: dict) -> dict:
        if "path" in attrs and ("files" in attrs or "systemPrompt" in attrs):
            raise serializers.ValidationError({"path": "give either path, or files/systemPrompt, not both"})
        return attrs


class AgentSerializer(serializers.ModelSerializer):
    tenantId = serializers.CharField(source="tenant_id")
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    class Meta:
        model = Agent
        fields = ["id", "name", "tenantId", "version", "path", "createdAt", "updatedAt"]


class AgentFileEntrySerializer(serializers.Serializer):
    path = serializers.CharField()
    size = serializers.IntegerField()
    modifiedAt = serializers.DateTimeField()
