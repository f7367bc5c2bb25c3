"""`make bench-api USERS=32 DURATION=60`: the API under a crowd, with locust.

On a fresh database (--database, default ``attendance_api_bench``, on the server of
DATABASE_URL, else the embedded PostgreSQL) it migrates and seeds an organisation with SQL
(:mod:`benchmarks.api_seed`): --employees people (logins, bearer tokens and roles),
--admins of them admins and --approvers approvers, each other employee reporting to one
approver; --days days of day records (workdays; a mix of normal, late, early-leave, absent
and leave days) with the punches behind them; --pending pending corrections (and as many
decided ones) older than the days the crowd asks for; --audit-events audit events over the
months of those days (5 % another organisation's, as :mod:`benchmarks.audit_bench` seeds
them). VACUUM ANALYZE.

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
access log; both in :mod:`benchmarks.api_figures`); the queries each endpoint runs (one
request each, after the load, counted in a Django process on the same database:
:mod:`benchmarks.api_probe`); the rate limits in force and where they count; the machine
(cores, load average before and after the load, Python, PostgreSQL) and the CPU time of
the client and the web workers. Exit code 1 when the run failed (not when a
target is missed: ``met`` says that).

    python -m benchmarks.api_bench [--users 32] [--duration 60] [--keep]
        [--rate-limit PUNCH=60/m …]  (explicit rates for the run, printed in the JSON)
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import audit_bench  # noqa: E402
from benchmarks.api_figures import ACCESS_LOG_FORMAT, server_times, summarise  # noqa: E402
from benchmarks.api_probe import run_probe  # noqa: E402
from benchmarks.api_seed import ORGANISATIONS, TIME_ZONE, seed  # noqa: E402
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
    report_failure,
    tear_down,
    with_database,
)

BENCH_DATABASE = "attendance_api_bench"
LOCUSTFILE = ROOT / "benchmarks" / "api_locust.py"
TARGETS = {"p95Ms": 100, "p99Ms": 250, "errors": 0}
WEB_WORKERS = 2
# The crowd of 32: 26 employees, 4 approvers, 2 admins (scaled to --users, one of each at
# least).
MIX_SHARES = {"approver": 4 / 32, "admin": 2 / 32}


def crowd_mix(users: int) -> dict[str, int]:
    """How many users of each role a crowd of ``users`` has (26/4/2 of 32)."""
    if users < 3:
        raise ValueError("a crowd needs one employee, one approver and one admin at least")
    approvers = max(1, round(users * MIX_SHARES["approver"]))
    admins = max(1, round(users * MIX_SHARES["admin"]))
    return {"employee": users - approvers - admins, "approver": approvers, "admin": admins}


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
    url = with_database(configured, str(redis_db))
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
        prepare_database(stack, ORGANISATIONS)
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
        report_failure(report, error, stack)
    finally:
        tear_down(stack, db, workdir)
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
