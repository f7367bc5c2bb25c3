"""`make bench-api USERS=32 DURATION=60`: the API under a crowd, with locust.

On a fresh database (--database, default ``attendance_api_bench``, on the server of
DATABASE_URL, else the embedded PostgreSQL) it migrates and seeds an organisation with SQL:
--employees people (logins, bearer tokens and roles), --admins of them admins and
--approvers approvers, each other employee reporting to one approver; --days days of day
records (workdays; a mix of normal, late, early-leave, absent and leave days) with the
punches behind them; --pending pending corrections (and as many decided ones) older than
the days the crowd asks for; --audit-events audit events over the months of those days
(5 % another organisation's, as :mod:`benchmarks.audit_bench` seeds them). VACUUM ANALYZE.

Then gunicorn (2 sync workers) serves the app on loopback, with production's persistent
database connections (DB_CONN_MAX_AGE=60, --conn-max-age; the children otherwise run as
development, which connects per request) and, with REDIS_URL, its cache and rate-limit
counters in Redis database --redis-db (emptied first); the app's own rate limits apply
unless --rate-limit sets one for the run. Locust (``benchmarks/api_locust.py``, a
subprocess, headless) runs --users users (spawned --spawn-rate a second) for --duration
seconds, each a person of their own with a think time of --wait seconds between actions:

- employees: their records list (31 days), the month's summary, punches in and out,
  correction requests;
- approvers: their reports' pending corrections, approving them, their reports' records;
- admins: the audit log's newest page (sometimes the next one) and a filtered page.

Prints one JSON document on stdout (progress on stderr): ``p50Ms``, ``p95Ms``, ``p99Ms``,
``rps``, ``errorRate`` (every answer the API contract does not promise for the request,
and requests that got no answer), ``rateLimited`` (429 ``RATE_LIMITED``: expected, counted
apart and left out of the latencies) over all requests and the same per endpoint, as the
client saw them (exact, from every latency); the server's own time per endpoint (gunicorn's
access log); the queries each endpoint runs (one request each, after the load, counted in a
Django process on the same database); the rate limits in force and where they count; the
machine (cores, load average before and after the load, Python, PostgreSQL) and the CPU
time of the client and the web workers. Exit code 1 when the run failed (not when a
target is missed: ``met`` says that).

    python -m benchmarks.api_bench [--users 32] [--duration 60] [--keep]
        [--rate-limit PUNCH=60/m …]  (explicit rates for the run, printed in the JSON)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import http.client
import json
import math
import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import audit_bench  # noqa: E402
from benchmarks.stack import (  # noqa: E402
    PYTHON,
    BenchError,
    Database,
    child_env,
    children_of,
    database_name,
    log,
    machine_facts,
    ms_since,
    prepare_database,
)

BENCH_DATABASE = "attendance_api_bench"
BENCH_ORG = "api-bench"
OTHER_ORG = "api-bench-other"
TIME_ZONE = "Asia/Shanghai"
LOCUSTFILE = ROOT / "benchmarks" / "api_locust.py"
TARGETS = {"p95Ms": 100, "p99Ms": 250, "errors": 0}
WEB_WORKERS = 2
# The crowd of 32: 26 employees, 4 approvers, 2 admins (scaled to --users, one of each at
# least).
MIX_SHARES = {"approver": 4 / 32, "admin": 2 / 32}
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
# The rate limits an API request of the crowd can meet (config/settings.py, their defaults).
RATE_SETTINGS = ("RATELIMIT_ENABLE", "RATELIMIT_API", "RATELIMIT_PUNCH")
ROLE_GROUPS = {
    "employee": ["attendance_employee"],
    "approver": ["attendance_employee", "attendance_approver"],
    "admin": ["attendance_employee", "attendance_admin"],
}
TOKEN_PREFIX = "att_"  # noqa: S105 - attendance.services.TOKEN_PREFIX, a marker


# --- seeding ------------------------------------------------------------------------------

SEED_USERS_SQL = """
    INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
        is_staff, is_active, date_joined)
    SELECT '!api-bench', false, 'api-bench-' || lpad(g::text, 5, '0'), '', '', '',
           false, true, now()
    FROM generate_series(1, %(n)s) AS g
