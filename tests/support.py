"""Helpers for tests that start real processes (manage.py, a Celery worker)."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def test_database_url(identity: dict | None = None) -> str:
    """A DATABASE_URL for the database this test process uses (socket hosts encoded), as
    its own role or as ``identity`` (USER, PASSWORD, HOST, PORT)."""
    db = {**connection.settings_dict, **(identity or {})}
    host = quote(db["HOST"] or "", safe="") if (db["HOST"] or "").startswith("/") else db["HOST"]
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{db['USER']}{password}@{host}{port}/{db['NAME']}"


def _psycopg_connection(identity: dict | None, **kwargs):
    import psycopg

    db = {**connection.settings_dict, **(identity or {})}
    kwargs.setdefault("autocommit", True)
    return psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=db.get("PORT") or None,
        **kwargs,
    )


def owner_connection(**kwargs):
    """A psycopg connection to this test process's database as the role that owns the
    schema (the migration role; in a single-role set-up the application's own role): for
    tests that act as a DBA or an attacker with the owner's rights (disable triggers, drop a
    partition, forge a row). Autocommit unless ``autocommit=False`` is given."""
    return _psycopg_connection(getattr(settings, "DATABASE_OWNER", None), **kwargs)


def app_connection(**kwargs):
    """A second psycopg connection as the application's role (the test's own settings): a
    session that ``pg_stat_activity`` shows as the application's, like its other processes."""
    return _psycopg_connection(None, **kwargs)


def child_env(**overrides: str) -> dict[str, str]:
    # The browser tests' DJANGO_ALLOW_ASYNC_UNSAFE must not leak into a child (check --deploy
    # rightly refuses it), nor pytest's own variables.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PYTEST_") and key != "DJANGO_ALLOW_ASYNC_UNSAFE"
    }
    env["DATABASE_URL"] = test_database_url()
    owner = getattr(settings, "DATABASE_OWNER", None)
    env.pop("DATABASE_MIGRATE_URL", None)
    if owner and "DATABASE_URL" not in overrides:
        # The role split, as in this process: a child's migrate runs as the owner.
        env["DATABASE_MIGRATE_URL"] = test_database_url(owner)
    env.update(overrides)
    return env


def client_for(employee):
    """An API client with a freshly loaded user (roles are cached on the user object)."""
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user=get_user_model().objects.get(pk=employee.user_id))
    return client


def data(response, status=200):
    """The ``data`` of a success envelope, after checking the status."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["ok"] is True
    return body["data"]


def error(response, status, code):
    """The ``error`` of a failure envelope, after checking status, code and its keys."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["ok"] is False
    assert body["error"]["code"] == code
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]


def start_celery_worker(
    queue: str, *, log_path: Path | None = None, beat: bool = False, **env: str
):
    """A real Celery worker (solo pool: the task runs in the worker's own process) serving
    ``queue`` against this test's database, in its own process group; its output goes to
    ``log_path`` when given (for a failing test's message). ``beat``: with beat embedded
    (as ``make run`` starts it), also serving the default queue its periodic tasks go to."""
    import subprocess

    output = log_path.open("w") if log_path else subprocess.DEVNULL
    extra = ["-Q", queue]
    if beat:
        # Beat's tasks go to a default queue of this worker's own: a worker of another test
        # run on the same broker must not take them (it would run them on its database).
        env.setdefault("CELERY_TASK_DEFAULT_QUEUE", f"{queue}-default")
        extra = ["-B", "-Q", f"{queue},{env['CELERY_TASK_DEFAULT_QUEUE']}"]

    return subprocess.Popen(
        [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            *extra,
            "--pool",
            "solo",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=child_env(**env),
        stdout=output,
        stderr=subprocess.STDOUT if log_path else subprocess.DEVNULL,
        start_new_session=True,
    )


class DatabaseProxy:
    """A TCP relay between child processes and this test's PostgreSQL: :meth:`cut` is a
    database outage as the application sees it (every connection dropped, new ones
    refused), :meth:`restore` ends it. The server itself keeps running, so other tests on
    it are not disturbed."""

    def __init__(self):
        self._lock = threading.Lock()
        self._open: list = []
        self._listener = None
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        # Every connection that comes through this relay names itself so (see url()): its
        # outage ends their sessions on the server too, as a real one would, and only
        # theirs (a relay of a test running beside this one, on the same server, is not
        # cut with it).
        self.application = f"attendance-through-relay-{self.port}"
        self.restore()

    def url(self) -> str:
        db = connection.settings_dict
        password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
        return (
            f"postgres://{db['USER']}{password}@127.0.0.1:{self.port}/{db['NAME']}"
            f"?application_name={self.application}"
        )

    def _upstream(self):
        db = connection.settings_dict
        host, port = db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)
        if host.startswith("/"):
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(f"{host}/.s.PGSQL.{port}")
        else:
            upstream = socket.create_connection((host, port))
        return upstream

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = self._upstream()
            except OSError:
                client.close()
                continue
            with self._lock:
                # Accepted just before a cut but registered after it: the cut did not see
                # this pair, so it must not outlive the outage.
                if self._listener is not listener:
                    for end in (client, upstream):
                        with contextlib.suppress(OSError):
                            end.close()
                    return
                self._open += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source, target) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.close()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            dropped, self._open = self._open, []
        if listener is not None:
            listener.close()
        for end in dropped:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                end.close()
        # A session whose socket closed between two statements may not have noticed yet (idle
        # in transaction, holding its locks): a server restart would have ended it, so end it.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                [self.application],
            )

    def close(self) -> None:
        self.cut()


def stop_process_group(process) -> None:
    """Stop a child started with ``start_new_session=True`` and everything it started:
    SIGTERM to its group, SIGKILL after 20 s."""
    import signal
    import subprocess

    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def wait_for(predicate, timeout: float, what: str, details=lambda: "", interval: float = 0.05):
    """``predicate()``'s first true value, polled until ``timeout`` seconds have passed; then
    an AssertionError naming ``what`` and ``details()``."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} did not happen within {timeout} s\n{details()}")
