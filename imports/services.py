"""Every write of the import pipeline: uploads, commit tokens, preview (a write that is
always rolled back), commit (sync and as a job), rollback, and the upload purge.

Each commit and rollback is one database transaction together with its batch items, its
audit event and its idempotency key, so a crash at any point leaves nothing half-applied.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import json
import logging
import secrets
import tempfile
import time
import uuid
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import ProgrammingError, connection, connections, transaction
from django.utils import timezone

from attendance.models import Organisation
from audit.services import audit_record
from common.csv_export import BOM
from common.exceptions import ApplicationError, NotFound, ValidationFailed
from imports import formats
from imports.formats.base import EmptyFile, ImportFormat, ParseOptions, UnsupportedFormat
from imports.formats.reading import Table, open_table
from imports.models import (
    CommitToken,
    IdempotencyKey,
    ImportBatch,
    ImportJob,
    ImportMode,
    ImportUpload,
)
from imports.staging import (
    ImportEngine,
    create_stage_table,
    drop_stage_table,
    fill_stage_table,
    staged_rows_present,
    upload_stage_name,
)

logger = logging.getLogger(__name__)


# --- errors (codes in API.md) -------------------------------------------------------------


class CommitTokenRequired(ApplicationError):
    status_code = 400
    code = "COMMIT_TOKEN_REQUIRED"
    default_message = "A commit needs a commitToken from POST /api/attendance/import/prepare."


class CommitTokenInvalid(ApplicationError):
    status_code = 403
    code = "COMMIT_TOKEN_INVALID"
    default_message = "The commit token is unknown, already used, expired or not yours."


class IdempotencyKeyConflict(ApplicationError):
    status_code = 409
    code = "IDEMPOTENCY_KEY_CONFLICT"
    default_message = "This idempotency key was already used for a different import."


class ImportInProgress(ApplicationError):
    status_code = 409
    code = "IMPORT_IN_PROGRESS"
    default_message = "An import with this idempotency key is still running."


class UploadTooLarge(ApplicationError):
    status_code = 413
    code = "UPLOAD_TOO_LARGE"
    default_message = "The file is larger than the upload limit."


class UploadExpired(ApplicationError):
    status_code = 410
    code = "UPLOAD_EXPIRED"
    default_message = "The upload has expired; upload the file again."


class ImportTooLargeForSync(ApplicationError):
    status_code = 400
    code = "IMPORT_TOO_LARGE_FOR_SYNC"
    default_message = (
        "Too many rows for a synchronous request; upload the file and use commit-async."
    )


class RollbackConflict(ApplicationError):
    status_code = 409
    code = "ROLLBACK_CONFLICT"
    default_message = "Later writes changed days of this batch; rolling back would undo them."


class AlreadyRolledBack(ApplicationError):
    status_code = 409
    code = "ALREADY_ROLLED_BACK"
    default_message = "This batch was already rolled back."


# --- the request every preview and commit takes -------------------------------------------


@dataclass(frozen=True)
class ImportOptions:
    file_id: uuid.UUID | None = None
    csv_text: str | None = None
    format: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    time_zone: str | None = None
    mode: str = ImportMode.OVERRIDE
    create_missing_employees: bool = False
    preview_limit: int = 50
    idempotency_key: str | None = None
    return_items: bool = False
    items_limit: int = 100

    def as_params(self) -> dict:
        """JSON-safe, for a job row (an async commit keeps no inline text: see commit)."""
        params = asdict(self)
        params["file_id"] = str(self.file_id) if self.file_id else None
        params["csv_text"] = None
        return params

    @classmethod
    def from_params(cls, params: dict) -> ImportOptions:
        values = dict(params)
        values["file_id"] = uuid.UUID(values["file_id"]) if values.get("file_id") else None
        return cls(**values)


@dataclass
class Source:
    path: Path
    filename: str
    sha256: str
    upload: ImportUpload | None
    temporary: bool
    _table: Table | None = None

    @property
    def table(self) -> Table:
        """The file, opened on first use: a plan from the upload's kept rows never reads it."""
        if self._table is None:
            if not self.path.is_file():
                raise UploadExpired(
                    "The uploaded file is no longer stored; upload it again.",
                    details={"fileId": str(self.upload.pk) if self.upload else None},
                )
            self._table = open_table(self.path, filename=self.filename)
        return self._table

    def close(self) -> None:
        if self.temporary:
            self.path.unlink(missing_ok=True)