"""
# Person g: admins first, then approvers, then the employees, each of whom reports to an
# approver in turn.
SEED_EMPLOYEES_SQL = """
    INSERT INTO attendance_employee (organisation_id, employee_no, name, department, user_id,
        dingtalk_user_id, device_pin, is_active, created_at)
    SELECT %(org)s, 'AB' || lpad(g::text, 5, '0'),
           (ARRAY['Wang', 'Li', 'Zhang', 'Liu', 'Chen', 'Yang', 'Huang', 'Zhao'])[1 + g %% 8]
               || ' Person ' || g,
           'Dept ' || (g %% 20), u.id, '', '', true, now()
    FROM auth_user u
    CROSS JOIN LATERAL (SELECT substr(u.username, 11)::int AS g) AS number
    WHERE u.username LIKE 'api-bench-%%'
"""
SEED_APPROVERS_SQL = """
    UPDATE attendance_employee AS e
    SET approver_id = a.id
    FROM attendance_employee AS a
    WHERE e.organisation_id = %(org)s AND a.organisation_id = %(org)s
      AND substr(e.employee_no, 3)::int > %(first_employee)s - 1
      AND substr(a.employee_no, 3)::int
          = %(admins)s + 1 + substr(e.employee_no, 3)::int %% %(approvers)s
"""
# Workdays of the last %(days)s days before today (in the organisation's zone): status by a
# hash of (employee, day); times in minutes after midnight, local.
SEED_RECORDS_SQL = """
    WITH days AS (
        SELECT e.id AS employee_id, d::date AS work_date,
               abs(hashtext(e.id::text || ':' || d::date)) %% 100 AS h
        FROM attendance_employee e
        CROSS JOIN generate_series(%(today)s::date - %(days)s, %(today)s::date - 1,
                                   interval '1 day') AS d
        WHERE e.organisation_id = %(org)s AND extract(isodow FROM d) < 6
    ), judged AS (
        SELECT *, CASE WHEN h < 3 THEN 'absent' WHEN h < 6 THEN 'leave'
                       WHEN h < 14 THEN 'late' WHEN h < 18 THEN 'early_leave'
                       WHEN h < 20 THEN 'late_early' ELSE 'normal' END AS status
        FROM days
    ), timed AS (
        SELECT *,
               CASE WHEN status IN ('late', 'late_early') THEN 546 + h %% 60
                    ELSE 510 + h %% 30 END AS in_minute,
               CASE WHEN status IN ('early_leave', 'late_early') THEN 1020 + h %% 50
                    ELSE 1080 + h %% 60 END AS out_minute
        FROM judged
    )
    INSERT INTO attendance_attendancerecord (organisation_id, employee_id, work_date,
        first_in, last_out, work_minutes, late_minutes, early_leave_minutes, status, source,
        note, updated_at)
    SELECT %(org)s, employee_id, work_date,
           CASE WHEN status IN ('absent', 'leave') THEN NULL
                ELSE (work_date + make_interval(mins => in_minute)) AT TIME ZONE %(tz)s END,
           CASE WHEN status IN ('absent', 'leave') THEN NULL
                ELSE (work_date + make_interval(mins => out_minute)) AT TIME ZONE %(tz)s END,
           CASE WHEN status IN ('absent', 'leave') THEN 0 ELSE out_minute - in_minute END,
           CASE WHEN status IN ('late', 'late_early') THEN in_minute - 540 ELSE 0 END,
           CASE WHEN status IN ('early_leave', 'late_early') THEN 1080 - out_minute ELSE 0 END,
           status, 'import', '', now()
    FROM timed
"""
SEED_PUNCHES_SQL = """
    INSERT INTO attendance_punch (organisation_id, employee_id, kind, occurred_at, received_at,
        work_date, source, source_key)
    SELECT r.organisation_id, r.employee_id, p.kind, p.at, p.at, r.work_date, 'device',
           'device:bench:' || r.id || ':' || p.kind
    FROM attendance_attendancerecord r
    CROSS JOIN LATERAL (VALUES ('in', r.first_in), ('out', r.last_out)) AS p(kind, at)
    WHERE r.organisation_id = %(org)s AND r.first_in IS NOT NULL
