from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from ash.core.models import ApiKey, Runner
from ash.core.services import runner_deregister


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "tenant_id", "label", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["tenant_id", "revoked_at"]
    search_fields = ["tenant_id", "label", "prefix"]
    readonly_fields = ["id", "prefix", "created_at", "last_used_at"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Keys are minted by `manage.py createapikey`, which shows the plaintext once.
        return False

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        from django.utils import timezone

        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)


@admin.register(Runner)
class RunnerAdmin(admin.ModelAdmin):
    list_display = ["runner_id", "host", "port", "isolation", "active_count", "warming_count", "max_sandboxes", "last_heartbeat_at"]
    list_filter = ["isolation"]
    search_fields = ["runner_id", "host"]
    readonly_fields = ["runner_id", "registered_at", "last_heartbeat_at", "pool_stats", "active_count", "warming_count"]
    actions = ["deregister"]

    @admin.action(description="Deregister (pause their sessions)")
    def deregister(self, request: HttpRequest, queryset: QuerySet[Runner]) -> None:
        for runner in queryset:
            runner_deregister(runner_id=runner.runner_id)
        self.message_user(request, "Deregistered.", messages.SUCCESS)
