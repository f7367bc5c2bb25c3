from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GatesConfig(AppConfig):
    name = "gates"
    verbose_name = _("Readiness gates")

    def ready(self):
        from gates import metrics

        metrics.register()
