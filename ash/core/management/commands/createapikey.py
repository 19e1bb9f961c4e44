from __future__ import annotations

import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ash.auth import api_key_create
from ash.core.models import TENANT_MAX_LENGTH

TENANT_PATTERN = re.compile(rf"^[A-Za-z0-9_.-]{{1,{TENANT_MAX_LENGTH}}}$")


class Command(BaseCommand):
    help = "Create an API key for a tenant and print it once (only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--label", default="")

    def handle(self, *args: Any, tenant: str, label: str, **options: Any) -> None:
        if not TENANT_PATTERN.match(tenant):
            raise CommandError(f"--tenant must match {TENANT_PATTERN.pattern}")
        _, key = api_key_create(tenant_id=tenant, label=label)
        self.stdout.write(key)
