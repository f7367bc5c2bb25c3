"""Rollback: restore exactly what a batch replaced, or refuse and say what to do first.

It takes the organisation's import lock (no commit or other rollback meanwhile), then finds
in one pass how many of the batch's days are still as the batch wrote them. Any day a later
writer changed (another batch, a correction, a punch, an edit) refuses the rollback with
``ROLLBACK_CONFLICT`` naming the later batch to roll back first. The writes carry the same
condition, so a day that changes between that pass and the write is not undone either: the
counts then differ and the whole rollback is refused instead of being half done.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext

from attendance.models import Organisation
from audit.services import audit_record
from common.exceptions import Busy, NotFound
from common.locking import import_lock
from imports import metrics
from imports.models import ImportBatch, ImportJob
from imports.selectors import active_rollback_job
from imports.services.errors import AlreadyRolledBack, RollbackConflict
from imports.staging import (
    rollback_conflicts,
    rollback_delete_created_employees,
    rollback_delete_inserted,
    rollback_delete_punches,
    rollback_restore_updated,
    rollback_survey,
)


def _batch_link(batch_id: int) -> str:
    return reverse("imports:batch", args=[batch_id])


def _queue_rollback(*, actor, batch: ImportBatch, applied: int) -> ImportJob:
    """One rollback job per batch (the caller found none running): a second click gets the
    job that runs, without waiting."""
    from imports.services.jobs import enqueue_job

    with transaction.atomic():
        # Two first clicks at once: the batch row orders them, the second finds the job.
        ImportBatch.objects.select_for_update().filter(pk=batch.pk).first()
        job = active_rollback_job(batch=batch)
        if job is not None:
            return job
        job = ImportJob.objects.create(
            organisation_id=batch.organisation_id,
            created_by=actor if getattr(actor, "pk", None) else None,
            kind=ImportJob.Kind.ROLLBACK,
            params={"batch_id": batch.pk},
            total=applied,
        )
        audit_record(
            actor=actor,
            action="imports.job.queued",
            organisation=batch.organisation,
            target=job,
            data={"kind": job.kind, "batchId": batch.pk, "days": applied},
        )
        transaction.on_commit(lambda: enqueue_job(job))
    return job


def _conflict(cursor, batch: ImportBatch) -> RollbackConflict:
    conflicts = rollback_conflicts(cursor, batch_id=batch.pk, applied_at=batch.applied_at)
    later = sorted({other for *_rest, other in conflicts if other is not None})
    if later:
        message = gettext(
            "Later imports changed days of this batch: roll back %(batches)s first."
        ) % {
            "batches": ", ".join(
                gettext("batch %(number)s") % {"number": number} for number in reversed(later)
            )
        }
    else:
        message = gettext(
            "Days of this batch were changed later by punches, corrections or edits; rolling "
            "back would undo them."
        )
    return RollbackConflict(
        message,
        details={
            "laterBatches": [{"id": number, "url": _batch_link(number)} for number in later],
            "conflicts": [
                {
                    "employeeNo": employee_no,
                    "workDate": work_date.isoformat(),
                    "source": source,
                    "batchId": other_batch,
                }
                for work_date, employee_no, source, other_batch in conflicts
            ],
        },
    )


def import_rollback(
    *,
    actor,
    organisation: Organisation,
    batch_id: int,
    allow_async: bool = True,
    progress=None,
    wait: bool = False,
) -> dict | ImportJob:
    """Delete the days the batch inserted, put back the values of the days it updated,
    remove its punches and the (now unused) employees it created. Large batches become a
    job when ``allow_async``; the job calls this again without it. ``wait`` for another
    import of the organisation to end (jobs, the command), else BUSY at once (pages, API)."""
    started = time.monotonic()
    batch = ImportBatch.objects.filter(organisation=organisation, pk=batch_id).first()
    if batch is None:
        raise NotFound(gettext("No such batch in your organisation."))
    if batch.status == ImportBatch.Status.ROLLED_BACK:
        raise AlreadyRolledBack(details={"rolledBackAt": batch.rolled_back_at.isoformat()})
    applied = batch.stats.get("insert", 0) + batch.stats.get("update", 0)
    if allow_async:
        running = active_rollback_job(batch=batch)
        if running is not None:
            return running
        if applied > settings.IMPORT_ASYNC_ROLLBACK_ROWS:
            return _queue_rollback(actor=actor, batch=batch, applied=applied)
    with transaction.atomic():
        import_lock(organisation.pk, wait=wait)
        batch = ImportBatch.objects.select_for_update().get(pk=batch.pk)
        if batch.status == ImportBatch.Status.ROLLED_BACK:
            raise AlreadyRolledBack(details={"rolledBackAt": batch.rolled_back_at.isoformat()})
        with connection.cursor() as cursor:
            found = rollback_survey(cursor, batch_id=batch.pk, applied_at=batch.applied_at)
            if found.conflicts:
                raise _conflict(cursor, batch)
            total = found.inserted + found.updated
            if progress is not None:
                progress(0, total, force=True)
            deleted = rollback_delete_inserted(
                cursor, batch_id=batch.pk, applied_at=batch.applied_at
            )
            if progress is not None:
                progress(deleted, total, force=True)
            restored = rollback_restore_updated(
                cursor, batch_id=batch.pk, applied_at=batch.applied_at
            )
            if (deleted, restored) != (found.inserted, found.updated):
                # A day changed between the survey and the write: undo nothing.
                raise Busy(
                    gettext(
                        "Days of this batch changed while it was being rolled back; nothing was "
                        "undone. Try again."
                    )
                )
            if progress is not None:
                progress(total, total, force=True)
            punches_deleted = rollback_delete_punches(cursor, batch_id=batch.pk)
            employees_deleted = rollback_delete_created_employees(
                cursor, employee_ids=batch.created_employee_ids or []
            )
        batch.status = ImportBatch.Status.ROLLED_BACK
        batch.rolled_back_at = timezone.now()
        batch.rolled_back_by = actor if getattr(actor, "pk", None) else None
        batch.rollback_stats = {
            "restored": restored,
            "deleted": deleted,
            "punchesDeleted": punches_deleted,
            "employeesDeleted": employees_deleted,
        }
        batch.save(update_fields=["status", "rolled_back_at", "rolled_back_by", "rollback_stats"])
        audit_record(
            actor=actor,
            action="imports.batch.rolled_back",
            organisation=organisation,
            target=batch,
            data=batch.rollback_stats,
        )
        transaction.on_commit(
            lambda: metrics.phase_finished(batch.format, "rollback", time.monotonic() - started)
        )
    return {
        "batchId": batch.pk,
        "status": batch.status,
        "restored": restored,
        "deleted": deleted,
    }
