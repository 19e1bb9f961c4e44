from __future__ import annotations

from typing import Any

from rest_framework import serializers

from sessions_app.models import Attachment, Message, Session, SessionEvent

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
MAX_ENV_VALUE = 32 << 10
MAX_LIST_ITEMS = 200


def _string_list(**kw: Any) -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(max_length=512), max_length=MAX_LIST_ITEMS, required=False, **kw)


class McpServerSerializer(serializers.Serializer):
    url = serializers.URLField(required=False, max_length=2048)
    command = serializers.CharField(required=False, max_length=4096)
    args = serializers.ListField(child=serializers.CharField(max_length=4096, allow_blank=True), required=False, max_length=256)
    env = serializers.DictField(child=serializers.CharField(allow_blank=True, max_length=MAX_ENV_VALUE), required=False)
    headers = serializers.DictField(child=serializers.CharField(allow_blank=True, max_length=8192), required=False)
    type = serializers.ChoiceField(choices=["stdio", "http", "sse"], required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if bool(attrs.get("url")) == bool(attrs.get("command")):
            raise serializers.ValidationError("give exactly one of url or command")
        return attrs


class SessionConfigSerializer(serializers.Serializer):
    """Options that PATCH /config may change (and create may set)."""

    model = serializers.CharField(required=False, max_length=255)
    allowedTools = _string_list()
    disallowedTools = _string_list()
    betas = _string_list()
    subagents = serializers.DictField(required=False)
    initialAgent = serializers.CharField(required=False, max_length=255)

    def validate_subagents(self, value: dict[str, Any]) -> dict[str, Any]:
        for name, definition in value.items():
            if not isinstance(definition, dict):
                raise serializers.ValidationError(f"{name}: must be an object with description and prompt")
            for key in ("description", "prompt"):
                if not isinstance(definition.get(key), str):
                    raise serializers.ValidationError(f"{name}.{key}: required string")
        return value


class SessionCreateSerializer(SessionConfigSerializer):
    agent = serializers.CharField(max_length=255)
    credentialId = serializers.UUIDField(required=False, error_messages={"invalid": "must be a UUID"})
    extraEnv = serializers.DictField(child=serializers.CharField(allow_blank=True, max_length=MAX_ENV_VALUE), required=False)
    mcpServers = serializers.DictField(child=McpServerSerializer(), required=False)
    systemPrompt = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, max_length=1 << 20)
    permissionMode = serializers.ChoiceField(choices=["bypassPermissions", "permissionsByAgent", "default"], required=False)

    def validate_extraEnv(self, value: dict[str, str]) -> dict[str, str]:  # noqa: N802 - DRF naming
        import re

        for name in value:
            if not re.match(ENV_NAME, name):
                raise serializers.ValidationError(f"invalid variable name {name!r}")
            if name.startswith("ASH_"):
                raise serializers.ValidationError(f"{name}: ASH_* names are reserved")
        if len(value) > 256:
            raise serializers.ValidationError("at most 256 variables")
        return value


class ThinkingSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["enabled", "disabled", "adaptive"])
    budgetTokens = serializers.IntegerField(required=False, min_value=1024, max_value=1_000_000)


class OutputFormatSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["json_schema"])
    schema = serializers.DictField()


MAX_CONTENT_CHARS = 4 << 20  # a text prompt


class MessageSendSerializer(serializers.Serializer):
    content = serializers.JSONField()
    includePartialMessages = serializers.BooleanField(required=False, default=False)
    model = serializers.CharField(required=False, max_length=255)
    maxTurns = serializers.IntegerField(required=False, min_value=1, max_value=10_000)
    maxBudgetUsd = serializers.FloatField(required=False, min_value=0)
    effort = serializers.ChoiceField(choices=["low", "medium", "high", "max"], required=False)
    thinking = ThinkingSerializer(required=False)
    outputFormat = OutputFormatSerializer(required=False)

    def validate_content(self, value: Any) -> Any:
        if isinstance(value, str):
            if len(value) > MAX_CONTENT_CHARS:
                raise serializers.ValidationError("longer than 4 MiB")
            return value
        if isinstance(value, list) and value and all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in value):
            return value
        raise serializers.ValidationError("must be a string or a non-empty list of content blocks")


class ExecSerializer(serializers.Serializer):
    command = serializers.CharField(trim_whitespace=False, max_length=1 << 20)
    timeout = serializers.IntegerField(required=False, default=30_000, min_value=1, max_value=300_000)


class FileWriteItemSerializer(serializers.Serializer):
    path = serializers.CharField(max_length=4096, trim_whitespace=False)
    content = serializers.CharField(allow_blank=True, trim_whitespace=False)
    mimeType = serializers.CharField(required=False, max_length=255)


class FilesWriteSerializer(serializers.Serializer):
    files = FileWriteItemSerializer(many=True, allow_empty=False, max_length=500)
    targetPath = serializers.CharField(required=False, default=".", max_length=4096)


class AttachmentCreateSerializer(serializers.Serializer):
    filename = serializers.CharField(min_length=1, max_length=255, trim_whitespace=False)
    mimeType = serializers.CharField(required=False, default="application/octet-stream", max_length=255)
    content = serializers.CharField(allow_blank=True, trim_whitespace=False)
    messageId = serializers.UUIDField(required=False, error_messages={"invalid": "must be a UUID"})


class WorkspaceUploadSerializer(serializers.Serializer):
    bundle = serializers.CharField(allow_blank=True, trim_whitespace=False)


class SessionSerializer(serializers.ModelSerializer):
    tenantId = serializers.CharField(source="tenant_id")
    agentName = serializers.CharField(source="agent_name")
    sandboxId = serializers.CharField(source="sandbox_id")
    runnerId = serializers.CharField(source="runner_id", allow_null=True)
    parentSessionId = serializers.UUIDField(source="parent_id", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    lastActiveAt = serializers.DateTimeField(source="last_active_at")

    class Meta:
        model = Session
        fields = ["id", "tenantId", "agentName", "sandboxId", "status", "runnerId", "parentSessionId", "model", "createdAt", "lastActiveAt"]


class MessageSerializer(serializers.ModelSerializer):
    sessionId = serializers.UUIDField(source="session_id")
    tenantId = serializers.CharField(source="tenant_id")
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Message
        fields = ["id", "sessionId", "tenantId", "role", "content", "sequence", "createdAt"]


class SessionEventSerializer(serializers.ModelSerializer):
    sessionId = serializers.UUIDField(source="session_id")
    tenantId = serializers.CharField(source="tenant_id")
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = SessionEvent
        fields = ["id", "sessionId", "tenantId", "type", "data", "sequence", "createdAt"]


class AttachmentSerializer(serializers.ModelSerializer):
    sessionId = serializers.UUIDField(source="session_id")
    tenantId = serializers.CharField(source="tenant_id")
    messageId = serializers.CharField(source="message_id")
    mimeType = serializers.CharField(source="mime_type")
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Attachment
        fields = ["id", "sessionId", "tenantId", "messageId", "filename", "mimeType", "size", "createdAt"]
