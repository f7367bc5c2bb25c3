"""Metrics of the cross-cutting defences (exported at /metrics beside the app's own)."""

from prometheus_client import Counter

RATE_LIMITED = Counter(
    "attendance_rate_limited_total",
    "Requests refused by a rate limit or a login lockout, by limit group",
    ["group"],
)


def count_rate_limited(group: str) -> None:
    RATE_LIMITED.labels(group=group).inc()