# --- storage --------------------------------------------------------------------------------


def _storage_dir() -> Path:
    directory = Path(settings.IMPORT_STORAGE_DIR)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory


def _write_stream(chunks: Iterator[bytes], target: Path) -> tuple[int, str]:
    """Stream to disk with the size limit and the SHA-256; a refused file leaves no trace."""
    limit = settings.IMPORT_UPLOAD_MAX_BYTES
    digest = hashlib.sha256()
    size = 0
    try:
        with open(target, "wb") as handle:
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(
                        f"The file is larger than the upload limit of {limit} bytes.",
                        details={"maxBytes": limit},
                    )
                digest.update(chunk)
                handle.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


def _detect(source: Source, options: ImportOptions) -> ImportFormat:
    upload = source.upload
    if (
        upload is not None
        and upload.format
        and not options.mapping
        and options.format in (None, "", upload.format)
    ):
        return formats.get_format(upload.format)  # what the upload's read found
    table = source.table
    if options.format:
        fmt = formats.get_format(options.format)
        # A chosen format must still read the file: a device log has no header to look
        # for, and would otherwise read every line of a spreadsheet as an invalid punch.
        if not fmt.matches(table, options.mapping or None):
            raise UnsupportedFormat(
                f"This file is not in the {fmt.label} format ({fmt.name}): its columns do "
                "not match. Choose another format, or map your column names to this one's."
            )
        return fmt
    return formats.detect_format(table, mapping=options.mapping or None)


def _parse_options(organisation: Organisation, options: ImportOptions) -> ParseOptions:
    name = options.time_zone or organisation.time_zone
    try:
        tz = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(fields={"timezone": [f'Unknown time zone "{name}".']}) from exc
    return ParseOptions(
        time_zone=tz, today=timezone.now().astimezone(tz).date(), mapping=options.mapping
    )


@transaction.atomic
def upload_create(
    *, actor, organisation: Organisation, filename: str, chunks: Iterator[bytes]
) -> ImportUpload:
    """Store an upload privately, then read it once: container, encoding, format, rows."""
    upload_id = uuid.uuid4()
    storage_name = f"{organisation.pk}/{upload_id}"
    path = _storage_dir() / storage_name
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    size, sha256 = _write_stream(chunks, path)
    try:
        if size == 0:
            raise EmptyFile("The file is empty.")
        table = open_table(path, filename=filename)
        detected = stage_table = ""
        row_count = 0
        staged_on = None
        try:
            fmt = formats.detect_format(table)
        except ApplicationError:
            fmt = None  # the wizard lets the user pick the format and a mapping
        if fmt is not None:
            # The one read of the file: its parsed rows are kept for preview and commit.
            detected = fmt.name
            staged_on = timezone.localdate(timezone=organisation.tz)
            options = ParseOptions(time_zone=organisation.tz, today=staged_on)
            stage_table = _stage_table_for(upload_id)
            if stage_table:
                with connection.cursor() as cursor:
                    row_count = fill_stage_table(cursor, stage_table, fmt.parse(table, options))
            else:
                row_count = sum(1 for _ in fmt.parse(table, options))
                if row_count == 0:
                    raise EmptyFile("The file has a header but no data rows.")
        upload = ImportUpload.objects.create(
            id=upload_id,
            organisation=organisation,
            uploaded_by=actor if getattr(actor, "pk", None) else None,
            filename=(filename or "upload")[:255],
            bytes=size,
            sha256=sha256,
            container=table.container,
            format=detected,
            encoding=table.encoding or "",
            row_count=row_count,
            storage_name=storage_name,
            stage_table=stage_table,
            staged_time_zone=organisation.time_zone if stage_table else "",
            staged_on=staged_on,
            expires_at=timezone.now() + dt.timedelta(seconds=settings.IMPORT_UPLOAD_TTL_SECONDS),
        )
        audit_record(
            actor=actor,
            action="imports.upload.created",
            organisation=organisation,
            target=upload,
            data={
                "filename": upload.filename,
                "bytes": size,
                "sha256": sha256,
                "format": detected,
                "rowCount": row_count,
            },
        )
        return upload
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _stage_table_for(upload_id: uuid.UUID) -> str:
    """Create the upload's stage table, or return "" when the database role may not create
    tables (PostgreSQL 15+ grants no CREATE on ``public`` by default): the upload then
    keeps no rows, and preview and commit read the file, as they do for a mapping."""
    name = upload_stage_name(upload_id)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            create_stage_table(cursor, name, temporary=False)
    except ProgrammingError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != "42501":  # insufficient_privilege
            raise
        logger.warning("Uploads keep no parsed rows: the database role may not create tables")
        return ""
    return name


