from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from queue_app.models import QueueItem


@admin.register(QueueItem)
class QueueItemAdmin(admin.ModelAdmin):
    list_display = ["id", "agent_name", "tenant_id", "status", "priority", "retry_count", "max_retries", "created_at", "completed_at"]
    list_filter = ["status", "tenant_id"]
    search_fields = ["id", "agent_name", "prompt", "tenant_id"]
    list_select_related = ["session"]
    readonly_fields = [
        "id", "tenant_id", "session", "agent_name", "prompt", "retry_count", "error", "retry_after",
        "lease_expires_at", "runner_id", "created_at", "started_at", "completed_at",
    ]
    show_full_result_count = False
    actions = ["cancel", "retry"]

    @admin.action(description="Cancel pending items")
    def cancel(self, request: HttpRequest, queryset: QuerySet[QueueItem]) -> None:
        count = queryset.filter(status=QueueItem.Status.PENDING).update(status=QueueItem.Status.CANCELLED, completed_at=timezone.now())
        self.message_user(request, f"Cancelled {count} item(s).", messages.SUCCESS)

    @admin.action(description="Retry failed items now")
    def retry(self, request: HttpRequest, queryset: QuerySet[QueueItem]) -> None:
        count = queryset.filter(status=QueueItem.Status.FAILED).update(
            status=QueueItem.Status.PENDING, retry_count=0, retry_after=None, error=None, completed_at=None
        )
        self.message_user(request, f"Re-queued {count} item(s).", messages.SUCCESS)
