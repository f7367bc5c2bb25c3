"""Jobs never hang: a redelivered job that ended does nothing, starts are bounded, a queued
job keeps its upload, and the reaper notices a job whose worker is gone (stale heartbeat,
nobody holding its lock) and queues it again or fails it, audited."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connections
from django.utils import timezone

from audit.models import AuditEvent
from common.locking import LockSpace, lock_key
from imports import services
from imports.models import IdempotencyKey, ImportBatch, ImportJob, ImportUpload
from imports.services import jobs as jobs_service
from tests.imports.conftest import IMPORT_API, prepare, upload
from tests.support import data

HEADER = "employee_no,name,work_date,first_in,last_out,status\n"


@pytest.fixture
def queued_job(client, people):
    """A commit job queued through the API (its message is not sent: nothing consumes it)."""
    uploaded = upload(
        client,
        (HEADER + f"{people['employee'].employee_no},E,2026-05-04,09:00,18:00,\n").encode(),
    )
    answer = data(
        client.post(
            f"{IMPORT_API}/commit-async",
            {"fileId": uploaded["fileId"], "commitToken": prepare(client), "idempotencyKey": "k"},
            format="json",
        ),
        202,
    )
    return ImportJob.objects.get(pk=answer["job"]["id"])


@pytest.fixture
def sent(monkeypatch) -> list[str]:
    """The jobs the reaper queued again, instead of messages to a broker."""
    queued: list[str] = []
    monkeypatch.setattr(jobs_service, "enqueue_job", lambda job: queued.append(str(job.pk)))
    return queued


@pytest.fixture
def reap(django_capture_on_commit_callbacks):
    """The reaper, with what it queues after its commit sent."""

    def run():
        with django_capture_on_commit_callbacks(execute=True):
            return services.import_jobs_reap()

    return run


def test_a_failed_job_delivered_again_does_nothing(queued_job):
    ImportJob.objects.filter(pk=queued_job.pk).update(
        status=ImportJob.Status.FAILED, error={"code": "X", "message": "earlier"}
    )
    job = services.import_job_run(job_id=queued_job.pk)
    assert (job.status, job.attempts, job.error["code"]) == ("failed", 0, "X")
    assert not ImportBatch.objects.exists()


def test_a_job_past_its_attempts_fails_clearly_and_frees_its_key(queued_job, client, settings):
    ImportJob.objects.filter(pk=queued_job.pk).update(attempts=settings.IMPORT_JOB_MAX_ATTEMPTS)
    job = services.import_job_run(job_id=queued_job.pk)
    assert job.status == "failed" and job.error["code"] == "WORKER_LOST"
    assert "started 3 times" in job.error["message"]
    assert not ImportBatch.objects.exists()
    assert AuditEvent.objects.filter(action="imports.job.failed", target_id=str(job.pk)).exists()
    # The key is free again: the same request makes a new job.
    again = data(
        client.post(
            f"{IMPORT_API}/commit-async",
            {
                "fileId": job.params["file_id"],
                "commitToken": prepare(client),
                "idempotencyKey": "k",
            },
            format="json",
        ),
        202,
    )
    assert again["job"]["id"] != str(job.pk) and again["idempotent"] is False
    assert IdempotencyKey.objects.get(key="k").job_id != job.pk


def test_a_queued_job_outlives_its_uploads_expiry(queued_job):
    ImportUpload.objects.filter(pk=queued_job.upload_id).update(
        expires_at=timezone.now() - dt.timedelta(hours=1)
    )
    assert services.purge_expired_uploads() == 0  # a queued job still needs it
    job = services.import_job_run(job_id=queued_job.pk)
    assert job.status == "succeeded", job.error
    assert job.attempts == 1
    # Once the job has ended, the purge takes the upload, audited once per organisation.
    assert services.purge_expired_uploads() == 1
    event = AuditEvent.objects.get(action="imports.uploads.purged")
    assert event.data["removed"] == 1


def _stale(job: ImportJob, *, status: str, seconds: float, attempts: int = 1) -> None:
    ImportJob.objects.filter(pk=job.pk).update(
        status=status,
        attempts=attempts,
        heartbeat_at=timezone.now() - dt.timedelta(seconds=seconds),
    )


def test_the_reaper_queues_again_a_running_job_whose_worker_is_gone(
    queued_job, sent, reap, settings
):
    _stale(queued_job, status="running", seconds=settings.IMPORT_JOB_STALE_SECONDS + 5)
    assert reap() == {"requeued": 1, "failed": 0}
    job = ImportJob.objects.get(pk=queued_job.pk)
    assert job.status == "queued" and sent == [str(job.pk)]
    assert timezone.now() - job.heartbeat_at < dt.timedelta(seconds=5)
    event = AuditEvent.objects.get(action="imports.job.requeued")
    assert event.data["attempts"] == 1
    # Then it runs, exactly once.
    assert services.import_job_run(job_id=job.pk).status == "succeeded"
    assert ImportBatch.objects.count() == 1


def test_the_reaper_leaves_jobs_that_beat_or_that_queue_briefly(queued_job, sent, reap, settings):
    _stale(queued_job, status="running", seconds=settings.IMPORT_JOB_STALE_SECONDS - 5)
    assert reap() == {"requeued": 0, "failed": 0}
    _stale(queued_job, status="queued", seconds=settings.IMPORT_JOB_STALE_SECONDS + 5, attempts=0)
    assert reap() == {"requeued": 0, "failed": 0}
    # A queued job untouched for much longer lost its message.
    _stale(
        queued_job,
        status="queued",
        seconds=settings.IMPORT_JOB_QUEUED_STALE_SECONDS + 5,
        attempts=0,
    )
    assert reap() == {"requeued": 1, "failed": 0}
    assert sent == [str(queued_job.pk)]


def test_the_reaper_fails_a_job_past_its_attempts(queued_job, sent, reap, settings, client):
    _stale(
        queued_job,
        status="running",
        seconds=settings.IMPORT_JOB_STALE_SECONDS + 5,
        attempts=settings.IMPORT_JOB_MAX_ATTEMPTS,
    )
    assert reap() == {"requeued": 0, "failed": 1}
    job = ImportJob.objects.get(pk=queued_job.pk)
    assert job.status == "failed" and job.error["code"] == "WORKER_LOST" and sent == []
    shown = data(client.get(f"{IMPORT_API}/jobs/{job.pk}"))["job"]
    assert shown["status"] == "failed" and "Start the import again" in shown["error"]["message"]


@pytest.mark.django_db(transaction=True)
def test_the_reaper_leaves_a_stale_job_whose_lock_is_held(queued_job, sent, reap, settings):
    """A heartbeat can lag (a stuck pulse thread): the job's lock says its worker lives."""
    _stale(queued_job, status="running", seconds=settings.IMPORT_JOB_STALE_SECONDS + 5)
    held = threading.Event()
    release = threading.Event()

    def hold():
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_lock(%s, %s)",
                lock_key(LockSpace.IMPORT_JOB, str(queued_job.pk)),
            )
            held.set()
            release.wait(30)
        connections["default"].close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(30)
        assert reap() == {"requeued": 0, "failed": 0}
        # Nor does a second delivery run it while that worker holds it.
        assert services.import_job_run(job_id=queued_job.pk).attempts == 1
    finally:
        release.set()
        holder.join(30)
    assert reap() == {"requeued": 1, "failed": 0}


def test_a_message_for_no_job_of_this_database_is_dropped_quietly(db):
    """A test run's messages left in the developer's broker folder, read by make run."""
    assert services.import_job_run(job_id="00000000-0000-0000-0000-000000000000") is None


def test_a_lock_this_session_holds_is_not_free(db):
    """Advisory locks are re-entrant within a session: trying one that this session holds
    would succeed, so "is it free?" reads pg_locks instead."""
    from common.locking import is_free, session_unlock, try_session_lock

    assert is_free(LockSpace.IMPORT_JOB, "a-job")
    assert try_session_lock(LockSpace.IMPORT_JOB, "a-job")
    try:
        assert not is_free(LockSpace.IMPORT_JOB, "a-job")
        assert is_free(LockSpace.IMPORT_JOB, "another-job")
    finally:
        session_unlock(LockSpace.IMPORT_JOB, "a-job")
    assert is_free(LockSpace.IMPORT_JOB, "a-job")