def upload_get(*, organisation: Organisation, file_id) -> ImportUpload:
    upload = ImportUpload.objects.filter(organisation=organisation, pk=file_id).first()
    if upload is None:
        raise NotFound("No such upload in your organisation.")
    if upload.expires_at <= timezone.now():
        raise UploadExpired(details={"expiredAt": upload.expires_at.isoformat()})
    return upload


def purge_expired_uploads(*, now: dt.datetime | None = None) -> int:
    """Delete expired uploads and their files (beat, hourly). Uploads a queued or running
    job still needs are kept until it ends."""
    now = now or timezone.now()
    # Rollback jobs have no upload: without the NULL filter, NOT IN over a set holding NULL
    # would match nothing and one queued rollback would stop every purge.
    busy = ImportJob.objects.filter(
        status__in=(ImportJob.Status.QUEUED, ImportJob.Status.RUNNING), upload__isnull=False
    ).values("upload_id")
    expired = ImportUpload.objects.filter(expires_at__lte=now).exclude(pk__in=busy)
    removed = 0
    for upload in expired.iterator():
        with transaction.atomic(), connection.cursor() as cursor:
            if upload.stage_table:
                drop_stage_table(cursor, upload.stage_table)
            upload.delete()
        (_storage_dir() / upload.storage_name).unlink(missing_ok=True)
        removed += 1
    _drop_orphan_stage_tables()
    if removed:
        logger.info("Purged %s expired uploads", removed)
    return removed


