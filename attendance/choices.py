from django.db import models


class PunchKind(models.TextChoices):
    IN = "in", "In"
    OUT = "out", "Out"
    UNKNOWN = "unknown", "Unknown"


class PunchSource(models.TextChoices):
    WEB = "web", "Web check-in"
    DEVICE = "device", "Device"
    IMPORT = "import", "Import"
    ADJUSTMENT = "adjustment", "Adjustment"


class RecordStatus(models.TextChoices):
    NORMAL = "normal", "Normal"
    LATE = "late", "Late"
    EARLY_LEAVE = "early_leave", "Early leave"
    LATE_EARLY = "late_early", "Late and early leave"
    PARTIAL = "partial", "Partial (one punch)"
    ABSENT = "absent", "Absent"
    OFF = "off", "Day off"
    LEAVE = "leave", "Leave"
    ADJUSTED = "adjusted", "Adjusted"


class RecordSource(models.TextChoices):
    PUNCH = "punch", "Punches"
    IMPORT = "import", "Import"
    ADJUSTMENT = "adjustment", "Adjustment"
    MANUAL = "manual", "Manual"


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
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
