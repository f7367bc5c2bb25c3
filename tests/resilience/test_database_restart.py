"""PostgreSQL goes away under live traffic and comes back: a real gunicorn (two workers, the
image's own ``config/gunicorn.py``) reaches this test's database through a relay
(``DatabaseProxy``) whose cut is an outage as the application sees it: every connection
dropped, new ones refused. The machine's server is shared with other test runs, so it is the
relay that "restarts", never the server.

While the database is away every API answer is the ``DB_NOT_READY`` envelope (503), a page
is a 503 page, ``/readyz`` names the database and ``/livez`` still answers; once it is back,
every answer is 200 again from the same processes. Threads drive the traffic; phases are
waited for by polling the answers with deadlines.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.test import Client

from attendance import services
from tests.support import PYTHON, ROOT, DatabaseProxy, child_env, wait_for

# Bounds on waits that only end by their deadline when the test is already failing.
START_TIMEOUT = 60
OUTAGE_NOTICED_TIMEOUT = 10
RECOVERY_TIMEOUT = 15
# Answers each endpoint must give in a phase before the phase counts as seen.
ANSWERS_PER_PHASE = 3
# The outage lasts at least this long (the scenario, not a synchronisation): the workers
# meet it again and again, not only in the requests that were in flight.
OUTAGE_SECONDS = 2
CLIENTS_PER_ENDPOINT = 2


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    kind: str  # "api", "page", "readyz" or "livez"
    headers: dict


@dataclass(frozen=True)
class Answer:
    endpoint: Endpoint
    sent: float
    received: float
    status: int | None  # None: no HTTP answer at all (reset, timeout)
    body: str
    content_type: str


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return {int(child) for child in listing.read().split()}


class Traffic:
    """Client threads, each asking one endpoint again and again until stopped; every
    answer is kept with the moments it was sent and received."""

    def __init__(self, base_url: str, endpoints: list[Endpoint]):
        self.base_url = base_url
        self.endpoints = endpoints
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._drive, args=(endpoint,), daemon=True)
            for endpoint in endpoints
            for _ in range(CLIENTS_PER_ENDPOINT)
        ]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _drive(self, endpoint: Endpoint) -> None:
        # A client of its own per thread, without keep-alive: each request is a new
        # connection, as many clients behind nginx are.
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=self.base_url, timeout=20, limits=limits) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    response = client.get(endpoint.path, headers=endpoint.headers)
                    status, body = response.status_code, response.text
                    content_type = response.headers.get("content-type", "")
                except httpx.HTTPError as exc:
                    status, body, content_type = None, repr(exc), ""
                answer = Answer(endpoint, sent, time.monotonic(), status, body, content_type)
                with self._lock:
                    self.answers.append(answer)

    def sent_after(self, moment: float, before: float | None = None) -> list[Answer]:
        with self._lock:
            return [
                answer
                for answer in self.answers
                if answer.sent >= moment and (before is None or answer.received <= before)
            ]

    def each_endpoint_answered(self, moment: float, count: int, status: int | None = None):
        """Whether every endpoint gave ``count`` answers (of ``status``, when given) to
        requests sent after ``moment``."""
        answers = self.sent_after(moment)
        return all(
            sum(
                1
                for answer in answers
                if answer.endpoint is endpoint and (status is None or answer.status == status)
            )
            >= count
            for endpoint in self.endpoints
        )


def _outage_answer_problem(answer: Answer) -> str | None:
    """What is wrong with an answer given while the database is away; None if right."""
    kind = answer.endpoint.kind
    if kind == "livez":
        return None if answer.status == 200 else "livez must answer 200"
    if answer.status != 503:
        return "expected 503"
    if kind == "page":
        if "text/html" not in answer.content_type or "Service unavailable" not in answer.body:
            return "a page's 503 must be the HTML page saying so"
        return None
    try:
        body = json.loads(answer.body)
    except ValueError:
        return "not JSON"
    if kind == "readyz":
        return None if "database" in body.get("failing", []) else "readyz must name database"
    error = body.get("error") or {}
    if body.get("ok") is not False or error.get("code") != "DB_NOT_READY":
        return "not the DB_NOT_READY envelope"
    if set(error) != {"code", "message", "details"}:
        return "the error envelope's keys"
    return None


def _describe(answers: list[Answer], limit: int = 8) -> str:
    return "\n".join(
        f"{answer.endpoint.name}: {answer.status} {answer.body[:300]!r}"
        for answer in answers[:limit]
    )


@contextlib.contextmanager
def _gunicorn(database_url: str, log: Path, conn_max_age: int):
    port = _free_port()
    environment = child_env(
        DATABASE_URL=database_url,
        GUNICORN_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="2",
        DB_CONN_MAX_AGE=str(conn_max_age),
        # A refused connection fails at once; this bounds a connect that hangs instead.
        DB_CONNECT_TIMEOUT="3",
        DJANGO_ENV="development",
        DEBUG="false",
        PYTHONUNBUFFERED="1",
    )
    # One role for the web, as child_env gives it when DATABASE_URL is overridden.
    environment.pop("DATABASE_MIGRATE_URL", None)
    with log.open("wb") as output:
        web = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", "config.wsgi:application", "--config", "config/gunicorn.py"],
            cwd=ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield web, f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(web.pid, signal.SIGTERM)
        try:
            web.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(web.pid, signal.SIGKILL)
            web.wait(timeout=10)


@pytest.fixture(autouse=True)
def _quiet_http_client_logs(caplog):
    # httpx logs every request at INFO: thousands of lines in a failure's report.
    caplog.set_level(logging.WARNING, logger="httpx")


def _ready(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.integration
@pytest.mark.parametrize(
    "conn_max_age",
    [
        # Production's: every worker holds a connection the outage kills, found dead by the
        # health check of the next request.
        pytest.param(60, id="persistent-connections"),
        # Development's: a connection per request.
        pytest.param(0, id="connection-per-request"),
    ],
)
def test_a_database_outage_under_traffic_answers_503_and_recovers_without_a_restart(
    transactional_db, organisation, make_person, tmp_path, conn_max_age
):
    person = make_person(organisation, "employee", "admin")
    _, token = services.api_token_issue(actor=None, user=person.user, name="resilience")
    browser = Client()
    browser.force_login(person.user)
    session = browser.cookies[settings.SESSION_COOKIE_NAME].value
    bearer = {"Authorization": f"Bearer {token}"}
    endpoints = [
        Endpoint("me", "/api/attendance/me", "api", bearer),
        Endpoint("records", "/api/attendance/records?from=2026-05-01&to=2026-05-31", "api", bearer),
        Endpoint(
            "page", "/attendance/", "page", {"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}"}
        ),
        Endpoint("readyz", "/readyz", "readyz", {}),
        Endpoint("livez", "/livez", "livez", {}),
    ]
    proxy = DatabaseProxy()
    log = tmp_path / "web.log"
    try:
        with _gunicorn(proxy.url(), log, conn_max_age) as (web, base_url):
            wait_for(
                lambda: web.poll() is not None or _ready(base_url),
                START_TIMEOUT,
                "gunicorn answering ready",
                lambda: log.read_text(errors="replace")[-3000:],
            )
            assert web.poll() is None, log.read_text(errors="replace")[-3000:]
            workers = wait_for(
                lambda: len(children := _children(web.pid)) == 2 and children,
                START_TIMEOUT,
                "two gunicorn workers",
            )
            with Traffic(base_url, endpoints) as traffic:
                started = time.monotonic()
                wait_for(
                    lambda: traffic.each_endpoint_answered(started, ANSWERS_PER_PHASE, 200),
                    RECOVERY_TIMEOUT,
                    "every endpoint answering 200 before the outage",
                    lambda: _describe([a for a in traffic.sent_after(started) if a.status != 200]),
                )

                cut_started = time.monotonic()
                proxy.cut()
                # Requests already in flight when the cut began may still have been served.
                cut_done = time.monotonic()
                wait_for(
                    lambda: (
                        time.monotonic() - cut_done >= OUTAGE_SECONDS
                        and traffic.each_endpoint_answered(cut_done, ANSWERS_PER_PHASE)
                    ),
                    OUTAGE_SECONDS + OUTAGE_NOTICED_TIMEOUT,
                    "every endpoint answering during the outage",
                )
                restore_started = time.monotonic()
                outage = traffic.sent_after(cut_done, before=restore_started)
                first_503 = min(a.received for a in outage if a.status == 503) - cut_started

                proxy.restore()
                restored = time.monotonic()
                # Recovered: every endpoint answered 200 several times to requests sent after
                # the restore (each worker had to make a new connection).
                wait_for(
                    lambda: traffic.each_endpoint_answered(restored, ANSWERS_PER_PHASE, 200),
                    RECOVERY_TIMEOUT,
                    "every endpoint answering 200 after the restore",
                    lambda: _describe(
                        [a for a in traffic.sent_after(restored) if a.status != 200][-8:]
                    ),
                )
                after_restore = traffic.sent_after(restored)
                recovered_at = max(
                    min(
                        a.received
                        for a in after_restore
                        if a.endpoint is endpoint and a.status == 200
                    )
                    for endpoint in endpoints
                )
                # Once every endpoint recovered, no endpoint fails again.
                settled = time.monotonic()
                wait_for(
                    lambda: traffic.each_endpoint_answered(settled, ANSWERS_PER_PHASE),
                    RECOVERY_TIMEOUT,
                    "more answers after the recovery",
                )
            everything = traffic.sent_after(started)
            assert web.poll() is None, "gunicorn's master exited"
            assert _children(web.pid) == workers, "a gunicorn worker was replaced"
    finally:
        proxy.close()
    web_log = log.read_text(errors="replace")

    wrong = [(problem, answer) for answer in outage if (problem := _outage_answer_problem(answer))]
    assert not wrong, _describe([answer for _, answer in wrong]) + "\n" + wrong[0][0]
    # Never a 500, never a dropped connection, whatever the phase.
    broken = [a for a in everything if a.status is None or (a.status >= 500 and a.status != 503)]
    assert not broken, _describe(broken)
    # Before the restore's answers settle, a failure is only ever the outage's own answer.
    during_recovery = [a for a in after_restore if a.status != 200]
    assert all(_outage_answer_problem(a) is None for a in during_recovery), _describe(
        during_recovery
    )
    relapsed = [a for a in everything if a.sent >= recovered_at and a.status != 200]
    assert not relapsed, _describe(relapsed)
    assert "Traceback" not in web_log, web_log[-3000:]

    recovery = recovered_at - restored
    print(
        f"\nresilience.database[CONN_MAX_AGE={conn_max_age}]: "
        f"first 503 {first_503 * 1000:.0f} ms after the cut, "
        f"all endpoints 200 {recovery * 1000:.0f} ms after the restore, "
        f"{len(outage)} answers during the outage, {len(everything)} in all"
    )
    assert first_503 < OUTAGE_NOTICED_TIMEOUT
    assert recovery < RECOVERY_TIMEOUT