def _drop_orphan_stage_tables() -> None:
    """Stage tables whose upload row is gone by another road (an organisation deleted, a
    row removed by hand). A table an upload is creating right now is not visible here:
    catalog rows follow MVCC like any other."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname = current_schema()"
            " AND c.relname ~ '^import_upload_[0-9a-f]{32}$'"
        )
        names = {name for (name,) in cursor.fetchall()}
        known = set(
            ImportUpload.objects.filter(stage_table__in=names).values_list("stage_table", flat=True)
        )
        for orphan in sorted(names - known):
            drop_stage_table(cursor, orphan)


@contextlib.contextmanager
def _open_source(organisation: Organisation, options: ImportOptions) -> Iterator[Source]:
    if options.file_id:
        upload = upload_get(organisation=organisation, file_id=options.file_id)
        path = _storage_dir() / upload.storage_name
        source = Source(
            path=path,
            filename=upload.filename,
            sha256=upload.sha256,
            upload=upload,
            temporary=False,
        )
    elif options.csv_text is not None:
        text = options.csv_text.encode("utf-8")
        if not text.strip():
            raise EmptyFile("csvText is empty.")
        path = _storage_dir() / "tmp" / f"{uuid.uuid4()}.csv"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _size, sha256 = _write_stream(iter([text]), path)
        try:
            table = open_table(path, filename="inline.csv")
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        source = Source(path, "inline.csv", sha256, None, temporary=True, _table=table)
    else:
        raise ValidationFailed(fields={"fileId": ["Give fileId or csvText."]})
    try:
        yield source
    finally:
        source.close()


def _check_sync_size(rows: int) -> None:
    limit = settings.IMPORT_SYNC_MAX_ROWS
    if rows > limit:
        raise ImportTooLargeForSync(
            f"{rows} rows is more than the synchronous limit of {limit}; upload the file and "
            "use commit-async.",
            details={"rowCount": rows, "syncMaxRows": limit},
        )


# --- commit tokens --------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def commit_token_issue(*, actor, organisation: Organisation) -> tuple[str, CommitToken]:
    token = secrets.token_urlsafe(32)
    record = CommitToken.objects.create(
        organisation=organisation,
        user=actor,
        token_hash=_token_hash(token),
        expires_at=timezone.now() + dt.timedelta(seconds=settings.IMPORT_COMMIT_TOKEN_TTL_SECONDS),
    )
    return token, record


def _commit_token_consume(*, actor, organisation: Organisation, token: str | None) -> None:
    """Single use: the row is marked inside the commit's transaction, so a failed commit
    leaves the token usable and two concurrent commits cannot both spend it."""
    if not token:
        raise CommitTokenRequired()
    used = CommitToken.objects.filter(
        token_hash=_token_hash(token),
        user=actor,
        organisation=organisation,
        used_at__isnull=True,
        expires_at__gt=timezone.now(),
    ).update(used_at=timezone.now())
    if used != 1:
        raise CommitTokenInvalid()


# --- idempotency ----------------------------------------------------------------------------


def _fingerprint(source_sha256: str, fmt_name: str | None, options: ImportOptions) -> str:
    decisive = {
        "sha256": source_sha256,
        "format": fmt_name or "",
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


def _advisory_lock_id(name: str) -> int:
    """A PostgreSQL advisory lock id (a signed 64-bit integer) for a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _lock_key(organisation: Organisation, key: str) -> int:
    return _advisory_lock_id(f"import-key:{organisation.pk}:{key}")


def _earlier_answer(organisation: Organisation, options: ImportOptions, fingerprint: str):
    """The first answer for this key, or None. Raises when the key names other input or its
    first request is still running."""
    existing = (
        IdempotencyKey.objects.select_related("job")
        .filter(organisation=organisation, key=options.idempotency_key)
        .first()
    )
    if existing is None:
        return None
    if existing.fingerprint != fingerprint:
        raise IdempotencyKeyConflict(details={"idempotencyKey": options.idempotency_key})
    job = existing.job
    if existing.result is not None:
        return existing
    if job is not None and job.status in (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING):
        raise ImportInProgress(details={"jobId": str(job.pk)})
    if job is not None and job.status == ImportJob.Status.SUCCEEDED:
        return existing
    # The first attempt failed: the key is free for a new attempt.
    existing.delete()
    return None


def _try_key_lock(organisation: Organisation, options: ImportOptions) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(%s)",
            [_lock_key(organisation, options.idempotency_key)],
        )
        if not cursor.fetchone()[0]:
            raise ImportInProgress()


# --- preview --------------------------------------------------------------------------------


def _stage(
    engine: ImportEngine,
    source: Source,
    parse_options: ParseOptions,
    on_row: Callable[[int], None] | None = None,
) -> None:
    """Plan from the rows the upload parsed when they answer this request (same format, no
    mapping, same time zone and the same "today" for future dates), else read the file."""
    upload = source.upload
    if (
        upload is not None
        and upload.stage_table
        and upload.format == engine.fmt.name
        and not parse_options.mapping
        and upload.staged_time_zone == parse_options.time_zone.key
        and upload.staged_on == parse_options.today
        and staged_rows_present(engine.cursor, upload.stage_table)
    ):
        engine.use_staged(upload.stage_table, upload.row_count)
    else:
        engine.stage(source.table, parse_options, on_row=on_row)