"""
# Request k: employee k mod R (of the R plain employees), on the day 1 + k div R days
# before the oldest day the crowd asks for; pending for k < %(pending)s, decided after.
SEED_CORRECTIONS_SQL = """
    WITH plain AS (
        SELECT e.id, e.user_id, e.approver_id,
               row_number() OVER (ORDER BY e.id) - 1 AS i, count(*) OVER () AS r
        FROM attendance_employee e
        WHERE e.organisation_id = %(org)s AND e.approver_id IS NOT NULL
    ), asked AS (
        SELECT p.*, k, %(today)s::date - (%(first_back)s + k / p.r)::int AS work_date
        FROM generate_series(0, %(pending)s + %(decided)s - 1) AS k
        JOIN plain p ON p.i = k %% p.r
    )
    INSERT INTO attendance_adjustmentrequest (organisation_id, employee_id, work_date,
        requested_first_in, requested_last_out, requested_status, reason, state,
        created_by_id, created_at, decided_by_id, decided_at, decision_comment)
    SELECT %(org)s, a.id, a.work_date,
           (a.work_date + time '09:00') AT TIME ZONE %(tz)s,
           (a.work_date + time '18:00') AT TIME ZONE %(tz)s,
           '', 'Forgot to clock (seeded)',
           CASE WHEN k < %(pending)s THEN 'pending' ELSE 'approved' END,
           a.user_id, now() - make_interval(mins => k),
           CASE WHEN k < %(pending)s THEN NULL ELSE approver.user_id END,
           CASE WHEN k < %(pending)s THEN NULL ELSE now() - make_interval(mins => k) END,
           ''
    FROM asked a
    JOIN attendance_employee approver ON approver.id = a.approver_id
