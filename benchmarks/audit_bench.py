"""`make bench-audit EVENTS=5000000`: the audit viewer at millions of events, over HTTP.

On a fresh database (--database, default ``attendance_audit_bench``, on the server of
DATABASE_URL, else the embedded PostgreSQL) it migrates, creates an organisation and its
admin (a bearer token), then seeds --events audit events with set-based SQL (``INSERT …
SELECT generate_series``, in chunks) spread over the last --months months, so that many
monthly partitions hold them (each month's partition made first with
``audit_ensure_partition``); 5 % belong to another organisation, which the admin must never
see. VACUUM ANALYZE, then one gunicorn worker serves the app and the client measures:

- ``firstPageMs``: the first page (50 events), the median of 5 (and each of them);
- ``page1000Ms``: the 1,000th page, reached by following ``nextCursor`` 999 times;
- ``filteredPageMs``: ``actionPrefix`` + ``actor`` (a label fragment), median of 5; also a
  ``q`` search, ``status=failed`` and a target (``extraPagesMs``);
- ``exportMs``: ``export.csv`` of the newest --export-rows events (a ``from`` filter chosen
  to select that many), read to its end, with the worker's RSS sampled every 20 ms while it
  streams: ``exportBaselineRssMb`` before, ``exportPeakRssMb`` the highest sample.

Prints one JSON document on stdout (progress on stderr). The database is dropped unless
--keep.

    python -m benchmarks.audit_bench --events 5000000 [--export-rows 1000000] [--keep]
        [--reuse]  (measure again what a --keep run seeded)
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.api import Api, ApiError  # noqa: E402
from benchmarks.stack import (  # noqa: E402
    BenchError,
    Database,
    Stack,
    child_env,
    children_of,
    database_name,
    log,
    machine_facts,
    mb,
    ms_since,
    organisation_ids,
    prepare_database,
    proc_status,
    provision_user,
    report_failure,
    tear_down,
)

BENCH_DATABASE = "attendance_audit_bench"
BENCH_ORG = "audit-bench"
OTHER_ORG = "audit-bench-other"
ADMIN = "audit-bench-admin"
LIST = "/api/attendance-admin/audit-logs"
TARGETS = {"pageMs": 200}
CHUNK_EVENTS = 500_000
ACTORS = 200
# (action, target type): the mix of a busy organisation's log.
ACTIONS = [
    ("attendance.punch.created", "attendance.punch"),
    ("attendance.punch.created", "attendance.punch"),
    ("attendance.punch.created", "attendance.punch"),
    ("attendance.punch.created", "attendance.punch"),
    ("attendance.request.created", "attendance.adjustmentrequest"),
    ("attendance.request.approved", "attendance.adjustmentrequest"),
    ("attendance.request.rejected", "attendance.adjustmentrequest"),
    ("attendance.role.assigned", "auth.user"),
    ("attendance.settings.updated", "attendance.organisation"),
    ("attendance.employee.updated", "attendance.employee"),
    ("attendance.login.succeeded", "auth.user"),
    ("attendance.login.failed", ""),
    ("imports.batch.committed", "imports.importbatch"),
    ("imports.batch.rolled_back", "imports.importbatch"),
    ("imports.job.queued", "imports.importjob"),
    ("imports.job.failed", "imports.importjob"),
    ("audit.events.exported", ""),
    ("attendance.access.denied", ""),
]


def seed_sql(actions: list[tuple[str, str]]) -> str:
    """One chunk of events: ``g`` from %(first)s to %(last)s, event ``g`` at ``now - g ×
    step`` (newest first), organisation, action, actor and data derived from ``g``, so the
    data are the same on every run. 1 % of events carry an error code."""
    names = ", ".join(f"'{action}'" for action, _ in actions)
    types = ", ".join(f"'{target}'" for _, target in actions)
    return f"""
        INSERT INTO audit_auditevent (occurred_at, organisation_id, actor_id, actor_label,
            action, target_type, target_id, request_id, ip, user_agent, data)
        SELECT %(now)s - g * %(step)s::interval,
               CASE WHEN g %% 20 = 0 THEN %(other)s ELSE %(org)s END,
               %(first_actor)s + (g * 7) %% {ACTORS},
               'user' || ((g * 7) %% {ACTORS}) || ' (Person ' || ((g * 7) %% {ACTORS}) || ')',
               (ARRAY[{names}])[1 + (g * 13) %% {len(actions)}],
               (ARRAY[{types}])[1 + (g * 13) %% {len(actions)}],
               (g %% 50000)::text,
               md5(g::text),
               ('10.' || (g %% 250) || '.' || ((g / 250) %% 250) || '.7')::inet,
               'Mozilla/5.0 (bench) ' || (g %% 7),
               CASE WHEN g %% 100 = 3
                    THEN jsonb_build_object('errorCode', (ARRAY['BUSY', 'FORBIDDEN',
                         'VALIDATION_ERROR'])[1 + g %% 3], 'message', 'refused ' || g)
                    ELSE jsonb_build_object('rows', g %% 1000, 'batchId', g %% 5000,
                         'note', 'event ' || g)
               END
        FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
    """  # noqa: S608 - constants of this module only


def months_back(today: dt.date, months: int) -> list[dt.date]:
    """The first days of this month and the ``months`` before it, oldest first."""
    index = today.year * 12 + today.month - 1
    return [
        dt.date((index - back) // 12, (index - back) % 12 + 1, 1) for back in range(months, -1, -1)
    ]


def seed(db: Database, *, events: int, months: int, org: int, other: int, first_actor: int):
    """Seed ``events`` events ending now, spread over ``months`` months."""
    now = dt.datetime.now(dt.UTC)
    span = dt.timedelta(days=30.4 * months)
    step = span / max(events, 1)
    report = {"from": (now - span).isoformat(), "to": now.isoformat()}
    with db.connect() as connection:
        for month in months_back(now.date(), months + 1):
            connection.execute("SELECT audit_ensure_partition(%s)", [month])
        report["partitions"] = connection.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit_auditevent'::regclass"
        ).fetchone()[0]
        sql = seed_sql(ACTIONS)
        started = time.perf_counter()
        for first in range(1, events + 1, CHUNK_EVENTS):
            last = min(events, first + CHUNK_EVENTS - 1)
            connection.execute(
                sql,
                {
                    "now": now,
                    "step": step,
                    "org": org,
                    "other": other,
                    "first_actor": first_actor,
                    "first": first,
                    "last": last,
                },
            )
            log(f"  seeded {last:,} of {events:,} events ({ms_since(started) / 1000:.0f} s)")
        report["seedMs"] = ms_since(started)
        started = time.perf_counter()
        connection.execute("VACUUM (ANALYZE) audit_auditevent")
        report["vacuumAnalyzeMs"] = ms_since(started)
        report["tableMb"] = round(
            connection.execute(
                "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits"
                " WHERE inhparent = 'audit_auditevent'::regclass"
            ).fetchone()[0]
            / 2**20
        )
    return report


class WebStack(Stack):
    """The stack without a worker: one gunicorn worker (so its RSS is the one measured);
    a subclass may serve with more (``workers``)."""

    workers = 1
    extra_gunicorn_args: tuple[str, ...] = ()

    def start(self) -> None:
        from benchmarks.stack import free_port

        self.port = free_port()
        self.web = self._spawn(
            "web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi",
                "-b",
                f"127.0.0.1:{self.port}",
                "-w",
                str(self.workers),
                "--timeout",
                "600",
                "--no-control-socket",
                *self.extra_gunicorn_args,
            ],
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/livez")
                if connection.getresponse().status == 200:
                    log(f"gunicorn ready (pid {self.web.pid}, port {self.port})")
                    return
            except OSError:
                pass
            time.sleep(0.25)
        raise BenchError(f"gunicorn was not ready in 120 s\n{self.tail('web')}")

    def worker_pid(self) -> int:
        children = children_of(self.web.pid)
        if len(children) != 1:
            raise BenchError(f"expected one gunicorn worker, found {children}")
        return children[0]


def bootstrap(stack: Stack) -> str:
    prepare_database(
        stack,
        {slug: {"name": slug, "time_zone": "Asia/Shanghai"} for slug in (BENCH_ORG, OTHER_ORG)},
    )
    return provision_user(
        stack,
        ADMIN,
        org=BENCH_ORG,
        employee_no="AUDIT-ADMIN",
        name="Audit admin",
        role="admin",
        bearer_label="audit benchmark",
    )


def timed_get(api: Api, path: str) -> tuple[float, dict]:
    started = time.perf_counter()
    _status, data = api.call("GET", path)
    return (time.perf_counter() - started) * 1000, data


def median_page(api: Api, params: dict, runs: int = 5) -> dict:
    path = f"{LIST}?{urlencode(params)}"
    times, data = [], {}
    for _ in range(runs):
        elapsed, data = timed_get(api, path)
        times.append(round(elapsed, 1))
    return {"ms": round(statistics.median(times), 1), "runs": times, "items": len(data["items"])}


def follow_pages(api: Api, pages: int) -> dict:
    """Follow nextCursor from the first page to page ``pages``; the last one timed alone."""
    cursor = None
    times = []
    seen_last = None
    for number in range(1, pages + 1):
        params = {"cursor": cursor} if cursor else {}
        elapsed, data = timed_get(api, f"{LIST}?{urlencode(params)}")
        times.append(elapsed)
        if data["items"]:
            if seen_last is not None and data["items"][0]["id"] == seen_last:
                raise BenchError(f"page {number} repeats the last event of the page before")
            seen_last = data["items"][-1]["id"]
        cursor = data["nextCursor"]
        if cursor is None and number < pages:
            raise BenchError(f"only {number} pages of events (seed more events)")
    ordered = sorted(times)
    return {
        "ms": round(times[-1], 1),
        "pages": pages,
        "medianMs": round(statistics.median(times), 1),
        "p95Ms": round(ordered[int(len(ordered) * 0.95) - 1], 1),
        "maxMs": round(ordered[-1], 1),
    }


def export_from(db: Database, org: int, rows: int) -> str:
    """The ``from`` (ISO, UTC) that selects the newest ``rows`` events of the organisation."""
    with db.connect() as connection:
        found = connection.execute(
            "SELECT occurred_at FROM audit_auditevent WHERE organisation_id = %s"
            " ORDER BY occurred_at DESC, id DESC OFFSET %s LIMIT 1",
            [org, rows - 1],
        ).fetchone()
    if found is None:
        return "2000-01-01"
    return found[0].astimezone(dt.UTC).isoformat()


def timed_export(api: Api, stack: WebStack, path: str) -> dict:
    """Download the export to its end while sampling the worker's RSS every 20 ms."""
    pid = stack.worker_pid()
    baseline = proc_status(pid).get("VmRSS")
    samples: list[int] = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            rss = proc_status(pid).get("VmRSS")
            if rss:
                samples.append(rss)
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        size, lines = api.download(path)
    finally:
        done.set()
        sampler.join()
    elapsed = ms_since(started)
    return {
        "ms": elapsed,
        "bytes": size,
        "rows": lines - 1,  # the header; no cell of this data holds a newline
        "baselineRssMb": mb(baseline),
        "peakRssMb": mb(max(samples) if samples else None),
        "samples": len(samples),
        "workerHwmMb": mb(proc_status(pid).get("VmHWM")),
    }


