from __future__ import annotations

from django.contrib import admin

from sessions_app.models import Attachment, Message, Session, SessionEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the runtime: operators read them, nobody edits them by hand."""

    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    fields = ["sequence", "role", "content", "created_at"]
    readonly_fields = fields
    ordering = ["sequence"]

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ["id", "agent_name", "tenant_id", "status", "runner", "sandbox_id", "model", "created_at", "last_active_at"]
    list_filter = ["status", "tenant_id"]
    search_fields = ["id", "agent_name", "tenant_id", "sandbox_id"]
    list_select_related = ["runner"]
    show_full_result_count = False
    readonly_fields = [
        "id", "tenant_id", "agent", "agent_name", "agent_version", "sandbox_id", "runner", "parent", "credential",
        "runtime_session_id", "snapshot_key", "message_seq", "event_seq", "created_at", "last_active_at",
    ]
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ["session", "sequence", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["session__id"]
    list_select_related = ["session"]


@admin.register(SessionEvent)
class SessionEventAdmin(ReadOnlyAdmin):
    list_display = ["session", "sequence", "type", "created_at"]
    list_filter = ["type"]
    search_fields = ["session__id"]
    list_select_related = ["session"]


@admin.register(Attachment)
class AttachmentAdmin(ReadOnlyAdmin):
    list_display = ["filename", "session", "mime_type", "size", "created_at"]
    search_fields = ["filename", "session__id"]
    list_select_related = ["session"]
