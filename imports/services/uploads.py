"""Uploads: private storage (size limit while streaming, SHA-256), the one read that detects
the format and keeps the parsed rows, expiry and the hourly purge; and opening the file a
preview or commit reads."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import uuid
import zoneinfo
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.db import ProgrammingError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext

from attendance.models import Organisation
from audit.services import audit_record
from common.exceptions import ApplicationError, NotFound, ValidationFailed
from imports import formats
from imports import metrics as import_metrics
from imports.filenames import clean_filename
from imports.formats.base import EmptyFile, ImportFormat, ParseOptions, UnsupportedFormat
from imports.formats.reading import open_table
from imports.formats.xlsx import FROM_SETTINGS
from imports.models import ImportJob, ImportUpload
from imports.services.errors import UploadExpired, UploadTooLarge
from imports.services.options import ImportOptions, Source
from imports.staging import (
    create_stage_table,
    drop_stage_table,
    fill_stage_table,
    upload_stage_name,
)

logger = logging.getLogger(__name__)


def storage_dir() -> Path:
    directory = Path(settings.IMPORT_STORAGE_DIR)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory


def write_stream(chunks: Iterator[bytes], target: Path) -> tuple[int, str]:
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
                        gettext("The file is larger than the upload limit of %(limit)s bytes.")
                        % {"limit": limit},
                        details={"maxBytes": limit},
                    )
                digest.update(chunk)
                handle.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


def detect_format(source: Source, options: ImportOptions) -> ImportFormat:
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
                gettext(
                    "This file is not in the %(label)s format (%(name)s): its columns do not "
                    "match. Choose another format, or map your column names to this one's."
                )
                % {"label": fmt.label, "name": fmt.name}
            )
        return fmt
    return formats.detect_format(table, mapping=options.mapping or None)


def parse_options(organisation: Organisation, options: ImportOptions) -> ParseOptions:
    name = options.time_zone or organisation.time_zone
    try:
        tz = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(
            fields={"timezone": [gettext('Unknown time zone "%(name)s".') % {"name": name}]}
        ) from exc
    return ParseOptions(
        time_zone=tz, today=timezone.now().astimezone(tz).date(), mapping=options.mapping
    )


@transaction.atomic
def upload_create(
    *,
    actor,
    organisation: Organisation,
    filename: str,
    chunks: Iterator[bytes],
    max_parse_seconds=FROM_SETTINGS,
) -> ImportUpload:
    """Store an upload privately, then read it once: container, encoding, format, rows."""
    # The client's name is shown and stored, never trusted: no NUL (PostgreSQL refuses it in
    # text), no control or bidi characters, no path.
    filename = clean_filename(filename or "")
    upload_id = uuid.uuid4()
    storage_name = f"{organisation.pk}/{upload_id}"
    path = storage_dir() / storage_name
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    size, sha256 = write_stream(chunks, path)
    try:
        if size == 0:
            raise EmptyFile(gettext("The file is empty."))
        table = open_table(path, filename=filename, max_parse_seconds=max_parse_seconds)
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
                    raise EmptyFile(gettext("The file has a header but no data rows."))
        upload = ImportUpload.objects.create(
            id=upload_id,
            organisation=organisation,
            uploaded_by=actor if getattr(actor, "pk", None) else None,
            filename=filename,
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
        transaction.on_commit(lambda: import_metrics.upload_stored(detected, size))
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


def _busy_uploads():
    """Uploads a queued or running job still reads: expiry and the purge both wait for it.
    (Rollback jobs have no upload: without the NULL filter, NOT IN over a set holding NULL
    would match nothing.)"""
    return ImportJob.objects.filter(
        status__in=(ImportJob.Status.QUEUED, ImportJob.Status.RUNNING), upload__isnull=False
    ).values("upload_id")


def upload_get(
    *, organisation: Organisation, file_id, job: ImportJob | None = None
) -> ImportUpload:
    """An upload of the organisation that has not expired; for the ``job`` that reads it, the
    upload stays valid past its expiry (the purge keeps it too, until the job ends)."""
    upload = ImportUpload.objects.filter(organisation=organisation, pk=file_id).first()
    if upload is None:
        raise NotFound(gettext("No such upload in your organisation."))
    if upload.expires_at <= timezone.now() and (job is None or job.upload_id != upload.pk):
        raise UploadExpired(details={"expiredAt": upload.expires_at.isoformat()})
    return upload


def purge_expired_uploads(*, now: dt.datetime | None = None) -> int:
    """Delete expired uploads and their files (beat, hourly). Uploads a queued or running
    job still needs are kept until it ends."""
    now = now or timezone.now()
    expired = ImportUpload.objects.filter(expires_at__lte=now).exclude(pk__in=_busy_uploads())
    removed: Counter[int] = Counter()
    organisations = {}
    for upload in expired.select_related("organisation").iterator():
        with transaction.atomic(), connection.cursor() as cursor:
            if upload.stage_table:
                drop_stage_table(cursor, upload.stage_table)
            upload.delete()
        (storage_dir() / upload.storage_name).unlink(missing_ok=True)
        removed[upload.organisation_id] += 1
        organisations[upload.organisation_id] = upload.organisation
    _drop_orphan_stage_tables()
    for organisation_id, count in removed.items():
        # One summary event per organisation and run (bulk work logs once, not per row).
        audit_record(
            actor=None,
            action="imports.uploads.purged",
            organisation=organisations[organisation_id],
            data={"removed": count, "expiredBefore": now.isoformat()},
        )
    total = sum(removed.values())
    if total:
        logger.info("Purged %s expired uploads", total)
    return total


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
def open_source(
    organisation: Organisation,
    options: ImportOptions,
    *,
    job: ImportJob | None = None,
    unbounded: bool = False,
) -> Iterator[Source]:
    """The file a preview or commit reads. A ``job`` may read its upload past its expiry;
    a job or an ``unbounded`` caller (manage.py) reads a workbook without the web's time
    bound."""
    max_parse_seconds = None if (job is not None or unbounded) else FROM_SETTINGS
    if options.file_id:
        upload = upload_get(organisation=organisation, file_id=options.file_id, job=job)
        path = storage_dir() / upload.storage_name
        source = Source(
            path=path,
            filename=upload.filename,
            sha256=upload.sha256,
            upload=upload,
            temporary=False,
            max_parse_seconds=max_parse_seconds,
        )
    elif options.csv_text is not None:
        text = options.csv_text.encode("utf-8")
        if not text.strip():
            raise EmptyFile(gettext("csvText is empty."))
        path = storage_dir() / "tmp" / f"{uuid.uuid4()}.csv"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _size, sha256 = write_stream(iter([text]), path)
        try:
            table = open_table(path, filename="inline.csv")
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        source = Source(path, "inline.csv", sha256, None, temporary=True, _table=table)
    else:
        raise ValidationFailed(fields={"fileId": [gettext("Give fileId or csvText.")]})
    try:
        yield source
    finally:
        source.close()