def org_ids(db: Database) -> tuple[int, int, int]:
    with db.connect() as connection:
        org, other = organisation_ids(connection, BENCH_ORG, OTHER_ORG)
        first_user = connection.execute("SELECT coalesce(max(id), 0) + 1 FROM auth_user").fetchone()
    return org, other, first_user[0]


def reuse_kept(db: Database) -> None:
    """Point at the database a run with --keep left (already seeded), without recreating it."""
    db.locate()
    db.created = True  # dropped at the end unless --keep again
    log(f"Reusing the kept database {db.name}")


def run(args) -> tuple[dict, int]:
    report: dict = {"events": args.events, "loadAverageBefore": os.getloadavg()}
    workdir = Path(tempfile.mkdtemp(prefix="attendance-audit-bench-"))
    db = Database(name=args.database, keep=args.keep)
    stack = None
    code = 0
    try:
        if args.reuse:
            reuse_kept(db)
        else:
            db.open()
        # The API's rate limit (RATELIMIT_API) would stop the 1,000 pages: it is not measured.
        env = {**child_env(db, workdir / "data", None), "RATELIMIT_ENABLE": "false"}
        stack = WebStack(env=env, workdir=workdir, queue="")
        token = bootstrap(stack)
        org, other, first_actor = org_ids(db)
        if args.reuse:
            report["seed"] = {"reused": True}
        else:
            log(f"seeding {args.events:,} events over {args.months} months …")
            report["seed"] = seed(
                db,
                events=args.events,
                months=args.months,
                org=org,
                other=other,
                first_actor=first_actor,
            )
            log(f"seeded: {report['seed']}")
        stack.start()
        api = Api(stack.port, token)
        timed_get(api, LIST)  # the worker's first request loads the code
        first = median_page(api, {})
        report["firstPageMs"] = first["ms"]
        report["firstPage"] = first
        log(f"first page {first}")
        follow = follow_pages(api, args.pages)
        report["page1000Ms"] = follow["ms"]
        report["pagesFollowed"] = follow
        log(f"page {args.pages}: {follow}")
        filtered = median_page(api, {"actionPrefix": "imports.", "actor": "user17"})
        report["filteredPageMs"] = filtered["ms"]
        report["filteredPage"] = filtered
        log(f"filtered page {filtered}")
        report["extraPagesMs"] = {
            name: median_page(api, params)
            for name, params in {
                "q": {"q": "refused 4"},
                "statusFailed": {"status": "failed"},
                "actorId": {"actor": str(first_actor + 17)},
                "target": {"targetType": "imports.importbatch", "targetId": "4242"},
                "action": {"action": "attendance.settings.updated"},
            }.items()
        }
        log(f"other pages {report['extraPagesMs']}")
        since = export_from(db, org, args.export_rows)
        export = timed_export(api, stack, f"{LIST}/export.csv?{urlencode({'from': since})}")
        report["exportMs"] = export["ms"]
        report["exportPeakRssMb"] = export["peakRssMb"]
        report["exportBaselineRssMb"] = export["baselineRssMb"]
        report["export"] = export
        log(f"export {export}")
        pages = [report["firstPageMs"], report["page1000Ms"], report["filteredPageMs"]]
        report["targets"] = TARGETS
        report["met"] = {"pages": all(ms < TARGETS["pageMs"] for ms in pages)}
        report["loadAverageAfter"] = os.getloadavg()
        report["machine"] = machine_facts(db)
    except Exception as error:
        code = 1
        detail = (
            {"request": f"{error.method} {error.path}", "status": error.status}
            if isinstance(error, ApiError)
            else None
        )
        report_failure(report, error, stack, detail=detail)
    finally:
        tear_down(stack, db, workdir)
    return report, code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--months", type=int, default=11, help="months the events span")
    parser.add_argument("--pages", type=int, default=1000, help="the page timed by keyset")
    parser.add_argument("--export-rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure the database a --keep run left, without seeding it again",
    )
    parser.add_argument(
        "--database",
        type=database_name,
        default=BENCH_DATABASE,
        help="name of the bench database (dropped and created)",
    )
    args = parser.parse_args(argv)
    if args.events < 1 or args.months < 1 or args.pages < 1 or args.export_rows < 1:
        parser.error("--events, --months, --pages and --export-rows must be ≥ 1")
    report, code = run(args)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