@contextlib.contextmanager
def _rolled_back_plan(organisation: Organisation, options: ImportOptions):
    """Stage and plan a file in a transaction that is always rolled back, yielding the
    engine and its plan: what a commit would do, without doing it (employees it would
    create are counted, not kept)."""
    with _open_source(organisation, options) as source:
        fmt = _detect(source, options)
        parse_options = _parse_options(organisation, options)
        if source.upload is None:
            # Inline text is parsed in the request: the sync limit applies. A stored upload
            # may be previewed at any size.
            _check_sync_size(_source_rows(source, fmt, parse_options))
        with transaction.atomic():
            with connection.cursor() as cursor:
                engine = ImportEngine(cursor, organisation=organisation, fmt=fmt, mode=options.mode)
                _stage(engine, source, parse_options)
                plan = engine.plan(create_missing=options.create_missing_employees)
                yield engine, plan
            transaction.set_rollback(True)


def import_preview(*, actor, organisation: Organisation, options: ImportOptions) -> dict:
    """Everything a commit would do, computed by the commit's own engine."""
    with _rolled_back_plan(organisation, options) as (engine, plan):
        items = engine.preview_items(options.preview_limit)
        errors, errors_total = engine.issues(settings.IMPORT_ERRORS_LIMIT)
    return {
        "format": engine.fmt.name,
        "rowCount": plan.source_rows,
        "dayCount": plan.day_rows,
        "stats": plan.stats,
        "employeesToCreate": len(plan.created_employee_ids),
        "items": items,
        "errors": errors,
        "errorsTotal": errors_total,
        "truncated": plan.source_rows > len(items) or errors_total > len(errors),
    }


def preview_errors_csv(*, actor, organisation: Organisation, options: ImportOptions):
    """Every error of a preview as a CSV file (BOM, header, formulas neutralised), for the
    download large files need. PostgreSQL writes it into a temporary file while the plan's
    transaction is open; the response streams the file after that transaction has been
    rolled back, so memory stays flat however many errors there are."""
    spool_dir = _storage_dir() / "tmp"
    spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Closed by the response once streamed (or below on failure), not by a with block.
    spool = tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115
    try:
        spool.write(BOM.encode("utf-8"))
        with (
            _rolled_back_plan(organisation, options) as (engine, _plan),
            connection.cursor() as cursor,
            cursor.cursor.copy(engine.issues_csv_copy_sql()) as copy,
        ):
            for data in copy:
                spool.write(data)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


def _source_rows(source: Source, fmt: ImportFormat, parse_options: ParseOptions) -> int:
    """The file's row count as ``fmt`` reads it: the upload's own count when it was detected
    as that format, else counted by parsing, stopping just past the sync limit (all that
    the limit check needs)."""
    upload = source.upload
    if upload is not None and upload.format == fmt.name and not parse_options.mapping:
        return upload.row_count
    stop = settings.IMPORT_SYNC_MAX_ROWS + 1
    return sum(1 for _ in itertools.islice(fmt.parse(source.table, parse_options), stop))


# --- commit ---------------------------------------------------------------------------------


