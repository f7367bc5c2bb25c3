"""Thin tasks: take ids, call a service. Retries live here, idempotency in the service."""

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from imports import services


@shared_task(
    name="imports.tasks.run_import_job",
    bind=True,
    acks_late=True,
    # A worker that dies mid-commit (SIGKILL, OOM) hands the task back instead of losing
    # it where the broker can (Redis); the commit's transaction died with it, so the retry
    # starts from a clean slate. Where the broker cannot (the filesystem transport drops a
    # message once taken), the job's heartbeat goes stale and the reaper queues it again.
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=settings.IMPORT_JOB_DB_RETRIES,
)
def run_import_job(self, job_id: str) -> str:
    try:
        job = services.import_job_run(job_id=job_id)
    except (OperationalError, InterfaceError):
        if self.request.retries >= self.max_retries:
            # May fail too while the database is away: the reaper then finds the job.
            services.import_job_fail(job_id=job_id, message="The database kept failing.")
        raise
    except Exception:
        services.import_job_fail(job_id=job_id, message="The job failed unexpectedly.")
        raise
    return job.status if job is not None else "missing"


@shared_task(name="imports.tasks.reap_import_jobs")
def reap_import_jobs() -> dict:
    return services.import_jobs_reap()


@shared_task(name="imports.tasks.purge_expired_uploads")
def purge_expired_uploads() -> int:
    return services.purge_expired_uploads()
