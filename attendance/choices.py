from django.db import models
from django.utils.translation import gettext_lazy as _


class PunchKind(models.TextChoices):
    IN = "in", _("In")
    OUT = "out", _("Out")
    UNKNOWN = "unknown", _("Unknown")


class PunchSource(models.TextChoices):
    WEB = "web", _("Web check-in")
    DEVICE = "device", _("Device")
    IMPORT = "import", _("Import")
    ADJUSTMENT = "adjustment", _("Adjustment")


class RecordStatus(models.TextChoices):
    NORMAL = "normal", _("Normal")
    LATE = "late", _("Late")
    EARLY_LEAVE = "early_leave", _("Early leave")
    LATE_EARLY = "late_early", _("Late and early leave")
    PARTIAL = "partial", _("Partial (one punch)")
    ABSENT = "absent", _("Absent")
    OFF = "off", _("Day off")
    LEAVE = "leave", _("Leave")
    ADJUSTED = "adjusted", _("Adjusted")


class RecordSource(models.TextChoices):
    PUNCH = "punch", _("Punches")
    IMPORT = "import", _("Import")
    ADJUSTMENT = "adjustment", _("Adjustment")
    MANUAL = "manual", _("Manual")


# Corrections win: a day an approver (adjustment) or an admin by hand (manual) set is kept;
# later punches and imports are stored but never overwrite it. The one statement of the rule,
# for the day rebuild and the import's SQL alike.
CORRECTED_SOURCES = (RecordSource.ADJUSTMENT, RecordSource.MANUAL)
# Statuses a file states as facts of the day (not derived from times); merge keeps them.
STATED_STATUSES = (RecordStatus.LEAVE, RecordStatus.OFF)


def sql_literals(values) -> str:
    """Choice values as an SQL list (``'a', 'b'``), for constants of this module only."""
    return ", ".join("'" + str(value).replace("'", "''") + "'" for value in values)


class RequestState(models.TextChoices):
    PENDING = "pending", _("Pending")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    CANCELLED = "cancelled", _("Cancelled")