class ProgressWriter:
    """Writes a job's progress at most once a second on its own connection: the commit's
    transaction is still open, and its readers must see progress before it ends."""

    def __init__(self, job_id, *, interval: float = 1.0):
        self.job_id = job_id
        self.interval = interval
        self.last = 0.0
        self._connection = None

    def __call__(self, processed: int, total: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        if self._connection is None:
            self._connection = connections.create_connection("default")
        with self._connection.cursor() as cursor:
            cursor.execute(
                "UPDATE imports_importjob SET processed = %s, total = %s WHERE id = %s",
                [processed, total, self.job_id],
            )

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


def _run_commit(
    *,
    actor,
    organisation: Organisation,
    options: ImportOptions,
    source: Source,
    fmt: ImportFormat,
    progress: ProgressWriter | None,
) -> tuple[ImportBatch, dict]:
    """Stage, plan and apply in the caller's transaction; returns the batch and the answer."""
    started = time.monotonic()
    parse_options = _parse_options(organisation, options)
    with connection.cursor() as cursor:
        # One import at a time per organisation: two overlapping batches would each record
        # the other's rows as pre-images and neither could be rolled back exactly.
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(organisation, "__commit__")])
        engine = ImportEngine(cursor, organisation=organisation, fmt=fmt, mode=options.mode)
        total_rows = source.upload.row_count if source.upload else 0

        def on_row(count: int) -> None:
            if progress is not None:
                progress(count, max(total_rows, count) * 2)

        _stage(engine, source, parse_options, on_row)
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

        engine.apply(batch_id=batch.pk, applied_at=applied_at, progress=on_chunk)
        items = []
        if options.return_items:
            items = engine.preview_items(options.items_limit)
    elapsed_ms = int((time.monotonic() - started) * 1000)
    batch.elapsed_ms = elapsed_ms
    batch.save(update_fields=["elapsed_ms"])
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
            "createdEmployees": len(plan.created_employee_ids),
            "elapsedMs": elapsed_ms,
        },
    )
    answer = {"batchId": batch.pk, "stats": plan.stats, "rowCount": plan.source_rows}
    if options.return_items:
        answer["items"] = items
    return batch, answer


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
    fingerprint = None
    if options.idempotency_key:
        fingerprint = _fingerprint(_source_sha256(organisation, options), options.format, options)
        earlier = _earlier_answer(organisation, options, fingerprint)
        if earlier is not None:
            return _replayed(earlier)
    with transaction.atomic():
        if options.idempotency_key:
            _try_key_lock(organisation, options)
            # Another request may have finished between the read above and the lock.
            earlier = _earlier_answer(organisation, options, fingerprint)
            if earlier is not None:
                return _replayed(earlier)
        if not trusted_operator:
            _commit_token_consume(actor=actor, organisation=organisation, token=commit_token)
        with _open_source(organisation, options) as source:
            fmt = _detect(source, options)
            if not trusted_operator:
                _check_sync_size(_source_rows(source, fmt, _parse_options(organisation, options)))
            batch, answer = _run_commit(
                actor=actor,
                organisation=organisation,
                options=options,
                source=source,
                fmt=fmt,
                progress=progress,
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
                fingerprint=fingerprint,
                batch=batch,
                result=answer,
            )
    return answer


def _replayed(earlier: IdempotencyKey) -> dict:
    if earlier.result is not None:
        return {**earlier.result, "idempotent": True}
    return {**(earlier.job.result or {}), "idempotent": True}


@dataclass(frozen=True)
class QueuedCommit:
    """What ``commit-async`` answers: the job, or (``job`` None) the result of an earlier
    synchronous commit with the same idempotency key."""

    job: ImportJob | None
    idempotent: bool
    result: dict | None = None


def import_commit_async(
    *,
    actor,
    organisation: Organisation,
    options: ImportOptions,
    commit_token: str | None,
    trusted_operator: bool = False,
) -> QueuedCommit:
    """Queue a commit as a job. Inline text is stored as an upload first, so the job only
    ever reads a file. A key already used by a finished commit replays it: its job, or the
    synchronous commit's result."""
    fingerprint = None
    if options.idempotency_key:
        fingerprint = _fingerprint(_source_sha256(organisation, options), options.format, options)
        earlier = _earlier_answer(organisation, options, fingerprint)
        if earlier is not None:
            if earlier.job is not None:
                return QueuedCommit(job=earlier.job, idempotent=True)
            return QueuedCommit(job=None, idempotent=True, result=_replayed(earlier))
    with transaction.atomic():
        if options.idempotency_key:
            _try_key_lock(organisation, options)
        if not trusted_operator:
            _commit_token_consume(actor=actor, organisation=organisation, token=commit_token)
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
                fingerprint=fingerprint,
                job=job,
            )
        audit_record(
            actor=actor,
            action="imports.job.queued",
            organisation=organisation,
            target=job,
            data={"kind": job.kind, "fileId": str(upload.pk), "rowCount": upload.row_count},
        )
        transaction.on_commit(lambda: _enqueue(job))
    return QueuedCommit(job=job, idempotent=False)


