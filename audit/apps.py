from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = _("Audit log")

    def ready(self) -> None:
        from django.contrib.auth import signals as auth_signals

        from audit import signals

        auth_signals.user_logged_in.connect(
            signals.login_succeeded, dispatch_uid="audit.login_succeeded"
        )
        auth_signals.user_login_failed.connect(
            signals.login_failed, dispatch_uid="audit.login_failed"
        )
        auth_signals.user_logged_out.connect(signals.logged_out, dispatch_uid="audit.logged_out")
