"""The query probe of ``make bench-api`` (:mod:`benchmarks.api_bench`): after the load, one
request per endpoint through Django's test client in a ``manage.py shell`` on the bench
database, its queries counted, with the rate limits in force and where they count.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

from benchmarks.api_seed import ROLE_GROUPS, zone
from benchmarks.stack import PYTHON, ROOT, BenchError, Stack

# The rate limits an API request of the crowd can meet (config/settings.py, their defaults).
RATE_SETTINGS = ("RATELIMIT_ENABLE", "RATELIMIT_API", "RATELIMIT_PUNCH")


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
    today = dt.datetime.now(zone()).date()
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


PROBE_CODE = "from benchmarks import api_probe\napi_probe.probe_queries()"


def run_probe(stack: Stack, identities: Path, correction_days: int) -> dict:
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
