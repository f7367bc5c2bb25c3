"""Exports are reads, but who took which rows out is part of the audit trail."""

from __future__ import annotations

from django.db import transaction

from audit.services import audit_record
from imports.models import ImportBatch


@transaction.atomic
def batch_export_audit(*, actor, batch: ImportBatch, export_type: str) -> None:
    """One event when a batch report export starts: the batch, the row filter (``type``)
    and how many source rows the batch holds (the export's upper bound)."""
    audit_record(
        actor=actor,
        action="imports.batch.exported",
        organisation=batch.organisation,
        target=batch,
        data={
            "filters": {"type": export_type},
            "scope": "batch",
            "batchId": batch.pk,
            "filename": batch.filename,
            "rowCount": batch.row_count,
        },
    )
