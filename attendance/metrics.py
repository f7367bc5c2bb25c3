"""The app's own Prometheus metrics (exported at /metrics beside django-prometheus')."""

from prometheus_client import Counter

PUNCHES = Counter(
    "attendance_punches_total", "Punches recorded, by kind and source", ["kind", "source"]
)
REQUEST_DECISIONS = Counter(
    "attendance_request_decisions_total", "Correction requests decided, by outcome", ["outcome"]
)
