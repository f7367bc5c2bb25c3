"""Metrics of the cross-cutting defences (exported at /metrics beside the app's own)."""

from prometheus_client import Counter

RATE_LIMITED = Counter(
    "attendance_rate_limited_total",
    "Requests refused by a rate limit or a login lockout, by limit group",
    ["group"],
)


def count_rate_limited(group: str) -> None:
    RATE_LIMITED.labels(group=group).inc()


API_ERRORS = Counter(
    "attendance_api_errors_total",
    "Error envelopes answered, by error code (API.md)",
    ["code"],
)


def count_api_error(code: str) -> None:
    API_ERRORS.labels(code=code).inc()
