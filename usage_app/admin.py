from __future__ import annotations

from django.contrib import admin

from usage_app.models import UsageEvent


@admin.register(UsageEvent)
class UsageEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "tenant_id", "agent_name", "session_id", "event_type", "value", "model"]
    list_filter = ["event_type", "tenant_id"]
    search_fields = ["agent_name", "session_id", "tenant_id", "model"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False
