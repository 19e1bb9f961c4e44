from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "ash.core"
    label = "core"
    verbose_name = "Ash core"
