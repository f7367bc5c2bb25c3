from axes.apps import AppConfig as AxesAppConfig
from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop


class AttendanceConfig(AppConfig):
    # This module also holds (and imports) django-axes' config: say which one is the app's.
    default = True
    name = "attendance"
    verbose_name = _("Attendance")

    def ready(self):
        from attendance import schema  # noqa: F401 (registers the OpenAPI bearer scheme)


class LoginLockoutsConfig(AxesAppConfig):
    """django-axes under a name the admin centre's readers know (it has no verbose name and
    no Chinese catalogue of its own)."""

    verbose_name = _("Login lockouts")


# django-axes' own strings that the admin centre shows: gathered into our catalogue, which
# Django consults before the package's (LOCALE_PATHS first).
AXES_STRINGS = (
    gettext_noop("access attempt"),
    gettext_noop("access attempts"),
    gettext_noop("User Agent"),
    gettext_noop("IP Address"),
    gettext_noop("Username"),
    gettext_noop("Path"),
    gettext_noop("Attempt Time"),
    gettext_noop("Failed Logins"),
)
