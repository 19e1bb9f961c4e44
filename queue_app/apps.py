from django.apps import AppConfig


class QueueConfig(AppConfig):
    name = "queue_app"
    verbose_name = "Queue"
