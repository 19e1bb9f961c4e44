from __future__ import annotations

from rest_framework import serializers

from credentials_app.models import Credential


class CredentialCreateSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=Credential.Type.values)
    key = serializers.CharField(min_length=1, trim_whitespace=False)
    label = serializers.CharField(required=False, allow_blank=True, max_length=255)


class CredentialSerializer(serializers.ModelSerializer):
    createdAt = serializers.DateTimeField(source="created_at")
    lastUsedAt = serializers.DateTimeField(source="last_used_at", allow_null=True)
    tenantId = serializers.CharField(source="tenant_id")

    class Meta:
        model = Credential
        fields = ["id", "tenantId", "type", "label", "active", "createdAt", "lastUsedAt"]
