"""Redis restarted while an import job waits in its queue: the job still completes, once.

Each test runs a private ``redis-server`` on a free loopback port (the machine's Redis is
shared by other runs and must not restart). A commit is queued while no worker runs, Redis
is restarted on the same port and directory, then a real Celery worker starts.

* With production's persistence (``appendonly yes``, compose.yaml: every write appended to
  the file, fsynced once a second) the queued message survives the restart, clean
  (SIGTERM, as ``docker compose restart`` sends) or a crash of the process (SIGKILL: the
  write already reached the kernel, only an fsync is pending), so the worker takes it from
  the queue. Only the machine itself failing can lose the last second's writes.
* Without persistence a crash loses the message: the job's row is then the only record of
  it, and the reaper (the worker's embedded beat) queues it again once it has waited
  ``IMPORT_JOB_QUEUED_STALE_SECONDS``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
import redis

from attendance.models import AttendanceRecord
from audit.models import AuditEvent
from config.celery import app as celery_app
from imports import services
from imports.models import ImportBatch, ImportItem, ImportJob
from imports.services import jobs as jobs_service
from imports.tasks import run_import_job
from tests.support import start_celery_worker, stop_process_group, wait_for

ROWS = 200
START_TIMEOUT = 30
JOB_TIMEOUT = 60


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateRedis:
    """A ``redis-server`` of this test's own, restartable on the same port and directory."""

    def __init__(self, directory: Path, *persistence: str):
        self.port = _free_port()
        self.directory = directory
        self.persistence = persistence
        self.process: subprocess.Popen | None = None
        self.starts = 0
        directory.mkdir(parents=True, exist_ok=True)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def _pings(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        self.starts += 1
        log = (self.directory / f"redis-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                # No RDB snapshots: what survives a restart is decided by the AOF alone.
                "--save",
                "",
                *self.persistence,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for(
            lambda: self.process.poll() is not None or self._pings(),
            START_TIMEOUT,
            "redis-server answering",
            self.log,
        )
        assert self.process.poll() is None, self.log()

    def stop(self, how: signal.Signals = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, how)
        self.process.wait(timeout=30)

    def log(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")[-2000:]
            for path in sorted(self.directory.glob("redis-*.log"))
        )


def _csv(rows: int) -> bytes:
    lines = ["employee_no,name,work_date,first_in,last_out,status"]
    for number in range(rows):
        day = f"2026-05-{1 + number // 20:02d}"
        lines.append(f"R{number % 20:04d},Resilient {number % 20},{day},09:0{number % 10},18:00,")
    return ("\n".join(lines) + "\n").encode()


def _queue_commit(organisation, user) -> ImportJob:
    upload = services.upload_create(
        actor=user, organisation=organisation, filename="resilience.csv", chunks=iter([_csv(ROWS)])
    )
    queued = services.import_commit_async(
        actor=user,
        organisation=organisation,
        options=services.ImportOptions(file_id=upload.pk, create_missing_employees=True),
        commit_token=services.commit_token_issue(actor=user, organisation=organisation)[0],
    )
    return queued.job


@pytest.fixture
def private_broker(monkeypatch, settings, tmp_path):
    """``make(*persistence)`` → a started private Redis that this process's job messages go
    to, on a queue of this test's own. The Celery app read its broker at start-up; the
    message is the one ``enqueue_job`` sends (same task, arguments and queue), published on
    a connection to the private Redis."""
    queue = f"resilience-{uuid.uuid4().hex[:8]}"
    settings.IMPORT_TASK_QUEUE = queue
    settings.IMPORT_STORAGE_DIR = tmp_path / "uploads"
    servers: list[PrivateRedis] = []

    def make(*persistence: str) -> PrivateRedis:
        server = PrivateRedis(tmp_path / "redis", *persistence)
        server.queue = queue
        server.start()
        servers.append(server)

        def publish(job):
            with celery_app.connection_for_write(server.url()) as broker:
                run_import_job.apply_async(
                    args=[str(job.pk)], queue=settings.IMPORT_TASK_QUEUE, connection=broker
                )

        monkeypatch.setattr(jobs_service, "enqueue_job", publish)
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop(signal.SIGKILL)


def _worker(
    server: PrivateRedis, settings, tmp_path, *, beat: bool = False, **env: str
) -> subprocess.Popen:
    (tmp_path / "data").mkdir(exist_ok=True)
    return start_celery_worker(
        server.queue,
        log_path=tmp_path / "worker.log",
        beat=beat,
        CELERY_BROKER_URL=server.url(0),
        REDIS_URL=server.url(1),
        ATTENDANCE_DATA_DIR=str(tmp_path / "data"),
        IMPORT_TASK_QUEUE=server.queue,
        IMPORT_STORAGE_DIR=str(settings.IMPORT_STORAGE_DIR),
        **env,
    )


def _finished(job_id, worker, tmp_path) -> ImportJob:
    def ended():
        job = ImportJob.objects.get(pk=job_id)
        return job if job.status in ("succeeded", "failed") else None

    def worker_log():
        alive = "running" if worker.poll() is None else f"exited with {worker.returncode}"
        text = (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
        return f"worker {alive}; log:\n{text}"

    wait_for(lambda: worker.poll() is not None or ended(), JOB_TIMEOUT, "the job ending")
    job = ended()
    assert job is not None, f"the job did not end\n{worker_log()}"
    return job


def _assert_imported_once(job: ImportJob, organisation, tmp_path) -> None:
    log = (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
    assert job.status == "succeeded", (job.error, log)
    assert job.attempts == 1
    batch = ImportBatch.objects.get()
    assert job.batch_id == batch.pk
    assert batch.stats["insert"] == ROWS
    records = AttendanceRecord.objects.filter(organisation=organisation)
    assert records.count() == ROWS
    assert records.values("employee_id", "work_date").distinct().count() == ROWS
    assert ImportItem.objects.filter(batch=batch).count() == ROWS
    assert AuditEvent.objects.filter(action="imports.batch.committed").count() == 1


@pytest.mark.integration
@pytest.mark.xdist_group("celery-worker")
@pytest.mark.parametrize(
    "how",
    [pytest.param(signal.SIGTERM, id="restart"), pytest.param(signal.SIGKILL, id="crash")],
)
def test_a_job_queued_before_a_redis_restart_is_done_once_by_the_next_worker(
    transactional_db, organisation, people, private_broker, settings, tmp_path, how
):
    # Production's persistence (deploy/compose.yaml).
    server = private_broker("--appendonly", "yes")
    job = _queue_commit(organisation, people["importer"].user)
    assert server.client().llen(server.queue) == 1  # published, and nobody takes it yet

    server.stop(how)
    server.start()
    # The message outlived the restart: it is still the queue's only one.
    assert server.client().llen(server.queue) == 1, server.log()
    assert ImportJob.objects.get(pk=job.pk).status == "queued"

    worker = _worker(server, settings, tmp_path)
    try:
        done = _finished(job.pk, worker, tmp_path)
        # Taken and acknowledged: nothing is left to be delivered again.
        wait_for(
            lambda: (
                server.client().llen(server.queue) == 0 and server.client().hlen("unacked") == 0
            ),
            JOB_TIMEOUT,
            "the message being acknowledged",
        )
    finally:
        stop_process_group(worker)
    _assert_imported_once(done, organisation, tmp_path)
    assert not AuditEvent.objects.filter(action="imports.job.requeued").exists()


@pytest.mark.integration
@pytest.mark.xdist_group("celery-worker")
def test_a_job_whose_message_a_redis_crash_lost_is_queued_again_by_the_reaper_and_done_once(
    transactional_db, organisation, people, private_broker, settings, tmp_path
):
    server = private_broker("--appendonly", "no")
    job = _queue_commit(organisation, people["importer"].user)
    assert server.client().llen(server.queue) == 1

    server.stop(signal.SIGKILL)
    server.start()
    # Nothing persisted: the broker knows no job any more, only the database does.
    assert server.client().llen(server.queue) == 0
    assert server.client().dbsize() == 0

    worker = _worker(
        server,
        settings,
        tmp_path,
        beat=True,
        IMPORT_JOB_QUEUED_STALE_SECONDS="3",
        IMPORT_JOB_REAP_SECONDS="1",
    )
    try:
        done = _finished(job.pk, worker, tmp_path)
    finally:
        stop_process_group(worker)
    _assert_imported_once(done, organisation, tmp_path)
    requeued = AuditEvent.objects.filter(action="imports.job.requeued")
    assert requeued.exists()
    assert {event.target_id for event in requeued} == {str(job.pk)}
