from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "ash.core"
    label = "core"
    verbose_name = "Ash core"

    def ready(self) -> None:
        # The Celery app must exist before any task is sent (ash/__init__.py stays import-free
        # because the sandboxed runtime imports the `ash` package without Django).
        import ash.celery  # noqa: F401
