"""Import jobs (async commits and large rollbacks): the worker's body, its pulse (progress and
heartbeat on a connection of its own), failure, and the reaper that notices a job whose
worker is gone, whatever the broker did with its message.

A job's life: ``queued`` → ``running`` (each start counts an attempt) → ``succeeded`` or
``failed``. A second delivery of a job that runs elsewhere, or that has ended, does nothing.
A running job whose heartbeat is older than ``IMPORT_JOB_STALE_SECONDS`` and whose lock
nobody holds lost its worker (killed, out of memory, the database gone for longer than the
task's retries): the reaper queues it again, up to ``IMPORT_JOB_MAX_ATTEMPTS`` starts, then
marks it failed with a message saying so, which frees its idempotency key.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Now
from django.utils import timezone

from audit.services import audit_record
from common.exceptions import ApplicationError
from common.locking import (
    LockSpace,
    is_free,
    session_unlock,
    try_session_lock,
)
from imports import metrics
from imports.models import IdempotencyKey, ImportJob
from imports.services.commit import run_commit
from imports.services.options import ImportOptions
from imports.services.uploads import detect_format, open_source

logger = logging.getLogger(__name__)

ACTIVE = (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING)
WORKER_LOST = "WORKER_LOST"


def enqueue_job(job: ImportJob) -> None:
    from imports.tasks import run_import_job

    run_import_job.apply_async(args=[str(job.pk)], queue=settings.IMPORT_TASK_QUEUE)


class JobPulse:
    """A job's progress and heartbeat, written by a thread on its own connection: the job's
    transaction is open for its whole run, and progress must be visible before it ends; the
    heartbeat must go on while one long statement runs. Progress is written at most once a
    ``interval``, the heartbeat every ``IMPORT_JOB_HEARTBEAT_SECONDS``."""

    def __init__(self, job_id, *, interval: float = 1.0):
        self.job_id = job_id
        self.interval = interval
        self._progress: tuple[int, int] | None = None
        self._written: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection = None

    def start(self) -> None:
        """Beat until :meth:`stop`."""
        self._thread = threading.Thread(target=self._beat, name=f"job-pulse-{self.job_id}")
        self._thread.daemon = True
        self._thread.start()

    def __call__(self, processed: int, total: int, *, force: bool = False) -> None:
        self._progress = (processed, total)
        if force:
            self._wake.set()

    def _beat(self) -> None:
        last_heartbeat = time.monotonic()
        try:
            while not self._stop.is_set():
                self._wake.wait(self.interval)
                self._wake.clear()
                progress = self._progress
                heartbeat_due = (
                    time.monotonic() - last_heartbeat >= settings.IMPORT_JOB_HEARTBEAT_SECONDS
                )
                if progress == self._written and not heartbeat_due:
                    continue
                try:
                    if progress is not None and progress != self._written:
                        self._execute(
                            "UPDATE imports_importjob SET processed = %s, total = %s,"
                            " heartbeat_at = now() WHERE id = %s AND status = 'running'",
                            [*progress, self.job_id],
                        )
                        self._written = progress
                    else:
                        self._execute(
                            "UPDATE imports_importjob SET heartbeat_at = now()"
                            " WHERE id = %s AND status = 'running'",
                            [self.job_id],
                        )
                    last_heartbeat = time.monotonic()
                except Exception:  # a database outage: beat again next time
                    logger.warning("Job %s: heartbeat not written", self.job_id, exc_info=True)
                    self._close()
        finally:
            self._close()

    def _execute(self, sql: str, params: list) -> None:
        if self._connection is None:
            self._connection = connections.create_connection("default")
        with self._connection.cursor() as cursor:
            cursor.execute(sql, params)

    def _close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()


def import_job_run(*, job_id) -> ImportJob | None:
    """The worker's body, idempotent by job: a job that ended (succeeded, failed, cancelled)
    is not run again, and a second delivery of a job another worker is running backs off.

    The claim is a session lock, so the attempt it counts is committed before the work's
    transaction begins (a killed worker's attempt still counts) and the lock ends with the
    worker's connection, however the worker ends."""
    job = ImportJob.objects.select_related("organisation", "created_by").filter(pk=job_id).first()
    if job is None:
        # A message for no job of this database (another database's, such as a test run's
        # left in a shared broker folder): nothing to run, and nothing to retry.
        logger.warning("No import job %s in this database; its message is dropped", job_id)
        return None
    if job.status not in ACTIVE:
        return job
    if not try_session_lock(LockSpace.IMPORT_JOB, str(job.pk)):
        logger.info("Job %s runs elsewhere; this delivery does nothing", job.pk)
        return job
    pulse = JobPulse(job.pk)
    try:
        job.refresh_from_db()
        if job.status not in ACTIVE:
            return job
        if job.attempts >= settings.IMPORT_JOB_MAX_ATTEMPTS:
            _give_up(job)
            job.refresh_from_db()
            return job
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.RUNNING,
            attempts=F("attempts") + 1,
            started_at=Coalesce("started_at", Now()),
            heartbeat_at=Now(),
        )
        job.refresh_from_db()
        pulse.start()
        try:
            _run_job_transaction(job, pulse)
        except ApplicationError as exc:
            _fail(job, {"code": exc.code, "message": exc.message, "details": exc.details})
    finally:
        pulse.stop()
        session_unlock(LockSpace.IMPORT_JOB, str(job.pk))
    job.refresh_from_db()
    return job