def _enqueue(job: ImportJob) -> None:
    from imports.tasks import run_import_job

    run_import_job.apply_async(args=[str(job.pk)], queue=settings.IMPORT_TASK_QUEUE)


def _job_lock(job_id) -> int:
    return _advisory_lock_id(f"import-job:{job_id}")


def import_job_run(*, job_id) -> ImportJob:
    """The worker's body, idempotent by job: a job that already succeeded is not run again,
    and a second delivery of a running job waits for the first and then finds it done."""
    job = ImportJob.objects.select_related("organisation", "created_by").get(pk=job_id)
    if job.status in (ImportJob.Status.SUCCEEDED, ImportJob.Status.CANCELLED):
        return job
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.RUNNING,
        attempts=job.attempts + 1,
        started_at=job.started_at or timezone.now(),
    )
    progress = ProgressWriter(job.pk)
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_job_lock(job.pk)])
            job.refresh_from_db()
            if job.status == ImportJob.Status.SUCCEEDED:
                return job
            if job.kind == ImportJob.Kind.ROLLBACK:
                result = import_rollback(
                    actor=job.created_by,
                    organisation=job.organisation,
                    batch_id=job.params["batch_id"],
                    allow_async=False,
                )
                batch_id = result["batchId"]
            else:
                options = ImportOptions.from_params(job.params)
                with _open_source(job.organisation, options) as source:
                    fmt = _detect(source, options)
                    batch, result = _run_commit(
                        actor=job.created_by,
                        organisation=job.organisation,
                        options=options,
                        source=source,
                        fmt=fmt,
                        progress=progress,
                    )
                batch_id = batch.pk
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
    except ApplicationError as exc:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.FAILED,
            error={"code": exc.code, "message": exc.message, "details": exc.details},
            finished_at=timezone.now(),
        )
    finally:
        progress.close()
    job.refresh_from_db()
    return job


def import_job_fail(*, job_id, message: str) -> None:
    """Called when the task gives up on an unexpected error (after its retries)."""
    ImportJob.objects.filter(pk=job_id).exclude(status=ImportJob.Status.SUCCEEDED).update(
        status=ImportJob.Status.FAILED,
        error={"code": "INTERNAL_ERROR", "message": message},
        finished_at=timezone.now(),
    )


# --- rollback -------------------------------------------------------------------------------


