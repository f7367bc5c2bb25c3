from django.apps import AppConfig


class AttendanceConfig(AppConfig):
    name = "attendance"
    verbose_name = "Attendance"

    def ready(self):
        from attendance import schema  # noqa: F401 (registers the OpenAPI bearer scheme)
