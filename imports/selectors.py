"""Reads of the import pipeline for the API, the pages and the admin alike."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils.translation import gettext

from attendance.models import Organisation
from common.csv_export import neutralised_sql
from common.exceptions import NotFound, ValidationFailed
from imports.models import ImportBatch, ImportItem, ImportJob, ItemAction

ANOMALY_STATUSES = ("late", "early_leave", "late_early", "partial", "absent")
EXPORT_TYPES = {
    "all": "TRUE",
    "imported": "i.action IN ('inserted', 'updated')",
    "skipped": "i.action IN ('skipped', 'invalid', 'duplicate')",
    "anomalies": "i.action IN ('inserted', 'updated', 'unchanged') AND i.status IN "
    + "("
    + ", ".join(f"'{status}'" for status in ANOMALY_STATUSES)
    + ")",
}


def batch_list(*, organisation: Organisation) -> QuerySet[ImportBatch]:
    return ImportBatch.objects.filter(organisation=organisation).select_related(
        "organisation", "created_by", "rolled_back_by"
    )


def batch_get(*, organisation: Organisation, batch_id: int) -> ImportBatch:
    batch = batch_list(organisation=organisation).filter(pk=batch_id).first()
    if batch is None:
        raise NotFound(gettext("No such batch in your organisation."))
    return batch


def batch_items(*, batch: ImportBatch, action: str | None = None) -> QuerySet[ImportItem]:
    items = ImportItem.objects.filter(batch=batch)
    if action:
        if action not in ItemAction.values:
            raise ValidationFailed(
                fields={
                    "action": [
                        gettext("Choose one of: %(values)s.")
                        % {"values": ", ".join(ItemAction.values)}
                    ]
                }
            )
        items = items.filter(action=action)
    return items.order_by("row", "id")


def batch_export_sql(*, batch: ImportBatch, export_type: str) -> tuple[str, dict]:
    """The SELECT behind a batch's CSV export (streamed by COPY)."""
    if export_type not in EXPORT_TYPES:
        raise ValidationFailed(
            fields={
                "type": [
                    gettext("Choose one of: %(values)s.") % {"values": ", ".join(EXPORT_TYPES)}
                ]
            }
        )
    sql = f"""
        SELECT i.row, i.action, i.code, i."column",
               {neutralised_sql("i.message")} AS message,
               {neutralised_sql("coalesce(e.employee_no, i.employee_ref)")} AS employee_no,
               {neutralised_sql("coalesce(e.name, '')")} AS name,
               i.work_date,
               to_char(i.first_in AT TIME ZONE %(tz)s, 'YYYY-MM-DD HH24:MI:SS') AS first_in,
               to_char(i.last_out AT TIME ZONE %(tz)s, 'YYYY-MM-DD HH24:MI:SS') AS last_out,
               i.status, i.prior_status
        FROM imports_importitem i
        LEFT JOIN attendance_employee e ON e.id = i.employee_id
        WHERE i.batch_id = %(batch)s AND {EXPORT_TYPES[export_type]}
        ORDER BY i.row, i.id
    """  # noqa: S608 - the only interpolations are constants of this module
    return sql, {"batch": batch.pk, "tz": batch.organisation.time_zone}


def job_get(*, organisation: Organisation, job_id) -> ImportJob:
    job = ImportJob.objects.filter(organisation=organisation, pk=job_id).first()
    if job is None:
        raise NotFound(gettext("No such job in your organisation."))
    return job


def rollback_blockers(*, batch: ImportBatch) -> list[ImportBatch]:
    """Committed later batches that replaced days of this one (their items' pre-images name
    it, found through a partial index): these must be rolled back first. Cheap enough for
    the batch page; days changed by punches or corrections are found by the rollback."""
    if batch.status != ImportBatch.Status.COMMITTED:
        return []
    return list(
        ImportBatch.objects.filter(
            organisation_id=batch.organisation_id,
            status=ImportBatch.Status.COMMITTED,
            pk__in=ImportItem.objects.filter(prior_batch_id=batch.pk).values("batch_id"),
        ).order_by("-pk")
    )


def active_rollback_job(*, batch: ImportBatch) -> ImportJob | None:
    """The batch's queued or running rollback job: a second click shows it, and waits for
    nothing."""
    return (
        ImportJob.objects.filter(
            organisation_id=batch.organisation_id,
            kind=ImportJob.Kind.ROLLBACK,
            params__batch_id=batch.pk,
            status__in=(ImportJob.Status.QUEUED, ImportJob.Status.RUNNING),
        )
        .order_by("-created_at")
        .first()
    )