def _run_job_transaction(job: ImportJob, pulse: JobPulse) -> None:
    """The job's work, its result, its idempotency key and its success: one transaction."""
    from imports.services.rollback import import_rollback

    with transaction.atomic():
        # The commit or rollback takes the organisation's import lock waiting its turn (that
        # lifts lock_timeout: another import of the organisation is this job's queue).
        # A worker cut off from the database mid-job may leave its session behind, idle in
        # the transaction and holding the job's and the organisation's locks, until TCP
        # notices (hours): the server ends such a session itself, and the reaper can act.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('idle_in_transaction_session_timeout', %s, true)",
                [settings.IMPORT_JOB_IDLE_TIMEOUT],
            )
        if job.kind == ImportJob.Kind.ROLLBACK:
            result = import_rollback(
                actor=job.created_by,
                organisation=job.organisation,
                batch_id=job.params["batch_id"],
                allow_async=False,
                progress=pulse,
                wait=True,
            )
            batch_id = result["batchId"]
        else:
            options = ImportOptions.from_params(job.params)
            with open_source(job.organisation, options, job=job) as source:
                fmt = detect_format(source, options)
                batch, result = run_commit(
                    actor=job.created_by,
                    organisation=job.organisation,
                    options=options,
                    source=source,
                    fmt=fmt,
                    progress=pulse,
                )
            batch_id = batch.pk
        # No progress write may land after the success (it would wait for this row's lock
        # until the commit, then overwrite the final figures).
        pulse.stop()
        finished = timezone.now()
        result = {
            **result,
            "elapsedMs": int((finished - (job.started_at or finished)).total_seconds() * 1000),
        }
        if job.kind == ImportJob.Kind.COMMIT:
            result["idempotent"] = False
            IdempotencyKey.objects.filter(job=job).update(batch_id=batch_id, result=result)
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.SUCCEEDED,
            batch_id=batch_id,
            result=result,
            error=None,
            processed=job.total,
            finished_at=finished,
        )


def _fail(job: ImportJob, error: dict) -> None:
    """Mark a job failed (never one that succeeded), audited; its idempotency key is then
    free for another attempt."""
    with transaction.atomic():
        marked = (
            ImportJob.objects.filter(pk=job.pk)
            .exclude(status=ImportJob.Status.SUCCEEDED)
            .update(status=ImportJob.Status.FAILED, error=error, finished_at=timezone.now())
        )
        if marked:
            audit_record(
                actor=None,
                action="imports.job.failed",
                organisation=job.organisation,
                target=job,
                data={"kind": job.kind, "attempts": job.attempts, "error": error},
            )
    if marked and job.kind == ImportJob.Kind.COMMIT:
        metrics.import_failed(
            metrics.requested_format(ImportOptions.from_params(job.params)),
            str(error.get("code") or "INTERNAL_ERROR"),
        )


def _give_up(job: ImportJob) -> None:
    _fail(
        job,
        {
            "code": WORKER_LOST,
            "message": (
                f"The job was started {job.attempts} times and its worker stopped each time "
                "(killed, out of memory, or the database was unreachable); nothing of it was "
                "applied. Start the import again."
            ),
            "details": {"attempts": job.attempts},
        },
    )


def import_job_fail(*, job_id, message: str) -> None:
    """Called when the task gives up on an unexpected error (after its retries)."""
    job = ImportJob.objects.select_related("organisation").get(pk=job_id)
    _fail(job, {"code": "INTERNAL_ERROR", "message": message})


def import_jobs_reap(*, now=None) -> dict:
    """Beat: find jobs whose worker is gone and queue them again (or, past the attempts
    bound, fail them). A running job counts as gone when its heartbeat is stale and nobody
    holds its lock; a queued job when it has waited ``IMPORT_JOB_QUEUED_STALE_SECONDS`` (its
    message was lost: a broker restarted empty, a worker died holding it). A second delivery
    is harmless: the job's lock and status make it a no-op."""
    now = now or timezone.now()
    running_stale = now - dt.timedelta(seconds=settings.IMPORT_JOB_STALE_SECONDS)
    queued_stale = now - dt.timedelta(seconds=settings.IMPORT_JOB_QUEUED_STALE_SECONDS)
    candidates = list(
        ImportJob.objects.filter(
            Q(status=ImportJob.Status.RUNNING, heartbeat_at__lt=running_stale)
            | Q(status=ImportJob.Status.QUEUED, heartbeat_at__lt=queued_stale)
        ).values_list("pk", flat=True)
    )
    outcome = {"requeued": 0, "failed": 0}
    for job_id in candidates:
        if not is_free(LockSpace.IMPORT_JOB, str(job_id)):
            continue  # its worker is alive, only slow to beat
        with transaction.atomic():
            job = (
                ImportJob.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("organisation")
                .filter(pk=job_id, status__in=ACTIVE)
                .first()
            )
            if job is None:
                continue
            stale_since = job.heartbeat_at
            if job.attempts >= settings.IMPORT_JOB_MAX_ATTEMPTS:
                _give_up(job)
                outcome["failed"] += 1
                continue
            job.status = ImportJob.Status.QUEUED
            job.heartbeat_at = now
            job.save(update_fields=["status", "heartbeat_at"])
            audit_record(
                actor=None,
                action="imports.job.requeued",
                organisation=job.organisation,
                target=job,
                data={
                    "kind": job.kind,
                    "attempts": job.attempts,
                    "lastHeartbeat": stale_since.isoformat() if stale_since else None,
                },
            )
            transaction.on_commit(lambda job=job: enqueue_job(job))
            outcome["requeued"] += 1
    if any(outcome.values()):
        logger.warning("Import jobs reaped: %s", outcome)
    return outcome
