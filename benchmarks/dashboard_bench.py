"""`make bench-dashboard EMPLOYEES=5000`: the admin dashboard over HTTP at a large organisation.

On a fresh database (--database, default ``attendance_dashboard_bench``, on the server of
DATABASE_URL, else the embedded PostgreSQL) it migrates and seeds, with SQL
(:mod:`benchmarks.api_seed`): --employees people with a month (--days) of day records and
their punches, --pending pending corrections and as many decided ones, --audit-events audit
events; then today's day records for most of them (one in five late, some recorded absent,
the rest not in yet), --batches import batches (one in four rolled back) and 500 audit
events of the last hour. VACUUM ANALYZE. An admin with a password signs in through the
login form.

gunicorn (one sync worker, persistent database connections as in production) serves the
app; after --warm-up requests, --requests GETs of /dashboard/ are timed one after the
other as the admin's browser sends them. Then the page's queries are counted in a Django
process on the same database (Django's test client, one request after a first one).

Prints one JSON document on stdout (progress on stderr): p50Ms, p95Ms, maxMs, queries,
the figures the page showed, the seed's sizes, the target and whether it was met, and the
machine (cores, load average before and after). Exit code 1 when the run failed.

    python -m benchmarks.dashboard_bench [--employees 5000] [--requests 30] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import api_seed  # noqa: E402
from benchmarks.api_figures import percentile  # noqa: E402
from benchmarks.audit_bench import WebStack  # noqa: E402
from benchmarks.events_bench import Browser  # noqa: E402
from benchmarks.stack import (  # noqa: E402
    PYTHON,
    BenchError,
    Database,
    child_env,
    database_name,
    log,
    machine_facts,
    ms_since,
    organisation_ids,
    prepare_database,
    provision_user,
    report_failure,
    tear_down,
)

ADMIN = "dashboard-bench-admin"
PASSWORD = "dashboard-bench-password-1"  # noqa: S105 - a throwaway user of a throwaway database
TARGET_P95_MS = 300

# Today (the organisation's date): 85 % have punched in, one in five of them late; 3 %
# recorded absent (an import said so); the rest nothing yet.
SEED_TODAY_SQL = """
    WITH people AS (
        SELECT e.id, abs(hashtext(e.id::text || ':today')) %% 100 AS h
        FROM attendance_employee e WHERE e.organisation_id = %(org)s
    )
    INSERT INTO attendance_attendancerecord (organisation_id, employee_id, work_date,
        first_in, last_out, work_minutes, late_minutes, early_leave_minutes, status, source,
        note, updated_at)
    SELECT %(org)s, id, %(today)s::date,
           CASE WHEN h < 85 THEN now() - make_interval(mins => h) END, NULL, 0,
           CASE WHEN h < 17 THEN 10 + h ELSE 0 END, 0,
           CASE WHEN h < 17 THEN 'late' WHEN h < 85 THEN 'partial' ELSE 'absent' END,
           'punch', '', now()
    FROM people WHERE h < 88
"""
SEED_BATCHES_SQL = """
    INSERT INTO imports_importbatch (organisation_id, created_at, format, filename, sha256,
        mode, row_count, status, stats, elapsed_ms, created_employee_ids, rollback_stats,
        applied_at, rolled_back_at)
    SELECT %(org)s, now() - make_interval(hours => g), 'dingtalk_daily',
           'month-' || g || '.xlsx', md5(g::text) || md5(g::text), 'override', 1000 * g,
           CASE WHEN g %% 4 = 0 THEN 'rolled_back' ELSE 'committed' END,
           jsonb_build_object('insert', 900 * g, 'update', 100 * g), 1000 + g, '[]'::jsonb,
           '{}'::jsonb, now() - make_interval(hours => g),
           CASE WHEN g %% 4 = 0 THEN now() END
    FROM generate_series(1, %(batches)s) AS g
"""
SEED_RECENT_AUDIT_SQL = """
    INSERT INTO audit_auditevent (occurred_at, organisation_id, actor_id, actor_label, action,
        target_type, target_id, request_id, user_agent, data)
    SELECT now() - make_interval(secs => g * 7), %(org)s, NULL, 'bench', 'attendance.punch.created',
           'attendance.punch', g::text, '', '', '{}'::jsonb
    FROM generate_series(1, 500) AS g
"""

# Run in ``manage.py shell`` on the bench database: the page's queries, counted.
PROBE_CODE = f"""
import json
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
client = Client()
client.force_login(get_user_model().objects.get(username={ADMIN!r}))
client.get("/dashboard/")
with CaptureQueriesContext(connection) as queries:
    status = client.get("/dashboard/").status_code
