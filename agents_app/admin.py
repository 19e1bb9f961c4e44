from __future__ import annotations

from django.contrib import admin

from agents_app.models import Agent, AgentVersion


class AgentVersionInline(admin.TabularInline):
    model = AgentVersion
    extra = 0
    can_delete = False
    fields = ["version", "source", "file_count", "total_bytes", "sha256", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant_id", "version", "updated_at", "created_at"]
    list_filter = ["tenant_id"]
    search_fields = ["name", "tenant_id", "id"]
    readonly_fields = ["id", "tenant_id", "name", "version", "path", "created_at", "updated_at"]
    inlines = [AgentVersionInline]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False  # agents are deployed through the API (files are validated there)
