"""`make bench-import ROWS=500000`: the import pipeline end to end, against its floor.

Generates a DingTalk daily file of ROWS rows, starts the stack on a fresh database
(gunicorn + one Celery worker with the solo pool, so the task runs in the worker's own
process) and drives the HTTP API as a client would:

    upload → preview → prepare → commit-async → poll the job → export.csv → rollback

Unless --no-aged, that main batch meets an aged database (:mod:`benchmarks.aged`): first
--aged-batches earlier batches of --aged-rows rows are imported (creating employees),
every other one rolled back, the tables analysed, then a 10,000-row batch is committed and
its rollback timed, the tables analysed again, and only then comes the main batch, whose
commit, export and rollback are the run's phases. The statistics never know the batch
under test, as on a database autovacuum analysed some time before.

Then, in the same database (:mod:`benchmarks.floor`):

- the floor: ``psql`` ``\\copy`` of the same rows, already normalised, into a temporary
  staging table and one ``INSERT … ON CONFLICT (employee_id, work_date) DO UPDATE`` into
  the day records (what the pipeline's apply step does, without parsing, planning or the
  per-row items);
- django-import-export (``ModelResource``, ``use_bulk = True``) on the first --iex-rows
  rows of the same data.

Prints one JSON document on stdout (progress goes to stderr): each phase's milliseconds
and rows/s, the worker's and the web workers' peak RSS (``VmHWM``), the floor, the
django-import-export run, the ratios, which targets were met and the ``aged`` section.

The database: --database (default ``attendance_bench``; dropped and created) on the
server of DATABASE_URL, else on the embedded PostgreSQL (``config.embedded``). The broker:
CELERY_BROKER_URL if set (a Redis URL gets database index --broker-db), else the app's
filesystem transport under the run's own data directory. Everything the run started is
stopped at the end; the database is dropped unless --keep. A rollback that has not
finished after --rollback-timeout seconds is cancelled and reported as ``timedOut``.

    python -m benchmarks.import_bench --rows 500000 [--iex-rows 10000] [--keep]
        [--database attendance_bench] [--no-aged] [--aged-batches 4] [--aged-rows 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import aged, gen_dingtalk  # noqa: E402
from benchmarks.api import IMPORT_API, Api, ApiError, job_timing, timed_rollback  # noqa: E402
from benchmarks.floor import (  # noqa: E402
    floor_employees,
    iex_child,
    run_floor,
    run_import_export,
    write_floor_csv,
)
from benchmarks.stack import (  # noqa: E402
    BENCH_DATABASE,
    Database,
    Stack,
    bootstrap,
    broker_url,
    child_env,
    database_name,
    log,
    machine_facts,
    mb,
    ms_since,
    phase,
    report_failure,
    tear_down,
)

TARGETS = {
    "previewMs": 4000,
    "commitMs": 12000,
    "exportMs": 2000,
    "rollbackMs": 8000,
    "commitToFloor": 2.0,
    "workerRssMb": 250,
}
TARGET_ROWS = 500_000
# Well past every target, short of the hours a quadratic rollback of 500,000 rows takes.
ROLLBACK_TIMEOUT_SECONDS = 600


def drive_api(
    api: Api,
    stack: Stack,
    db: Database,
    csv_path: Path,
    rows: int,
    report: dict,
    *,
    rollback_timeout: float = ROLLBACK_TIMEOUT_SECONDS,
    before_rollback=None,
) -> None:
    """The API round trip; fills ``report`` as it goes, so a failure keeps what ran."""
    phases = report.setdefault("phases", {})

    log("upload …")
    started = time.perf_counter()
    upload = api.upload(csv_path, "bench.csv")
    phases["upload"] = phase(ms_since(started), rows, bytes=upload.get("bytes"))
    log(f"upload {phases['upload']['ms']} ms: {json.dumps(upload, ensure_ascii=False)}")
    if upload.get("format") != "dingtalk_daily":
        log(f"WARNING: the upload was detected as {upload.get('format')!r}")
    file_id = upload["fileId"]

    log("preview …")
    started = time.perf_counter()
    preview = api.preview(file_id)
    phases["preview"] = phase(ms_since(started), rows, stats=preview.get("stats"))
    log(f"preview {phases['preview']['ms']} ms: stats {preview.get('stats')}")
    if (preview.get("stats") or {}).get("insert") != rows:
        log(f"WARNING: preview would insert {preview['stats']} rather than {rows} rows")

    started = time.perf_counter()
    commit_token = api.prepare()
    phases["prepare"] = {"ms": ms_since(started)}

    log("commit-async …")
    started = time.perf_counter()
    queued = api.commit_async(commit_token, file_id)
    queued_at = time.time()
    job = api.wait_job(queued["id"])
    commit_ms = ms_since(started)
    job_result = job.get("result") or {}
    phases["commit"] = phase(
        commit_ms, rows, **job_timing(job, queued_at), stats=job_result.get("stats")
    )
    batch_id = job.get("batchId") or job_result.get("batchId")
    memory = stack.worker_memory()
    report["workerRssAfterCommitMb"] = mb(memory.get("VmHWM"))
    log(f"commit {commit_ms} ms: batch {batch_id}, stats {job_result.get('stats')}")

    log("export …")
    started = time.perf_counter()
    size, lines = api.download(f"{IMPORT_API}/batches/{batch_id}/export.csv?type=all")
    phases["export"] = phase(ms_since(started), rows, bytes=size, lines=lines)
    log(f"export {phases['export']['ms']} ms: {lines} lines, {size} bytes")

    if before_rollback is not None:
        before_rollback(batch_id)
    log("rollback …")
    outcome = timed_rollback(api, db, batch_id, rollback_timeout)
    answer = outcome.pop("result")
    phases["rollback"] = phase(outcome.pop("ms"), rows, **outcome, result=answer)
    log(f"rollback {phases['rollback']['ms']} ms: {answer}")


def ratio(numerator, denominator) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 2)


def summarise(report: dict) -> None:
    phases = report.get("phases", {})
    ms = {name: (phases.get(name) or {}).get("ms") for name in phases}
    floor = report.get("floor") or {}
    iex = report.get("djangoImportExport") or {}
    commit_rate = (phases.get("commit") or {}).get("rowsPerSecond")
    report["ratios"] = {
        "commitToFloor": ratio(ms.get("commit"), floor.get("ms")),
        "pipelineToImportExport": ratio(commit_rate, iex.get("rowsPerSecond")),
    }
    report["targets"] = TARGETS
    report["targetsApplyAtRows"] = TARGET_ROWS

    def within(value, limit):
        return None if value is None else value <= limit

    report["met"] = {
        "preview": within(ms.get("preview"), TARGETS["previewMs"]),
        "commit": within(ms.get("commit"), TARGETS["commitMs"]),
        "export": within(ms.get("export"), TARGETS["exportMs"]),
        "rollback": within(ms.get("rollback"), TARGETS["rollbackMs"]),
        "commitToFloor": within(report["ratios"]["commitToFloor"], TARGETS["commitToFloor"]),
        "workerRss": within(report.get("workerPeakRssMb"), TARGETS["workerRssMb"]),
    }
    aged.summarise(report)


def run(args) -> tuple[dict, int]:
    rows = args.rows
    report: dict = {"rows": rows}
    workdir = Path(tempfile.mkdtemp(prefix="attendance-bench-"))
    db = Database(name=args.database, keep=args.keep, log_slow_ms=args.log_slow_ms)
    stack = None
    code = 0
    try:
        log(f"Work directory {workdir}")
        ageing, small, main = aged.plan(
            main_rows=rows,
            batches=args.aged_batches if args.aged else 0,
            rows=args.aged_rows,
            days=args.days,
            seed=args.seed,
        )
        csv_path = workdir / "bench.csv"
        started = time.perf_counter()
        report["fileBytes"] = main.write(csv_path)
        employees, dates = gen_dingtalk.layout(rows, args.days)
        report["file"] = {
            "employees": employees,
            "from": dates[0].isoformat(),
            "to": dates[-1].isoformat(),
            "generateMs": ms_since(started),
        }
        log(f"Generated {rows} rows ({report['fileBytes']} bytes) in {ms_since(started)} ms")

        db.open()
        broker = broker_url(args.broker_db)
        log(f"Broker: {broker or 'filesystem transport (embedded default)'}")
        stack = Stack(
            env=child_env(db, workdir / "data", broker),
            workdir=workdir,
            queue=os.environ.get("IMPORT_TASK_QUEUE", "celery"),
        )
        token = bootstrap(stack)
        if args.aged:
            aged.prepare(db)
        stack.start()
        idle = stack.worker_memory()
        report["workerIdleRssMb"] = mb(idle.get("VmRSS"))

        api = Api(stack.port, token)
        try:
            before_rollback = None
            if args.aged:
                section = report["aged"] = {}
                aged.before_main(section, api, db, workdir, args, ageing, small)

                def before_rollback(batch_id: int) -> None:
                    aged.before_main_rollback(db, section, batch_id)

            drive_api(
                api,
                stack,
                db,
                csv_path,
                rows,
                report,
                rollback_timeout=args.rollback_timeout,
                before_rollback=before_rollback,
            )
        finally:
            report["workerPeakRssMb"] = mb(stack.worker_memory().get("VmHWM"))
            report["webPeakRssMb"] = mb(stack.web_peak_kb())
            stack.stop()
        stray = db.terminate_others()
        if stray:
            log(f"Terminated {stray} connection(s) the stopped stack left in the database")
        if args.aged:
            aged.set_autovacuum(db, enabled=True)

        log("floor: psql \\copy + upsert …")
        org, ids = floor_employees(db, rows, args.days, args.seed)
        floor_csv = workdir / "floor.csv"
        write_floor_csv(floor_csv, rows, args.days, args.seed, ids)
        report["floor"] = run_floor(db, workdir, org, floor_csv, rows)
        log(f"floor {report['floor']['ms']} ms")

        iex_rows = min(args.iex_rows, rows)
        if iex_rows > 0:
            log(f"django-import-export at {iex_rows} rows …")
            report["djangoImportExport"] = run_import_export(stack, db, org, floor_csv, iex_rows)
            log(f"django-import-export {report['djangoImportExport']['ms']} ms")
        report["machine"] = {
            **machine_facts(db),
            "broker": (urlsplit(broker).scheme if broker else "filesystem"),
        }
    except Exception as error:
        code = 1
        detail = (
            {
                "request": f"{error.method} {error.path}",
                "status": error.status,
                "response": error.body,
            }
            if isinstance(error, ApiError)
            else None
        )
        report_failure(report, error, stack, logs=("web", "worker"), detail=detail)
    finally:
        tear_down(stack, db, workdir, keep_workdir=args.keep)
    summarise(report)
    return report, code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--iex-rows", type=int, default=10_000)
    parser.add_argument(
        "--keep", action="store_true", help="keep the database and the work directory"
    )
    parser.add_argument(
        "--database",
        type=database_name,
        default=BENCH_DATABASE,
        help="name of the bench database (dropped and created: one per concurrent run)",
    )
    parser.add_argument("--days", type=int, default=gen_dingtalk.DEFAULT_DAYS)
    parser.add_argument("--seed", type=int, default=gen_dingtalk.DEFAULT_SEED)
    parser.add_argument(
        "--no-aged",
        dest="aged",
        action="store_false",
        help="skip the aged database: the main batch meets a fresh one",
    )
    parser.add_argument(
        "--aged-batches",
        type=int,
        default=aged.DEFAULT_BATCHES,
        help="earlier batches before the batches under test (every other one rolled back)",
    )
    parser.add_argument(
        "--aged-rows", type=int, default=aged.DEFAULT_ROWS, help="rows of each earlier batch"
    )
    parser.add_argument(
        "--rollback-timeout",
        type=float,
        default=ROLLBACK_TIMEOUT_SECONDS,
        help="seconds before a rollback is given up, cancelled and reported as timedOut",
    )
    parser.add_argument(
        "--broker-db", type=int, default=13, help="Redis database index for the bench's broker"
    )
    parser.add_argument(
        "--log-slow-ms",
        type=int,
        help="log the bench database's statements slower than this, with their plans"
        " (auto_explain), in the PostgreSQL server's log",
    )
    parser.add_argument("--iex-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--iex-org", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.iex_child:
        return iex_child(args.iex_child, args.iex_rows, args.iex_org)
    if args.aged_batches < 0 or args.aged_rows < 1:
        parser.error("--aged-batches must be ≥ 0 and --aged-rows ≥ 1")
    report, code = run(args)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
