"""Events' series at /metrics: auto-absence's batches and the participants they marked."""

from prometheus_client import Counter

AUTO_ABSENCE_BATCHES = Counter(
    "attendance_auto_absence_batches_total",
    "Auto-absence batches run (each its own transaction)",
)
AUTO_ABSENCE_MARKED = Counter(
    "attendance_auto_absence_marked_total",
    "Registered participants auto-absence marked absent",
)