print(json.dumps({{"status": status, "queries": len(queries)}}))
"""
FIGURE = re.compile(r'data-tile="(\w+)"[^>]*>.*?data-figure>([^<]*)<', re.S)


def seed(db: Database, args, workdir: Path) -> dict:
    seed_args = argparse.Namespace(
        employees=args.employees,
        admins=1,
        approvers=max(1, args.employees // 50),
        days=args.days,
        pending=args.pending,
        correction_days=1,
        audit_events=args.audit_events,
    )
    report, _identities = api_seed.seed(db, seed_args, workdir)
    started = time.perf_counter()
    with db.connect() as connection:
        (org,) = organisation_ids(connection, api_seed.BENCH_ORG)
        today = connection.execute(
            "SELECT (now() AT TIME ZONE %s)::date", [api_seed.TIME_ZONE]
        ).fetchone()[0]
        connection.execute(SEED_TODAY_SQL, {"org": org, "today": today})
        connection.execute(SEED_BATCHES_SQL, {"org": org, "batches": args.batches})
        connection.execute(SEED_RECENT_AUDIT_SQL, {"org": org})
        for table in ("attendance_attendancerecord", "imports_importbatch", "audit_auditevent"):
            connection.execute(f"VACUUM (ANALYZE) {table}")
        report["todayRecords"] = connection.execute(
            "SELECT count(*) FROM attendance_attendancerecord WHERE work_date = %s", [today]
        ).fetchone()[0]
    report["todayMs"] = ms_since(started)
    report["today"] = str(today)
    return report


def probe(stack: WebStack) -> dict:
    result = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", PROBE_CODE],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"the query probe failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def timed_gets(browser: Browser, requests: int) -> tuple[list[float], str]:
    times, page = [], ""
    for _ in range(requests):
        started = time.perf_counter()
        status, page, _headers = browser.request("GET", "/dashboard/")
        times.append(round((time.perf_counter() - started) * 1000, 1))
        if status != 200 or 'data-tile="present"' not in page:
            raise BenchError(f"GET /dashboard/: {status}")
    return times, page


def run(args) -> tuple[dict, int]:
    report: dict = {"employees": args.employees + 1, "requests": args.requests}
    workdir = Path(tempfile.mkdtemp(prefix="attendance-dashboard-bench-"))
    db = Database(name=args.database, keep=args.keep)
    stack = None
    code = 0
    try:
        db.open()
        env = {**child_env(db, workdir / "data", None), "DB_CONN_MAX_AGE": "60"}
        stack = WebStack(env=env, workdir=workdir, queue="")
        started = time.perf_counter()
        prepare_database(stack, api_seed.ORGANISATIONS)
        report["migrateMs"] = ms_since(started)
        log(f"migrated in {report['migrateMs']} ms; seeding {args.employees:,} people …")
        report["seed"] = seed(db, args, workdir)
        provision_user(
            stack,
            ADMIN,
            org=api_seed.BENCH_ORG,
            employee_no="DASH-ADMIN",
            name="Dashboard admin",
            role="admin",
            password=PASSWORD,
        )
        log(f"seeded: {report['seed']}")
        stack.start()
        browser = Browser(stack.port)
        browser.log_in(ADMIN, PASSWORD)
        timed_gets(browser, args.warm_up)
        report["loadAverageBefore"] = os.getloadavg()
        times, page = timed_gets(browser, args.requests)
        report["loadAverageAfter"] = os.getloadavg()
        ordered = sorted(times)
        report.update(
            {
                "p50Ms": round(statistics.median(ordered), 1),
                "p95Ms": round(percentile(ordered, 0.95), 1),
                "maxMs": ordered[-1],
                "runsMs": times,
                "figures": {tile: value.strip() for tile, value in FIGURE.findall(page)},
            }
        )
        probed = probe(stack)
        report["queries"] = probed["queries"]
        report["target"] = {"p95Ms": TARGET_P95_MS}
        report["met"] = report["p95Ms"] < TARGET_P95_MS
        report["machine"] = {**machine_facts(db), "uptime": _uptime()}
        log(f"p50 {report['p50Ms']} ms, p95 {report['p95Ms']} ms, max {report['maxMs']} ms")
    except Exception as error:
        code = 1
        report_failure(report, error, stack)
    finally:
        tear_down(stack, db, workdir)
    return report, code


def _uptime() -> str:
    try:
        return subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--employees", type=int, default=5000, help="people seeded (+1 admin)")
    parser.add_argument("--days", type=int, default=30, help="days of records before today")
    parser.add_argument("--pending", type=int, default=300, help="pending corrections")
    parser.add_argument("--batches", type=int, default=40, help="import batches")
    parser.add_argument("--audit-events", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=30, help="timed GETs of /dashboard/")
    parser.add_argument("--warm-up", type=int, default=5, help="GETs before the timed ones")
    parser.add_argument("--database", type=database_name, default="attendance_dashboard_bench")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    report, code = run(args)
    print(json.dumps(report, indent=2, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
