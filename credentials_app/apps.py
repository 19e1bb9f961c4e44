from django.apps import AppConfig


class CredentialsConfig(AppConfig):
    name = "credentials_app"
    verbose_name = "Credentials"
