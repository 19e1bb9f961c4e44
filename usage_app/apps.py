from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "usage_app"
    verbose_name = "Usage"
