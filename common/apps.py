from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "common"
    verbose_name = "Common"

    def ready(self):
        # Registers the OpenAPI description of bearer tokens with drf-spectacular.
        from common import schema  # noqa: F401
