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


class RequestState(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
