"""Commit: stage, plan and apply a file in one transaction together with its batch, items,
audit event and idempotency key, so a crash at any point leaves nothing half-applied.
Synchronous up to ``IMPORT_SYNC_MAX_ROWS`` over HTTP, else queued as a job."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from django.db import connection, transaction

from attendance.models import Organisation
from audit.services import audit_record
from common.locking import import_lock
from imports import formats, metrics
from imports.models import IdempotencyKey, ImportBatch, ImportJob
from imports.services.idempotency import claim_key, earlier_answer, fingerprint, replayed
from imports.services.options import ImportOptions, Source
from imports.services.preview import check_sync_size, source_rows, stage_rows
from imports.services.tokens import commit_token_consume
from imports.services.uploads import (
    detect_format,
    open_source,
    parse_options,
    upload_create,
    upload_get,
)
from imports.staging import ImportEngine


def run_commit(
    *,
    actor,
    organisation: Organisation,
    options: ImportOptions,
    source: Source,
    fmt: formats.ImportFormat,
    progress=None,
    wait: bool = True,
) -> tuple[ImportBatch, dict]:
    """Stage, plan and apply in the caller's transaction; returns the batch and the answer.
    ``progress(processed, total)`` hears of staged rows, then of applied chunks. ``wait``
    for another import of the organisation to end (jobs, commands), else BUSY at once."""
    started = time.monotonic()
    parsing = parse_options(organisation, options)
    # One import or rollback at a time per organisation: two overlapping batches would each
    # record the other's rows as pre-images and neither could be rolled back exactly.
    import_lock(organisation.pk, wait=wait)
    with connection.cursor() as cursor:
        engine = ImportEngine(cursor, organisation=organisation, fmt=fmt, mode=options.mode)
        total_rows = source.upload.row_count if source.upload else 0

        def on_row(count: int) -> None:
            if progress is not None:
                progress(count, max(total_rows, count) * 2)

        stage_rows(engine, source, parsing, on_row)
        plan = engine.plan(create_missing=options.create_missing_employees)
        cursor.execute("SELECT now()")
        applied_at = cursor.fetchone()[0]
        batch = ImportBatch.objects.create(
            organisation=organisation,
            created_by=actor if getattr(actor, "pk", None) else None,
            format=fmt.name,
            filename=source.filename,
            sha256=source.sha256,
            mode=options.mode,
            row_count=plan.source_rows,
            stats=plan.stats,
            applied_at=applied_at,
            created_employee_ids=plan.created_employee_ids,
        )

        def on_chunk(done: int, total: int) -> None:
            if progress is not None:
                progress(
                    plan.source_rows + done * plan.source_rows // max(total, 1),
                    plan.source_rows * 2,
                )

        # The apply re-checks every day against the plan and moves the days changed in the
        # meantime from insert/update to skip (CHANGED_DURING_IMPORT): stats are final now.
        engine.apply(batch_id=batch.pk, applied_at=applied_at, progress=on_chunk)
        items = []
        if options.return_items:
            items = engine.preview_items(options.items_limit)
    elapsed_ms = int((time.monotonic() - started) * 1000)
    batch.elapsed_ms = elapsed_ms
    batch.stats = {**plan.stats, "changedDuringImport": plan.changed_during_import}
    batch.save(update_fields=["elapsed_ms", "stats"])
    counted_stats = dict(plan.stats)
    # Counted once the rows are really in: the caller's transaction may still be undone.
    transaction.on_commit(
        lambda: metrics.import_committed(fmt.name, counted_stats, elapsed_ms / 1000)
    )
    audit_record(
        actor=actor,
        action="imports.batch.committed",
        organisation=organisation,
        target=batch,
        data={
            "format": fmt.name,
            "filename": source.filename,
            "sha256": source.sha256,
            "mode": options.mode,
            "rowCount": plan.source_rows,
            "stats": plan.stats,
            "changedDuringImport": plan.changed_during_import,
            "createdEmployees": len(plan.created_employee_ids),
            "elapsedMs": elapsed_ms,
        },
    )
    answer = {
        "batchId": batch.pk,
        "stats": plan.stats,
        "rowCount": plan.source_rows,
        "changedDuringImport": plan.changed_during_import,
    }
    if options.return_items:
        answer["items"] = items
    return batch, answer


@metrics.failures_counted
def import_commit(
    *,
    actor,
    organisation: Organisation,
    options: ImportOptions,
    commit_token: str | None,
    trusted_operator: bool = False,
    progress=None,
) -> dict:
    """Synchronous commit (up to IMPORT_SYNC_MAX_ROWS over HTTP). ``trusted_operator`` is
    for ``manage.py import_attendance``: shell access already is the deliberate second step a
    token stands for, and the command shows its own progress instead of a row limit."""
    started = time.monotonic()
    key_fingerprint = None
    if options.idempotency_key:
        key_fingerprint = fingerprint(organisation, options)
        earlier = earlier_answer(organisation, options, key_fingerprint)
        if earlier is not None:
            return replayed(earlier)
    with transaction.atomic():
        if options.idempotency_key:
            # Held until this commit ends: the same key meanwhile is IMPORT_IN_PROGRESS.
            earlier = claim_key(organisation, options, key_fingerprint, wait=False)
            if earlier is not None:
                return replayed(earlier)
        if not trusted_operator:
            commit_token_consume(actor=actor, organisation=organisation, token=commit_token)
        with open_source(organisation, options, unbounded=trusted_operator) as source:
            fmt = detect_format(source, options)
            if not trusted_operator:
                check_sync_size(source_rows(source, fmt, parse_options(organisation, options)))
            batch, answer = run_commit(
                actor=actor,
                organisation=organisation,
                options=options,
                source=source,
                fmt=fmt,
                progress=progress,
                wait=trusted_operator,
            )
        answer = {
            **answer,
            "idempotent": False,
            "elapsedMs": int((time.monotonic() - started) * 1000),
        }
        if options.idempotency_key:
            IdempotencyKey.objects.create(
                organisation=organisation,
                key=options.idempotency_key,
                fingerprint=key_fingerprint,
                batch=batch,
                result=answer,
            )
    return answer


@dataclass(frozen=True)
class QueuedCommit:
    """What ``commit-async`` answers: the job, or (``job`` None) the result of an earlier
    synchronous commit with the same idempotency key."""

    job: ImportJob | None
    idempotent: bool
    result: dict | None = None


def _queued_answer(earlier: IdempotencyKey) -> QueuedCommit:
    if earlier.job is not None:
        return QueuedCommit(job=earlier.job, idempotent=True)
    return QueuedCommit(job=None, idempotent=True, result=replayed(earlier))


@metrics.failures_counted  # a refusal to queue; a job that fails later counts itself
def import_commit_async(
    *,
    actor,
    organisation: Organisation,
    options: ImportOptions,
    commit_token: str | None,
    trusted_operator: bool = False,
) -> QueuedCommit:
    """Queue a commit as a job. Inline text is stored as an upload first, so the job only
    ever reads a file. A key already used answers its job (queued, running or done) or the
    synchronous commit's result: two requests with one key at once make one job."""
    from imports.services.jobs import enqueue_job

    key_fingerprint = None
    if options.idempotency_key:
        key_fingerprint = fingerprint(organisation, options)
        earlier = earlier_answer(organisation, options, key_fingerprint, running_ok=True)
        if earlier is not None:
            return _queued_answer(earlier)
    with transaction.atomic():
        if options.idempotency_key:
            # Queuing takes milliseconds: wait for a concurrent request with this key (bounded
            # by lock_timeout), then answer with the job it made.
            earlier = claim_key(organisation, options, key_fingerprint, wait=True)
            if earlier is not None:
                return _queued_answer(earlier)
        if not trusted_operator:
            commit_token_consume(actor=actor, organisation=organisation, token=commit_token)
        if options.csv_text is not None:
            upload = upload_create(
                actor=actor,
                organisation=organisation,
                filename="inline.csv",
                chunks=iter([options.csv_text.encode("utf-8")]),
            )
            options = ImportOptions(**{**asdict(options), "csv_text": None, "file_id": upload.pk})
        upload = upload_get(organisation=organisation, file_id=options.file_id)
        if options.format:
            formats.get_format(options.format)
        job = ImportJob.objects.create(
            organisation=organisation,
            created_by=actor if getattr(actor, "pk", None) else None,
            kind=ImportJob.Kind.COMMIT,
            params=options.as_params(),
            upload=upload,
            total=upload.row_count * 2,
        )
        if options.idempotency_key:
            IdempotencyKey.objects.create(
                organisation=organisation,
                key=options.idempotency_key,
                fingerprint=key_fingerprint,
                job=job,
            )
        audit_record(
            actor=actor,
            action="imports.job.queued",
            organisation=organisation,
            target=job,
            data={"kind": job.kind, "fileId": str(upload.pk), "rowCount": upload.row_count},
        )
        transaction.on_commit(lambda: enqueue_job(job))
    return QueuedCommit(job=job, idempotent=False)
