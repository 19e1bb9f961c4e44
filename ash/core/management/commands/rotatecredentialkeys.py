from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from credentials_app.services import credentials_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored credential under the first key of ASH_CREDENTIAL_KEYS. "
        "Rotate by prepending a new key, running this, then dropping the old key."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        count = credentials_rotate()
        self.stdout.write(f"re-encrypted {count} credential(s)")
