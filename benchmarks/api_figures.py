"""The figures of ``make bench-api`` (:mod:`benchmarks.api_bench`): what the locustfile
recorded (:mod:`benchmarks.api_locust`) and gunicorn's access log turned into latencies,
rates and counts, over all requests and per endpoint.

A 429 ``RATE_LIMITED`` is an expected refusal: counted apart (``rateLimited``) and out of
the latencies; every other answer the API contract does not promise is an error.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

ENDPOINTS = (
    "records list",
    "summary",
    "punch",
    "correction create",
    "corrections pending",
    "correction approve",
    "audit list",
)
# gunicorn's access log line (method, path, status, microseconds) → the endpoint.
ACCESS_LOG_FORMAT = "%(m)s %(U)s %(s)s %(D)s"
SERVER_ROUTES = (
    ("GET", re.compile(r"/api/attendance/records"), "records list"),
    ("GET", re.compile(r"/api/attendance/summary"), "summary"),
    ("POST", re.compile(r"/api/attendance/punch"), "punch"),
    ("POST", re.compile(r"/api/attendance/requests"), "correction create"),
    ("GET", re.compile(r"/api/attendance/requests"), "corrections pending"),
    ("POST", re.compile(r"/api/attendance/requests/\d+/approve"), "correction approve"),
    ("GET", re.compile(r"/api/attendance-admin/audit-logs"), "audit list"),
)


def percentile(ordered: list[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks of sorted values."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return round(value, 1)


def percentiles(values: list[float]) -> dict:
    """p50, p95 and p99 of ``values`` (in any order), as the report names them."""
    ordered = sorted(values)
    return {
        "p50Ms": percentile(ordered, 0.50),
        "p95Ms": percentile(ordered, 0.95),
        "p99Ms": percentile(ordered, 0.99),
    }


def figures(latencies: list[float], outcomes: dict, seconds: float) -> dict:
    ordered = sorted(latencies)
    requests = sum(outcomes.values())
    errors = outcomes.get("error", 0)
    limited = outcomes.get("rateLimited", 0)
    return {
        "requests": requests,
        "ok": outcomes.get("ok", 0),
        "errors": errors,
        "errorRate": round(errors / requests, 5) if requests else 0.0,
        "rateLimited": limited,
        "rateLimitedRate": round(limited / requests, 5) if requests else 0.0,
        "rps": round(requests / seconds, 2) if seconds else None,
        **percentiles(ordered),
        "maxMs": round(ordered[-1], 1) if ordered else None,
    }


TIMELINE_SECONDS = 10


def timeline(outcome: dict) -> list[dict]:
    """The latencies by TIMELINE_SECONDS window of the run (by request start): on a shared
    machine, a window slower than the others shows when something else ran."""
    windows: dict[int, list[float]] = {}
    for started, ms in outcome.get("timeline", []):
        index = max(0, int((started - outcome["startedAt"]) // TIMELINE_SECONDS))
        windows.setdefault(index, []).append(ms)
    return [
        {
            "fromSeconds": index * TIMELINE_SECONDS,
            "requests": len(values),
            **percentiles(values),
        }
        for index, values in sorted(windows.items())
    ]


def summarise(outcome: dict) -> dict:
    """The client's figures over all requests and per endpoint."""
    seconds = outcome["stoppedAt"] - outcome["startedAt"]
    every_latency: list[float] = []
    every_outcome: dict[str, int] = {}
    endpoints = {}
    for name in (*ENDPOINTS, *sorted(set(outcome["endpoints"]) - set(ENDPOINTS))):
        measured = outcome["endpoints"].get(name, {"latenciesMs": [], "outcomes": {}})
        every_latency += measured["latenciesMs"]
        for key, count in measured["outcomes"].items():
            every_outcome[key] = every_outcome.get(key, 0) + count
        endpoints[name] = {
            **figures(measured["latenciesMs"], measured["outcomes"], seconds),
            "statuses": measured.get("statuses", {}),
            "errorSamples": measured.get("errorSamples", []),
        }
    return {
        **figures(every_latency, every_outcome, seconds),
        "measuredSeconds": round(seconds, 1),
        "endpoints": endpoints,
        "timeline": timeline(outcome),
    }


def server_times(access_log: Path, offset: int) -> dict:
    """The server's own time per endpoint (request line to response end, in gunicorn)
    from the access log's lines after ``offset`` bytes; 429s apart as on the client."""
    per_endpoint: dict[str, list[float]] = {}
    with open(access_log, "rb") as handle:
        handle.seek(offset)
        for line in handle.read().decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) != 4 or parts[2] == "429":
                continue
            method, path, _status, micros = parts
            for route_method, pattern, name in SERVER_ROUTES:
                if method == route_method and pattern.fullmatch(path):
                    per_endpoint.setdefault(name, []).append(int(micros) / 1000)
                    break
    every = [ms for values in per_endpoint.values() for ms in values]
    return {
        **percentiles(every),
        "endpoints": {
            name: {"requests": len(values), **percentiles(values)}
            for name, values in sorted(per_endpoint.items())
        },
    }