"""
SEEDED_TABLES = (
    "auth_user",
    "auth_user_groups",
    "attendance_employee",
    "attendance_apitoken",
    "attendance_attendancerecord",
    "attendance_punch",
    "attendance_adjustmentrequest",
)


def role_of(number: int, admins: int, approvers: int) -> str:
    """The role of person ``number`` (1-based): admins first, then approvers."""
    if number <= admins:
        return "admin"
    if number <= admins + approvers:
        return "approver"
    return "employee"


def crowd_mix(users: int) -> dict[str, int]:
    """How many users of each role a crowd of ``users`` has (26/4/2 of 32)."""
    if users < 3:
        raise ValueError("a crowd needs one employee, one approver and one admin at least")
    approvers = max(1, round(users * MIX_SHARES["approver"]))
    admins = max(1, round(users * MIX_SHARES["admin"]))
    return {"employee": users - approvers - admins, "approver": approvers, "admin": admins}


def seed(db: Database, args, workdir: Path) -> tuple[dict, Path]:
    """Seed everything; returns the report and the identities file (role, token, ids)."""
    report: dict = {}
    started = time.perf_counter()
    today = dt.datetime.now(dt.UTC).astimezone(_zone()).date()
    with db.connect() as connection:
        org, other = (
            connection.execute(
                "SELECT id FROM attendance_organisation WHERE slug = %s", [slug]
            ).fetchone()[0]
            for slug in (BENCH_ORG, OTHER_ORG)
        )
        with connection.transaction():
            connection.execute(SEED_USERS_SQL, {"n": args.employees})
            connection.execute(SEED_EMPLOYEES_SQL, {"org": org})
            connection.execute(
                SEED_APPROVERS_SQL,
                {
                    "org": org,
                    "admins": args.admins,
                    "approvers": args.approvers,
                    "first_employee": args.admins + args.approvers + 1,
                },
            )
            people = connection.execute(
                "SELECT substr(e.employee_no, 3)::int, e.id, e.user_id"
                " FROM attendance_employee e WHERE e.organisation_id = %s ORDER BY 1",
                [org],
            ).fetchall()
            identities = _grant_roles_and_tokens(connection, people, args)
        report["peopleMs"] = ms_since(started)
        phase = time.perf_counter()
        params = {"org": org, "today": today, "days": args.days, "tz": TIME_ZONE}
        connection.execute(SEED_RECORDS_SQL, params)
        connection.execute(SEED_PUNCHES_SQL, params)
        report["daysMs"] = ms_since(phase)
        phase = time.perf_counter()
        connection.execute(
            SEED_CORRECTIONS_SQL,
            {
                **params,
                "first_back": args.correction_days + 2,  # the probe asks for the day between
                "pending": args.pending,
                "decided": args.pending,
            },
        )
        report["correctionsMs"] = ms_since(phase)
        first_actor = people[0][2]
    months = max(1, math.ceil(args.days / 30))
    log(f"seeding {args.audit_events:,} audit events over {months} month(s) …")
    report["audit"] = audit_bench.seed(
        db, events=args.audit_events, months=months, org=org, other=other, first_actor=first_actor
    )
    with db.connect() as connection:
        phase = time.perf_counter()
        for table in SEEDED_TABLES:
            connection.execute(f"VACUUM (ANALYZE) {table}")
        report["vacuumAnalyzeMs"] = ms_since(phase)
        report["rows"] = {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in (*SEEDED_TABLES, "audit_auditevent")
        }
        report["pendingCorrections"] = connection.execute(
            "SELECT count(*) FROM attendance_adjustmentrequest WHERE state = 'pending'"
        ).fetchone()[0]
    report["ms"] = ms_since(started)
    path = workdir / "identities.json"
    path.write_text(json.dumps(identities))
    return report, path


def _grant_roles_and_tokens(connection, people, args) -> list[dict]:
    groups = dict(
        connection.execute(
            "SELECT name, id FROM auth_group WHERE name = ANY(%s)",
            [sorted({name for names in ROLE_GROUPS.values() for name in names})],
        ).fetchall()
    )
    identities = []
    with connection.cursor() as cursor:
        with cursor.copy("COPY auth_user_groups (user_id, group_id) FROM STDIN") as copy:
            for number, _employee, user in people:
                for group in ROLE_GROUPS[role_of(number, args.admins, args.approvers)]:
                    copy.write_row((user, groups[group]))
        with cursor.copy(
            "COPY attendance_apitoken (user_id, name, prefix, key_hash, created_at) FROM STDIN"
        ) as copy:
            now = dt.datetime.now(dt.UTC)
            for number, employee, user in people:
                raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
                digest = hashlib.sha256(raw.encode()).hexdigest()
                copy.write_row((user, "api benchmark", raw[:10], digest, now))
                identities.append(
                    {
                        "role": role_of(number, args.admins, args.approvers),
                        "token": raw,
                        "employeeId": employee,
                        "userId": user,
                    }
                )
    return identities


def _zone():
    import zoneinfo

    return zoneinfo.ZoneInfo(TIME_ZONE)


# --- the stack ----------------------------------------------------------------------------


class ApiStack(audit_bench.WebStack):
    """gunicorn with WEB_WORKERS sync workers and an access log of each request's time."""

    workers = WEB_WORKERS

    def start(self) -> None:
        self.access_log = self.workdir / "access.log"
        self.extra_gunicorn_args = (
            "--access-logfile",
            str(self.access_log),
            "--access-logformat",
            ACCESS_LOG_FORMAT,
        )
        super().start()

    def worker_cpu_seconds(self) -> float:
        """User + system CPU of the web workers so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in children_of(self.web.pid):
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / ticks


def redis_for_bench(redis_db: int | None) -> str | None:
    """REDIS_URL moved to the bench's own database index (emptied first: rate-limit counters
    of an earlier run must not count here), or None (no Redis: the counters live in each web
    worker's memory)."""
    configured = os.environ.get("REDIS_URL", "")
    if not configured or redis_db is None:
        return None
    url = urlunsplit(urlsplit(configured)._replace(path=f"/{redis_db}"))
    import redis

    redis.Redis.from_url(url).flushdb()
    return url


def warm_up(port: int, token: str, requests: int = 8) -> None:
    """A few requests on two connections at once, so each worker has loaded the code before
    the clock runs."""

    def one() -> None:
        for _ in range(requests // 2):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.request(
                "GET", "/api/attendance/summary?month=2000-01", headers={"Authorization": token}
            )
            connection.getresponse().read()
            connection.close()

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# --- the crowd ----------------------------------------------------------------------------


def run_locust(args, stack: ApiStack, identities: Path, workdir: Path, mix: dict) -> dict:
    results = workdir / "locust-results.json"
    env = {
        **os.environ,
        "API_BENCH_IDENTITIES": str(identities),
        "API_BENCH_RESULTS": str(results),
        "API_BENCH_MIX": ",".join(f"{role}={count}" for role, count in mix.items()),
        "API_BENCH_WAIT": f"{args.wait[0]},{args.wait[1]}",
        "API_BENCH_CORRECTION_DAYS": str(args.correction_days),
        "API_BENCH_TIME_ZONE": TIME_ZONE,
        "PYTHONUNBUFFERED": "1",
    }
    argv = [
        PYTHON,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--run-time",
        f"{args.duration}s",
        "--host",
        f"http://127.0.0.1:{stack.port}",
        "--stop-timeout",
        "10",
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",  # errors are the report's to count, not a failed run
    ]
    log(
        f"locust: {args.users} users ({mix}), spawn {args.spawn_rate}/s, {args.duration} s,"
        f" think time {args.wait[0]}–{args.wait[1]} s"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    locust_log = workdir / "locust.log"
    with open(locust_log, "wb") as output:
        finished = subprocess.run(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=args.duration + 120,
            check=False,
        )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if finished.returncode != 0 or not results.exists():
        tail = locust_log.read_text(errors="replace")[-4000:]
        raise BenchError(f"locust exited with {finished.returncode}:\n{tail}")
    outcome = json.loads(results.read_text())
    outcome["clientCpuSeconds"] = round(
        (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1
    )
    return outcome


def percentile(ordered: list[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks of sorted values."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return round(value, 1)


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
        "p50Ms": percentile(ordered, 0.50),
        "p95Ms": percentile(ordered, 0.95),
        "p99Ms": percentile(ordered, 0.99),
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
            "p50Ms": percentile(sorted(values), 0.5),
            "p95Ms": percentile(sorted(values), 0.95),
            "p99Ms": percentile(sorted(values), 0.99),
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
    every = sorted(ms for values in per_endpoint.values() for ms in values)
    return {
        "p50Ms": percentile(every, 0.5),
        "p95Ms": percentile(every, 0.95),
        "p99Ms": percentile(every, 0.99),
        "endpoints": {
            name: {
                "requests": len(values),
                "p50Ms": percentile(sorted(values), 0.5),
                "p95Ms": percentile(sorted(values), 0.95),
                "p99Ms": percentile(sorted(values), 0.99),
            }
            for name, values in sorted(per_endpoint.items())
        },
    }


# --- one request per endpoint, its queries counted ----------------------------------------


def probe_queries() -> None:
    """Run in ``manage.py shell`` on the bench database (API_BENCH_IDENTITIES, …): one
    request per endpoint through Django's test client, its queries counted; prints JSON
    with the counts and the rate limits in force."""
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from attendance.models import Employee

    people = json.loads(Path(os.environ["API_BENCH_IDENTITIES"]).read_text())
    first = {role: next(p for p in people if p["role"] == role) for role in ROLE_GROUPS}
    # An employee of the first approver: the correction the probe asks for is the one it
    # approves (the crowd may have approved every seeded one).
    report = Employee.objects.filter(approver_id=first["approver"]["employeeId"]).first()
    first["employee"] = next(p for p in people if p["employeeId"] == report.pk)
    client = Client()
    today = dt.datetime.now(_zone()).date()
    back = int(os.environ["API_BENCH_CORRECTION_DAYS"]) + 1
    counts: dict[str, dict] = {}

    def call(name, role, method, path, body=None):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {first[role]['token']}"}
        with CaptureQueriesContext(connection) as queries:
            if method == "GET":
                response = client.get(path, **headers)
            else:
                response = client.post(
                    path, json.dumps(body or {}), content_type="application/json", **headers
                )
        counts[name] = {"queries": len(queries), "status": response.status_code}
        return json.loads(response.content).get("data")

    since = today - dt.timedelta(days=31)
    call("records list", "employee", "GET", f"/api/attendance/records?from={since}&to={today}")
    call("summary", "employee", "GET", f"/api/attendance/summary?month={today:%Y-%m}")
    call("punch", "employee", "POST", "/api/attendance/punch", {"kind": "in"})
    day = today - dt.timedelta(days=back)
    asked = call(
        "correction create",
        "employee",
        "POST",
        "/api/attendance/requests",
        {"workDate": day.isoformat(), "status": "leave", "reason": "probe"},
    )
    call("corrections pending", "approver", "GET", "/api/attendance/requests?status=pending")
    if asked:  # else the create's status says why
        call(
            "correction approve",
            "approver",
            "POST",
            f"/api/attendance/requests/{asked['id']}/approve",
            {},
        )
    call("audit list", "admin", "GET", "/api/attendance-admin/audit-logs")
    limits = {name: getattr(settings, name) for name in RATE_SETTINGS}
    backend = settings.CACHES[settings.RATELIMIT_USE_CACHE]["BACKEND"].rsplit(".", 1)[-1]
    print(json.dumps({"queries": counts, "rateLimits": limits, "rateLimitCache": backend}))


PROBE_CODE = "from benchmarks import api_bench\napi_bench.probe_queries()"


def run_probe(stack: ApiStack, identities: Path, correction_days: int) -> dict:
    env = {
        **stack.env,
        "API_BENCH_IDENTITIES": str(identities),
        "API_BENCH_CORRECTION_DAYS": str(correction_days),
    }
    result = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", PROBE_CODE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"the query probe failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- the run ------------------------------------------------------------------------------


def met(report: dict) -> dict:
    return {
        "p95": report["p95Ms"] is not None and report["p95Ms"] <= TARGETS["p95Ms"],
        "p99": report["p99Ms"] is not None and report["p99Ms"] <= TARGETS["p99Ms"],
        "errors": report["errors"] <= TARGETS["errors"],
    }


def run(args) -> tuple[dict, int]:
    mix = crowd_mix(args.users)
    report: dict = {
        "users": args.users,
        "mix": mix,
        "spawnRate": args.spawn_rate,
        "durationSeconds": args.duration,
        "thinkTimeSeconds": list(args.wait),
        "webWorkers": WEB_WORKERS,
        "loadAverageAtStart": os.getloadavg(),
    }
    if mix["approver"] > args.approvers or mix["admin"] > args.admins:
        return {**report, "error": {"message": "more approver/admin users than seeded"}}, 1
    if mix["employee"] > args.employees - args.approvers - args.admins:
        return {**report, "error": {"message": "more employee users than seeded"}}, 1
    workdir = Path(tempfile.mkdtemp(prefix="attendance-api-bench-"))
    db = Database(name=args.database, keep=args.keep)
    stack = None
    code = 0
    try:
        db.open()
        overrides = {f"RATELIMIT_{name.upper()}": rate for name, rate in args.rate_limit}
        # Production's persistent connections (its default; development opens one per
        # request), set explicitly since the children run as development.
        served = {"DB_CONN_MAX_AGE": str(args.conn_max_age)}
        env = {**child_env(db, workdir / "data", None), **served, **overrides}
        redis_url = None if args.no_redis else redis_for_bench(args.redis_db)
        env.pop("REDIS_URL", None)
        if redis_url:
            env["REDIS_URL"] = redis_url
        report["rateLimitOverrides"] = overrides
        report["appSettings"] = {**served, "DJANGO_ENV": env["DJANGO_ENV"], "DEBUG": env["DEBUG"]}
        stack = ApiStack(env=env, workdir=workdir, queue="")
        started = time.perf_counter()
        prepare_database(
            stack,
            {
                BENCH_ORG: {"name": "API bench", "time_zone": TIME_ZONE},
                OTHER_ORG: {"name": "API bench (other)", "time_zone": TIME_ZONE},
            },
        )
        report["migrateMs"] = ms_since(started)
        log(f"migrated in {report['migrateMs']} ms; seeding …")
        report["seed"], identities = seed(db, args, workdir)
        log(f"seeded: {report['seed']}")
        stack.start()
        first_employee = next(
            p for p in json.loads(identities.read_text()) if p["role"] == "employee"
        )
        warm_up(stack.port, f"Bearer {first_employee['token']}")
        offset = stack.access_log.stat().st_size if stack.access_log.exists() else 0
        web_cpu = stack.worker_cpu_seconds()
        report["loadAverageBefore"] = os.getloadavg()
        outcome = run_locust(args, stack, identities, workdir, mix)
        report["loadAverageAfter"] = os.getloadavg()
        report["webCpuSeconds"] = round(stack.worker_cpu_seconds() - web_cpu, 1)
        report["clientCpuSeconds"] = outcome["clientCpuSeconds"]
        report["clientCpuWarning"] = outcome["clientCpuWarning"]
        report.update(summarise(outcome))
        report["server"] = server_times(stack.access_log, offset)
        report["locust"] = outcome["locust"]
        probe = run_probe(stack, identities, args.correction_days)
        report["queriesPerRequest"] = probe["queries"]
        report["rateLimits"] = {
            **probe["rateLimits"],
            "countedIn": probe["rateLimitCache"],
            "per": "user",
        }
        report["targets"] = TARGETS
        report["met"] = met(report)
        report["machine"] = {
            **machine_facts(db),
            "loadAverageBefore": report["loadAverageBefore"],
            "loadAverageAfter": report["loadAverageAfter"],
        }
        log(
            f"p50 {report['p50Ms']} ms, p95 {report['p95Ms']} ms, p99 {report['p99Ms']} ms,"
            f" {report['rps']} req/s, {report['errors']} errors,"
            f" {report['rateLimited']} rate-limited"
        )
    except Exception as error:
        code = 1
        if not isinstance(error, BenchError):
            traceback.print_exc(file=sys.stderr)
        report["error"] = {"message": str(error)}
        log(f"FAILED: {error}")
        if stack is not None:
            log(stack.tail("web", 60))
    finally:
        if stack is not None:
            stack.stop()
        db.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return report, code


def _rate(text: str) -> tuple[str, str]:
    """argparse type of --rate-limit: ``PUNCH=60/m`` (a group of config/settings.py)."""
    name, equals, rate = text.partition("=")
    if not (
        equals and re.fullmatch(r"[A-Za-z_]+", name) and re.fullmatch(r"(\d+/\d*[smhd])?", rate)
    ):
        raise ValueError(f"not GROUP=count/period: {text!r}")
    return name, rate


def _wait(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    bounds = (float(low), float(high or low))
    if bounds[0] < 0 or bounds[1] < bounds[0]:
        raise ValueError(f"not min,max seconds: {text!r}")
    return bounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--spawn-rate", type=float, default=8, help="users started a second")
    parser.add_argument("--duration", type=int, default=60, help="seconds of load")
    parser.add_argument(
        "--wait",
        type=_wait,
        default=(0.5, 1.5),
        help="think time of a user between two actions: min,max seconds",
    )
    parser.add_argument("--employees", type=int, default=500, help="people (all roles)")
    parser.add_argument("--approvers", type=int, default=20)
    parser.add_argument("--admins", type=int, default=3)
    parser.add_argument("--days", type=int, default=92, help="days of records before today")
    parser.add_argument("--pending", type=int, default=2000, help="pending corrections")
    parser.add_argument(
        "--correction-days",
        type=int,
        default=29,
        help="the crowd asks for corrections of the last N days (the seeded ones are older)",
    )
    parser.add_argument("--audit-events", type=int, default=100_000)
    parser.add_argument(
        "--rate-limit",
        type=_rate,
        action="append",
        default=[],
        metavar="GROUP=RATE",
        help="an explicit rate for the run (RATELIMIT_<GROUP>), e.g. PUNCH=60/m",
    )
    parser.add_argument(
        "--redis-db",
        type=int,
        default=14,
        help="with REDIS_URL: the Redis database index of the run's cache and rate limits",
    )
    parser.add_argument(
        "--no-redis",
        action="store_true",
        help="no Redis even with REDIS_URL (rate limits counted in each worker's memory)",
    )
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=60,
        help="DB_CONN_MAX_AGE of the web workers (production's default; 0: a connection per"
        " request, as in development)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument(
        "--database",
        type=database_name,
        default=BENCH_DATABASE,
        help="name of the bench database (dropped and created)",
    )
    args = parser.parse_args(argv)
    if args.users < 3 or args.duration < 1 or args.spawn_rate <= 0:
        parser.error("--users must be ≥ 3, --duration ≥ 1 and --spawn-rate > 0")
    if args.admins < 1 or args.approvers < 1 or args.employees <= args.admins + args.approvers:
        parser.error("--employees must exceed --admins + --approvers, both ≥ 1")
    if args.days < args.correction_days + 3 or args.correction_days < 1:
        parser.error("--days must exceed --correction-days + 2 (the seeded corrections' days)")
    report, code = run(args)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
