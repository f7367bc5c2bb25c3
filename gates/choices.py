"""The vocabularies of gate runs and escalations (stored values are stable codes; the labels
are what people read)."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Priority(models.TextChoices):
    P0 = "P0", _("P0 (blocks a release)")
    P1 = "P1", _("P1 (must be fixed soon)")
    P2 = "P2", _("P2 (high-scale evidence)")


class RunStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    PASS = "pass", _("Pass")
    FAIL = "fail", _("Fail")
    ERROR = "error", _("Error")


class FailureKind(models.TextChoices):
    CONFIG = "config", _("Configuration")
    DEPENDENCY = "dependency", _("Dependency")
    REGRESSION = "regression", _("Regression")
    DEFECT = "defect", _("Defect")


class OwnerRole(models.TextChoices):
    """Who acts on a failure's remediation hint."""

    OPS = "ops", _("Operations")
    DBA = "dba", _("Database administrator")
    DEVELOPER = "developer", _("Developer")
    SECURITY = "security", _("Security")


class EscalationStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CLOSED = "closed", _("Closed")


class NotificationEvent(models.TextChoices):
    OPENED = "opened", _("Opened")
    UPDATED = "updated", _("Updated")
    CLOSED = "closed", _("Closed")


class NotificationStatus(models.TextChoices):
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
