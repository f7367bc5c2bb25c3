"""Real processes: a Celery worker killed with SIGKILL in the middle of an async commit, and
a web process restarted between prepare and commit.

The worker test needs Redis (the machine's, at REDIS_URL or 127.0.0.1:6379): only a broker
that keeps unacknowledged messages can hand a dead worker's task to the next one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from urllib.parse import urlsplit

import pytest
from django.db import connection

from attendance import services as attendance_services
from attendance.models import AttendanceRecord
from audit.models import AuditEvent
from config.celery import app as celery_app
from imports import services
from imports.models import ImportBatch, ImportItem, ImportJob
from imports.services import jobs as jobs_service
from imports.tasks import run_import_job
from tests.support import (
    PYTHON,
    ROOT,
    DatabaseProxy,
    child_env,
    start_celery_worker,
    stop_process_group,
)

ROWS = 3000
# Longer than the task's own retries, which the outage test's worker cuts to two (backoff
# up to 1 and 2 s) so that the scenario (the task gives up, the reaper fails meanwhile, the
# job is found again once the database is back) needs seconds, not the minute five take.
OUTAGE_RETRIES = 2
OUTAGE_SECONDS = 20
# Database 14 of the machine's Redis: apart from the suite's caches (1–15 by xdist worker
# are flushed per test, but only the workers' own) and from a developer's queue in 0.
BROKER_URL = (
    urlsplit(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379")._replace(path="/14").geturl()
)


def _standard_csv(rows: int) -> bytes:
    lines = ["employee_no,name,work_date,first_in,last_out,status"]
    for number in range(rows):
        day = f"2026-0{4 + number % 3}-{1 + number // 300 % 28:02d}"
        lines.append(f"W{number % 300:04d},Worker {number % 300},{day},09:0{number % 10},18:00,")
    return ("\n".join(lines) + "\n").encode()


def _worker(queue: str, storage, **env: str) -> subprocess.Popen:
    return start_celery_worker(
        queue,
        CELERY_BROKER_URL=BROKER_URL,
        CELERY_VISIBILITY_TIMEOUT="3",
        CELERY_UNACKED_RESTORE_INTERVAL="1",
        IMPORT_TASK_QUEUE=queue,
        IMPORT_STORAGE_DIR=str(storage),
        **env,
    )


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def _job() -> ImportJob:
    return ImportJob.objects.get()


def _queue_big_commit(organisation, user, key: str | None = None):
    """ROWS rows uploaded and queued as one commit job (creating their employees)."""
    upload = services.upload_create(
        actor=user,
        organisation=organisation,
        filename="big.csv",
        chunks=iter([_standard_csv(ROWS)]),
    )
    queued = services.import_commit_async(
        actor=user,
        organisation=organisation,
        options=services.ImportOptions(
            file_id=upload.pk, create_missing_employees=True, idempotency_key=key
        ),
        commit_token=services.commit_token_issue(actor=user, organisation=organisation)[0],
    )
    return upload, queued


@pytest.mark.integration
@pytest.mark.xdist_group("celery-worker")
def test_a_worker_killed_mid_commit_is_replaced_and_the_job_completes_exactly_once(
    transactional_db, organisation, people, monkeypatch, settings
):
    queue = f"import-test-{uuid.uuid4().hex[:8]}"
    settings.IMPORT_TASK_QUEUE = queue

    def publish_to_redis(job):
        with celery_app.connection_for_write(BROKER_URL) as broker:
            run_import_job.apply_async(args=[str(job.pk)], queue=queue, connection=broker)

    monkeypatch.setattr(jobs_service, "enqueue_job", publish_to_redis)
    _queue_big_commit(organisation, people["importer"].user)
    # Small chunks with a pause between them: the commit is certainly mid-way when killed.
    first = _worker(
        queue,
        settings.IMPORT_STORAGE_DIR,
        IMPORT_CHUNK_ROWS="100",
        IMPORT_CHUNK_PAUSE_SECONDS="0.3",
    )
    try:
        _wait_for(
            lambda: _job().status == "running" and _job().processed > ROWS,
            60,
            "the first worker reaching the apply phase",
        )
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    running = _job()
    assert running.status == "running" and running.attempts == 1
    # Killed mid-way: the progress written so far (its own connection) is partial.
    assert ROWS < running.processed < running.total == 2 * ROWS
    # The commit's transaction died with the worker: nothing of it is visible.
    assert not ImportBatch.objects.exists()
    assert not AttendanceRecord.objects.filter(organisation=organisation).exists()

    second = _worker(queue, settings.IMPORT_STORAGE_DIR)
    try:
        done = _wait_for(
            lambda: (job := _job()).status in ("succeeded", "failed") and job,
            90,
            "the second worker finishing the job",
        )
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=30)

    assert done.status == "succeeded", done.error
    assert done.attempts == 2
    # The job's own count of the file's work (staging and applying each row), all done.
    assert done.total == 2 * ROWS and done.processed == done.total
    batch = ImportBatch.objects.get()
    assert done.batch_id == batch.pk and done.result["batchId"] == batch.pk
    assert batch.stats["insert"] == ROWS
    records = AttendanceRecord.objects.filter(organisation=organisation)
    assert records.count() == ROWS
    assert records.values("employee_id", "work_date").distinct().count() == ROWS
    assert ImportItem.objects.filter(batch=batch).count() == ROWS
    assert AuditEvent.objects.filter(action="imports.batch.committed").count() == 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _call(port: int, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body or {}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - local
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as failure:
        return failure.code, json.loads(failure.read())


def _web(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [PYTHON, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def up():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=2):
                return True
        except OSError:
            return False

    _wait_for(up, 60, "the web server answering")
    return process


@pytest.mark.integration
@pytest.mark.xdist_group("celery-worker")
def test_a_web_restart_between_prepare_and_commit_changes_nothing(
    transactional_db, organisation, people
):
    _, token = attendance_services.api_token_issue(actor=None, user=people["importer"].user)
    port = _free_port()
    web = _web(port)
    try:
        status, prepared = _call(port, "/api/attendance/import/prepare", token)
        assert status == 200
    finally:
        os.killpg(web.pid, signal.SIGKILL)
        web.wait(timeout=10)
    connection.close()

    web = _web(port)
    try:
        body = {
            "commitToken": prepared["data"]["commitToken"],
            "csvText": "employee_no,name,work_date,first_in,last_out,status\n"
            f"{people['employee'].employee_no},E,2026-05-04,09:00,18:00,\n",
        }
        status, committed = _call(port, "/api/attendance/import/commit", token, body)
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=10)
    assert status == 200, committed
    assert committed["data"]["stats"]["insert"] == 1
    assert AttendanceRecord.objects.filter(employee=people["employee"]).count() == 1


@pytest.mark.integration
@pytest.mark.xdist_group("celery-worker")
def test_the_whole_worker_killed_on_the_filesystem_broker_is_noticed_and_the_job_done_once(
    transactional_db, organisation, people, monkeypatch, settings, tmp_path
):
    """``make run``'s stack: the filesystem transport drops a message once a worker takes
    it, so nothing hands the job back when the whole worker (main process, pool and beat)
    is SIGKILLed. The job's heartbeat stops; the next worker's beat finds it stale, with
    nobody holding its lock, and queues it again: it completes exactly once."""
    queue = f"import-fs-{uuid.uuid4().hex[:8]}"
    settings.IMPORT_TASK_QUEUE = queue
    data_dir = tmp_path / "data"
    broker = data_dir / "broker"
    folders = {name: broker / name for name in ("out", "processed", "control")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    options = {
        "data_folder_in": str(folders["out"]),
        "data_folder_out": str(folders["out"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
        "store_processed": False,
    }

    def publish_to_folder(job):
        with celery_app.connection_for_write(
            "filesystem://", transport_options=options
        ) as connection_:
            run_import_job.apply_async(args=[str(job.pk)], queue=queue, connection=connection_)

    monkeypatch.setattr(jobs_service, "enqueue_job", publish_to_folder)
    upload, queued = _queue_big_commit(organisation, people["importer"].user, key="fs-kill")
    stack = {
        "ATTENDANCE_DATA_DIR": str(data_dir),
        "CELERY_BROKER_URL": "",
        "IMPORT_TASK_QUEUE": queue,
        "IMPORT_STORAGE_DIR": str(settings.IMPORT_STORAGE_DIR),
        "IMPORT_JOB_HEARTBEAT_SECONDS": "0.5",
        "IMPORT_JOB_STALE_SECONDS": "3",
        "IMPORT_JOB_REAP_SECONDS": "1",
    }
    first = start_celery_worker(
        queue, beat=True, IMPORT_CHUNK_ROWS="100", IMPORT_CHUNK_PAUSE_SECONDS="0.3", **stack
    )
    try:
        _wait_for(
            lambda: _job().status == "running" and _job().processed > ROWS,
            60,
            "the first worker reaching the apply phase",
        )
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    # The transport kept no message of the job to hand back.
    assert not list(folders["out"].glob(f"*.{queue}.msg"))
    running = _job()
    assert running.status == "running" and running.attempts == 1
    assert not ImportBatch.objects.exists()

    second = start_celery_worker(queue, beat=True, log_path=tmp_path / "second.log", **stack)
    try:
        done = _wait_for(
            lambda: (job := _job()).status in ("succeeded", "failed") and job,
            90,
            "the second worker's beat noticing the job and finishing it",
        )
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=30)
    assert done.status == "succeeded", (done.error, (tmp_path / "second.log").read_text())
    assert done.attempts == 2 and done.pk == queued.job.pk
    batch = ImportBatch.objects.get()
    assert AttendanceRecord.objects.filter(organisation=organisation).count() == ROWS
    assert ImportItem.objects.filter(batch=batch).count() == ROWS
    assert AuditEvent.objects.filter(action="imports.batch.committed").count() == 1
    requeued = AuditEvent.objects.get(action="imports.job.requeued")
    assert requeued.target_id == str(done.pk)
    # The key answers with the finished job.
    again = services.import_commit_async(
        actor=people["importer"].user,
        organisation=organisation,
        options=services.ImportOptions(
            file_id=upload.pk, create_missing_employees=True, idempotency_key="fs-kill"
        ),
        commit_token=None,
    )
    assert again.idempotent and again.job.pk == done.pk


@pytest.mark.integration
@pytest.mark.xdist_group("celery-worker")
def test_a_database_outage_longer_than_the_tasks_retries_is_outlived(
    transactional_db, organisation, people, monkeypatch, settings, tmp_path
):
    """The database goes away mid-commit (every connection dropped, new ones refused) for
    longer than the task's own retries, so the task gives up and cannot even mark the job
    failed. When the database is back, the worker's beat finds the job's heartbeat stale and
    its lock free, and queues it again: it completes exactly once."""
    queue = f"import-outage-{uuid.uuid4().hex[:8]}"
    settings.IMPORT_TASK_QUEUE = queue
    monkeypatch.setattr(
        jobs_service,
        "enqueue_job",
        lambda job: _publish_to_redis(job, queue),
    )
    _queue_big_commit(organisation, people["importer"].user)
    proxy = DatabaseProxy()
    log = tmp_path / "worker.log"
    (tmp_path / "data").mkdir()
    worker = start_celery_worker(
        queue,
        beat=True,
        log_path=log,
        DATABASE_URL=proxy.url(),
        ATTENDANCE_DATA_DIR=str(tmp_path / "data"),
        CELERY_BROKER_URL=BROKER_URL,
        CELERY_VISIBILITY_TIMEOUT="3600",
        IMPORT_TASK_QUEUE=queue,
        IMPORT_STORAGE_DIR=str(settings.IMPORT_STORAGE_DIR),
        IMPORT_CHUNK_ROWS="100",
        IMPORT_CHUNK_PAUSE_SECONDS="0.2",
        IMPORT_JOB_HEARTBEAT_SECONDS="0.5",
        IMPORT_JOB_STALE_SECONDS="3",
        IMPORT_JOB_REAP_SECONDS="1",
        IMPORT_JOB_DB_RETRIES=str(OUTAGE_RETRIES),
    )
    try:
        _wait_for(
            lambda: _job().status == "running" and _job().processed > ROWS,
            60,
            "the worker reaching the apply phase",
        )
        proxy.cut()
        outage = time.monotonic()
        _wait_for(
            lambda: "raised unexpected" in log.read_text(),
            OUTAGE_SECONDS,
            "the task giving up on the database",
        )
        stuck = _job()
        assert stuck.status == "running" and stuck.attempts == 1
        assert not ImportBatch.objects.exists()
        # The outage lasts on past the task's end: the beat's reaper fails meanwhile too (the
        # duration of the outage is the scenario, not a synchronisation).
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage)))
        proxy.restore()
        outage = time.monotonic() - outage
        try:
            done = _wait_for(
                lambda: (job := _job()).status in ("succeeded", "failed") and job,
                60,
                "the job being noticed and finished after the outage",
            )
        except AssertionError as waited:
            # What the reaper would have seen, for the failure's message.
            job = _job()
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT now(), classid, objid, pid, granted FROM pg_locks"
                    " WHERE locktype = 'advisory'"
                )
                locks = cursor.fetchall()
            raise AssertionError(
                f"{waited}: job {job.status}, attempts {job.attempts}, heartbeat "
                f"{job.heartbeat_at}, advisory locks {locks}; worker log: "
                f"{log.read_text()[-2000:]}"
            ) from waited
    finally:
        proxy.close()
        stop_process_group(worker)
    assert done.status == "succeeded", (done.error, log.read_text()[-3000:])
    assert done.attempts == 2
    assert AttendanceRecord.objects.filter(organisation=organisation).count() == ROWS
    assert ImportItem.objects.filter(batch=ImportBatch.objects.get()).count() == ROWS
    assert AuditEvent.objects.filter(action="imports.job.requeued").count() == 1
    assert outage >= OUTAGE_SECONDS


def _publish_to_redis(job, queue: str) -> None:
    with celery_app.connection_for_write(BROKER_URL) as broker:
        run_import_job.apply_async(args=[str(job.pk)], queue=queue, connection=broker)
