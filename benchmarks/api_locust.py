"""The locustfile of ``make bench-api`` (run by :mod:`benchmarks.api_bench`, which seeds the
people and passes everything through the environment):

- ``API_BENCH_IDENTITIES``: a JSON file of ``{role, token, employeeId}``; each simulated user
  takes one identity of its role of its own (no two users share a person, so no two
  approvers race for one request and the per-user rate limits meet one user each);
- ``API_BENCH_MIX``: how many users of each role (``employee=26,approver=4,admin=2``);
- ``API_BENCH_WAIT``: the think time between two actions of a user, ``min,max`` seconds;
- ``API_BENCH_CORRECTION_DAYS``: corrections are asked for the days 1 … N days back (the
  seeded pending corrections are older, so a new one never meets one for the same day);
- ``API_BENCH_TIME_ZONE``: the organisation's;
- ``API_BENCH_RESULTS``: where the per-endpoint results are written when the test stops.

Every request is judged by what the API contract says it answers (status and envelope). A
429 ``RATE_LIMITED`` is an expected refusal, counted apart and left out of the latencies (an
answer that did no work would flatter them); anything else unexpected is an error, kept with
a few samples of what came back.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import random
import time
import zoneinfo
from collections import Counter, defaultdict

from locust import FastHttpUser, between, events, task

EXPECTED_REFUSAL = "RATE_LIMITED"
ERROR_SAMPLES = 5

ROLES = ("employee", "approver", "admin")


def _mix() -> dict[str, int]:
    text = os.environ.get("API_BENCH_MIX", "employee=1,approver=1,admin=1")
    counts = dict(part.split("=") for part in text.split(","))
    return {role: int(counts.get(role, 0)) for role in ROLES}


def _identities() -> dict[str, itertools.cycle]:
    path = os.environ.get("API_BENCH_IDENTITIES")
    people = json.loads(open(path).read()) if path else []  # noqa: SIM115 - read at once
    shuffled = random.Random(4242).sample(people, len(people))
    return {role: iter([person for person in shuffled if person["role"] == role]) for role in ROLES}


MIX = _mix()
POOLS = _identities()
WAIT = tuple(float(part) for part in os.environ.get("API_BENCH_WAIT", "0.5,1.5").split(","))
CORRECTION_DAYS = int(os.environ.get("API_BENCH_CORRECTION_DAYS", "29"))
TIME_ZONE = zoneinfo.ZoneInfo(os.environ.get("API_BENCH_TIME_ZONE", "Asia/Shanghai"))


# --- the results --------------------------------------------------------------------------


class Results:
    """Per endpoint: the latencies of the answers that were not refused, the counts of
    what came back and a few samples of the errors."""

    def __init__(self):
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.outcomes: dict[str, Counter] = defaultdict(Counter)
        self.statuses: dict[str, Counter] = defaultdict(Counter)
        self.samples: dict[str, list[str]] = defaultdict(list)
        # (start, ms) of every answer not refused: how the latencies moved during the run.
        self.timeline: list[tuple[float, float]] = []
        self.started = time.time()
        self.stopped: float | None = None

    def add(
        self, name: str, started: float, response_time: float, outcome: str, status, detail: str
    ) -> None:
        self.outcomes[name][outcome] += 1
        self.statuses[name][str(status)] += 1
        if outcome != "rateLimited":
            self.latencies[name].append(response_time)
            self.timeline.append((started, response_time))
        if outcome == "error" and len(self.samples[name]) < ERROR_SAMPLES:
            self.samples[name].append(detail[:300])

    def as_dict(self, environment) -> dict:
        stats = environment.stats
        locust_stats = {
            entry.name: {
                "requests": entry.num_requests,
                "failures": entry.num_failures,
                "p50Ms": entry.get_response_time_percentile(0.5),
                "p95Ms": entry.get_response_time_percentile(0.95),
                "p99Ms": entry.get_response_time_percentile(0.99),
                "rps": round(entry.total_rps, 2),
            }
            for entry in stats.entries.values()
        }
        total = stats.total
        locust_stats["total"] = {
            "requests": total.num_requests,
            "failures": total.num_failures,
            "p50Ms": total.get_response_time_percentile(0.5),
            "p95Ms": total.get_response_time_percentile(0.95),
            "p99Ms": total.get_response_time_percentile(0.99),
            "rps": round(total.total_rps, 2),
        }
        runner = environment.runner
        return {
            "startedAt": self.started,
            "stoppedAt": self.stopped or time.time(),
            "users": runner.user_count if runner else None,
            "clientCpuWarning": bool(getattr(runner, "cpu_warning_emitted", False)),
            "endpoints": {
                name: {
                    "latenciesMs": [round(ms, 2) for ms in self.latencies[name]],
                    "outcomes": dict(self.outcomes[name]),
                    "statuses": dict(self.statuses[name]),
                    "errorSamples": self.samples[name],
                }
                for name in self.outcomes
            },
            "timeline": [[round(at, 3), round(ms, 2)] for at, ms in self.timeline],
            # Locust's own view (its histogram rounds: 2 significant digits above 100 ms;
            # a 429 is a failure there and its time is counted in).
            "locust": locust_stats,
        }


RESULTS = Results()


@events.request.add_listener
def _on_request(
    name, response_time, start_time=None, exception=None, response=None, context=None, **_kwargs
):
    judged = context or {}
    outcome = judged.get("outcome")
    detail = judged.get("detail", "")
    if outcome is None:  # judged by nothing: no answer at all (refused connection, time-out)
        outcome, detail = "error", f"{type(exception).__name__}: {exception}"
    started = start_time if start_time is not None else time.time() - response_time / 1000
    status = getattr(response, "status_code", None)
    RESULTS.add(name, started, response_time, outcome, status, detail)


@events.test_start.add_listener
def _on_start(**_kwargs):
    RESULTS.started = time.time()


@events.test_stop.add_listener
def _on_stop(environment, **_kwargs):
    RESULTS.stopped = time.time()
    path = os.environ.get("API_BENCH_RESULTS")
    if path:
        with open(path, "w") as handle:
            json.dump(RESULTS.as_dict(environment), handle)


# --- the users ----------------------------------------------------------------------------


class ApiUser(FastHttpUser):
    abstract = True
    role = ""
    wait_time = between(*WAIT)

    def on_start(self):
        identity = next(POOLS[self.role], None)
        if identity is None:
            raise RuntimeError(f"more {self.role} users than seeded {self.role}s")
        self.employee_id = identity["employeeId"]
        self.headers = {
            "Authorization": f"Bearer {identity['token']}",
            "Accept": "application/json",
        }

    def call(self, method: str, path: str, name: str, *, expect: int = 200, body=None):
        """One request judged by the contract: the envelope's data when it answered
        ``expect`` with ``ok``, else None (the verdict goes to the request listener)."""
        with self.client.request(
            method, path, name=name, headers=self.headers, json=body, catch_response=True
        ) as response:
            # The verdict travels to the request listener in the request's context (the
            # session passes on a copy of the one given, so it is set on the one it sends).
            judged = response.request_meta["context"]
            try:
                envelope = json.loads(response.text or "")
            except (ValueError, TypeError):
                envelope = None
            if not isinstance(envelope, dict):
                envelope = {}
            error = envelope.get("error")
            if not isinstance(error, dict):
                error = {}
            if response.status_code == expect and envelope.get("ok") is True:
                judged["outcome"] = "ok"
                response.success()
                return envelope.get("data")
            if response.status_code == 429 and error.get("code") == EXPECTED_REFUSAL:
                judged["outcome"] = "rateLimited"
                response.failure(f"429 {EXPECTED_REFUSAL}")
                return None
            if response.status_code:
                detail = (
                    f"{response.status_code} {error.get('code')}: {(response.text or '')[:200]}"
                )
            else:  # no answer: the connection's error
                detail = f"no answer: {response.error!r}"
            judged.update(outcome="error", detail=detail)
            response.failure(detail)
            return None


def _month(day: dt.date) -> str:
    return day.strftime("%Y-%m")


class Employee(ApiUser):
    """Looks at their days and the month, clocks in and out, asks for corrections."""

    role = "employee"
    fixed_count = MIX["employee"]

    def on_start(self):
        super().on_start()
        self.next_kind = "in"
        self.days_back = iter(random.sample(range(1, CORRECTION_DAYS + 1), CORRECTION_DAYS))

    def today(self) -> dt.date:
        return dt.datetime.now(TIME_ZONE).date()

    @task(4)
    def records(self):
        today = self.today()
        since = today - dt.timedelta(days=31)
        self.call("GET", f"/api/attendance/records?from={since}&to={today}", "records list")

    @task(2)
    def summary(self):
        today = self.today()
        month = today if random.random() < 0.7 else today.replace(day=1) - dt.timedelta(days=1)
        self.call("GET", f"/api/attendance/summary?month={_month(month)}", "summary")

    @task(2)
    def punch(self):
        data = self.call(
            "POST", "/api/attendance/punch", "punch", expect=201, body={"kind": self.next_kind}
        )
        if data is not None:
            self.next_kind = "out" if self.next_kind == "in" else "in"

    @task(1)
    def correction(self):
        back = next(self.days_back, None)
        if back is None:  # every day asked for already: look at the days instead
            return self.records()
        day = self.today() - dt.timedelta(days=back)
        start = dt.datetime.combine(day, dt.time(9, 0), TIME_ZONE)
        end = dt.datetime.combine(day, dt.time(18, 0), TIME_ZONE)
        self.call(
            "POST",
            "/api/attendance/requests",
            "correction create",
            expect=201,
            body={
                "workDate": day.isoformat(),
                "firstIn": start.isoformat(),
                "lastOut": end.isoformat(),
                "reason": "Forgot to clock (load benchmark)",
            },
        )


class Approver(ApiUser):
    """Goes through their reports' pending corrections and approves them; looks at their
    reports' days."""

    role = "approver"
    fixed_count = MIX["approver"]

    def on_start(self):
        super().on_start()
        self.pending: list[int] = []

    @task(2)
    def pending_list(self):
        data = self.call(
            "GET", "/api/attendance/requests?status=pending&pageSize=20", "corrections pending"
        )
        if data is not None:
            self.pending = [
                item["id"] for item in data["items"] if item["employee"]["id"] != self.employee_id
            ]

    @task(2)
    def approve(self):
        if not self.pending:
            return self.pending_list()
        request_id = self.pending.pop(0)
        self.call(
            "POST",
            f"/api/attendance/requests/{request_id}/approve",
            "correction approve",
            body={"comment": "ok (load benchmark)"},
        )

    @task(1)
    def records(self):
        today = dt.datetime.now(TIME_ZONE).date()
        since = today - dt.timedelta(days=7)
        self.call("GET", f"/api/attendance/records?from={since}&to={today}", "records list")


class Admin(ApiUser):
    """Reads the audit log: the newest page, sometimes the next one, sometimes a filter."""

    role = "admin"
    fixed_count = MIX["admin"]

    @task(3)
    def audit(self):
        data = self.call("GET", "/api/attendance-admin/audit-logs", "audit list")
        if data and data.get("nextCursor") and random.random() < 0.3:
            self.call(
                "GET",
                f"/api/attendance-admin/audit-logs?cursor={data['nextCursor']}",
                "audit list",
            )

    @task(1)
    def audit_filtered(self):
        self.call(
            "GET", "/api/attendance-admin/audit-logs?actionPrefix=attendance.request", "audit list"
        )