def import_rollback(
    *, actor, organisation: Organisation, batch_id: int, allow_async: bool = True
) -> dict | ImportJob:
    """Restore exactly what a batch replaced: delete the days it inserted, put back the
    values of the days it updated, remove the punches and the (now unused) employees it
    created. Refused when a later write touched one of those days. Large batches become a
    job when ``allow_async``; the job calls this again without it."""
    with transaction.atomic():
        batch = (
            ImportBatch.objects.select_for_update()
            .filter(organisation=organisation, pk=batch_id)
            .first()
        )
        if batch is None:
            raise NotFound("No such batch in your organisation.")
        if batch.status == ImportBatch.Status.ROLLED_BACK:
            raise AlreadyRolledBack(details={"rolledBackAt": batch.rolled_back_at.isoformat()})
        applied = batch.stats.get("insert", 0) + batch.stats.get("update", 0)
        if allow_async and applied > settings.IMPORT_ASYNC_ROLLBACK_ROWS:
            job = ImportJob.objects.filter(
                kind=ImportJob.Kind.ROLLBACK,
                params__batch_id=batch.pk,
                status__in=(ImportJob.Status.QUEUED, ImportJob.Status.RUNNING),
            ).first()
            if job is None:
                job = ImportJob.objects.create(
                    organisation=organisation,
                    created_by=actor if getattr(actor, "pk", None) else None,
                    kind=ImportJob.Kind.ROLLBACK,
                    params={"batch_id": batch.pk},
                    total=applied,
                )
                transaction.on_commit(lambda: _enqueue(job))
            return job
        with connection.cursor() as cursor:
            params = {"batch": batch.pk, "applied_at": batch.applied_at}
            cursor.execute(
                """
                SELECT i.work_date, e.employee_no, a.source, a.batch_id
                FROM imports_importitem i
                JOIN attendance_attendancerecord a
                  ON a.employee_id = i.employee_id AND a.work_date = i.work_date
                JOIN attendance_employee e ON e.id = a.employee_id
                WHERE i.batch_id = %(batch)s AND i.action IN ('inserted', 'updated')
                  AND (a.batch_id IS DISTINCT FROM %(batch)s
                       OR a.updated_at IS DISTINCT FROM %(applied_at)s)
                ORDER BY i.row LIMIT 20
                """,
                params,
            )
            conflicts = cursor.fetchall()
            if conflicts:
                raise RollbackConflict(
                    details={
                        "conflicts": [
                            {
                                "employeeNo": employee_no,
                                "workDate": work_date.isoformat(),
                                "source": source,
                                "batchId": other_batch,
                            }
                            for work_date, employee_no, source, other_batch in conflicts
                        ]
                    }
                )
            cursor.execute(
                """
                DELETE FROM attendance_attendancerecord a USING imports_importitem i
                WHERE i.batch_id = %(batch)s AND i.action = 'inserted'
                  AND a.employee_id = i.employee_id AND a.work_date = i.work_date
                  AND a.batch_id = %(batch)s
                """,
                params,
            )
            deleted = cursor.rowcount
            cursor.execute(
                """
                UPDATE attendance_attendancerecord a SET
                    first_in = i.prior_first_in, last_out = i.prior_last_out,
                    work_minutes = i.prior_work_minutes, late_minutes = i.prior_late_minutes,
                    early_leave_minutes = i.prior_early_leave_minutes,
                    status = i.prior_status, source = i.prior_source,
                    batch_id = i.prior_batch_id, note = i.prior_note,
                    updated_at = i.prior_updated_at
                FROM imports_importitem i
                WHERE i.batch_id = %(batch)s AND i.action = 'updated'
                  AND a.employee_id = i.employee_id AND a.work_date = i.work_date
                """,
                params,
            )
            restored = cursor.rowcount
            cursor.execute("DELETE FROM attendance_punch WHERE batch_id = %(batch)s", params)
            punches_deleted = cursor.rowcount
            employees_deleted = _delete_unused_created_employees(cursor, batch)
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
    return {
        "batchId": batch.pk,
        "status": batch.status,
        "restored": restored,
        "deleted": deleted,
    }


def _delete_unused_created_employees(cursor, batch: ImportBatch) -> int:
    if not batch.created_employee_ids:
        return 0
    cursor.execute(
        """
        DELETE FROM attendance_employee e
        WHERE e.id = ANY(%(ids)s) AND e.user_id IS NULL
          AND NOT EXISTS (SELECT 1 FROM attendance_attendancerecord a WHERE a.employee_id = e.id)
          AND NOT EXISTS (SELECT 1 FROM attendance_punch p WHERE p.employee_id = e.id)
          AND NOT EXISTS (SELECT 1 FROM attendance_adjustmentrequest r
                          WHERE r.employee_id = e.id)
          AND NOT EXISTS (SELECT 1 FROM attendance_employee x WHERE x.approver_id = e.id)
        """,
        {"ids": batch.created_employee_ids},
    )
    return cursor.rowcount
