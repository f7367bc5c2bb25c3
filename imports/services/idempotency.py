"""Idempotency keys: a retry with the same key gets the first answer; other input with the
same key is refused; a key whose first attempt failed is free again."""

from __future__ import annotations

import hashlib
import json

from attendance.models import Organisation
from common.locking import LockSpace, try_xact_lock, xact_lock
from imports.models import IdempotencyKey, ImportJob, ImportUpload
from imports.services.errors import IdempotencyKeyConflict, ImportInProgress
from imports.services.options import ImportOptions


def fingerprint(organisation: Organisation, options: ImportOptions) -> str:
    """A hash of the input that decides the result: the same key with other input is a
    conflict, not a retry."""
    decisive = {
        "sha256": _source_sha256(organisation, options),
        "format": options.format or "",
        "mapping": options.mapping,
        "timezone": options.time_zone or "",
        "mode": options.mode,
        "createMissingEmployees": options.create_missing_employees,
    }
    return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()


def _source_sha256(organisation: Organisation, options: ImportOptions) -> str:
    if options.file_id:
        upload = ImportUpload.objects.filter(organisation=organisation, pk=options.file_id).first()
        return upload.sha256 if upload else f"missing:{options.file_id}"
    return hashlib.sha256((options.csv_text or "").encode("utf-8")).hexdigest()


def earlier_answer(
    organisation: Organisation,
    options: ImportOptions,
    key_fingerprint: str,
    *,
    running_ok: bool = False,
) -> IdempotencyKey | None:
    """The first answer for this key, or None. Raises when the key names other input, or
    when its first request is still running and ``running_ok`` is false (a synchronous
    commit has no answer to give yet; ``commit-async`` answers with the job itself)."""
    existing = (
        IdempotencyKey.objects.select_related("job")
        .filter(organisation=organisation, key=options.idempotency_key)
        .first()
    )
    if existing is None:
        return None
    if existing.fingerprint != key_fingerprint:
        raise IdempotencyKeyConflict(details={"idempotencyKey": options.idempotency_key})
    job = existing.job
    if existing.result is not None:
        return existing
    if job is not None and job.status in (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING):
        if running_ok:
            return existing
        raise ImportInProgress(details={"jobId": str(job.pk)})
    if job is not None and job.status == ImportJob.Status.SUCCEEDED:
        return existing
    # The first attempt failed: the key is free for a new attempt.
    existing.delete()
    return None


def claim_key(
    organisation: Organisation, options: ImportOptions, key_fingerprint: str, *, wait: bool
):
    """Inside the commit's transaction: hold the key until it ends, then look again, since
    another request may have finished between the caller's first look and the lock. Returns
    that request's answer, or None when this request is the first. ``wait``: wait for a
    concurrent holder (bounded by lock_timeout) instead of answering IMPORT_IN_PROGRESS."""
    if wait:
        xact_lock(LockSpace.IMPORT_KEY, organisation.pk, options.idempotency_key)
    elif not try_xact_lock(LockSpace.IMPORT_KEY, organisation.pk, options.idempotency_key):
        raise ImportInProgress()
    return earlier_answer(organisation, options, key_fingerprint, running_ok=wait)


def replayed(earlier: IdempotencyKey) -> dict:
    if earlier.result is not None:
        return {**earlier.result, "idempotent": True}
    return {**(earlier.job.result or {}), "idempotent": True}
