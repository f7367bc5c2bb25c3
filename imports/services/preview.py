"""Preview: the commit's own engine on the file, in a transaction that is always rolled
back, so preview and commit cannot disagree; and the errors of a preview as a CSV file."""

from __future__ import annotations

import contextlib
import itertools
import tempfile
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection, transaction
from django.utils.translation import gettext

from attendance.models import Organisation
from common.csv_export import BOM
from imports import metrics
from imports.formats.base import ImportFormat, ParseOptions
from imports.services.errors import ImportTooLargeForSync
from imports.services.options import ImportOptions, Source
from imports.services.uploads import detect_format, open_source, parse_options, storage_dir
from imports.staging import ImportEngine, staged_rows_present


def check_sync_size(rows: int) -> None:
    limit = settings.IMPORT_SYNC_MAX_ROWS
    if rows > limit:
        raise ImportTooLargeForSync(
            gettext(
                "%(rows)s rows is more than the synchronous limit of %(limit)s; upload the file "
                "and use commit-async."
            )
            % {"rows": rows, "limit": limit},
            details={"rowCount": rows, "syncMaxRows": limit},
        )


def stage_rows(
    engine: ImportEngine,
    source: Source,
    parsing: ParseOptions,
    on_row: Callable[[int], None] | None = None,
) -> None:
    """Plan from the rows the upload parsed when they answer this request (same format, no
    mapping, same time zone and the same "today" for future dates), else read the file."""
    upload = source.upload
    if (
        upload is not None
        and upload.stage_table
        and upload.format == engine.fmt.name
        and not parsing.mapping
        and upload.staged_time_zone == parsing.time_zone.key
        and upload.staged_on == parsing.today
        and staged_rows_present(engine.cursor, upload.stage_table)
    ):
        engine.use_staged(upload.stage_table, upload.row_count)
    else:
        engine.stage(source.table, parsing, on_row=on_row)


@contextlib.contextmanager
def rolled_back_plan(organisation: Organisation, options: ImportOptions):
    """Stage and plan a file in a transaction that is always rolled back, yielding the
    engine and its plan: what a commit would do, without doing it (employees it would
    create are counted, not kept)."""
    with open_source(organisation, options) as source:
        fmt = detect_format(source, options)
        parsing = parse_options(organisation, options)
        if source.upload is None:
            # Inline text is parsed in the request: the sync limit applies. A stored upload
            # may be previewed at any size.
            check_sync_size(source_rows(source, fmt, parsing))
        with transaction.atomic():
            with connection.cursor() as cursor:
                engine = ImportEngine(cursor, organisation=organisation, fmt=fmt, mode=options.mode)
                stage_rows(engine, source, parsing)
                plan = engine.plan(create_missing=options.create_missing_employees)
                yield engine, plan
            transaction.set_rollback(True)


def import_preview(*, actor, organisation: Organisation, options: ImportOptions) -> dict:
    """Everything a commit would do, computed by the commit's own engine."""
    started = time.monotonic()
    with rolled_back_plan(organisation, options) as (engine, plan):
        items = engine.preview_items(options.preview_limit)
        errors = engine.issues(settings.IMPORT_ERRORS_LIMIT)
        errors_by_code = engine.issue_counts()
    errors_total = sum(group["count"] for group in errors_by_code)
    metrics.phase_finished(engine.fmt.name, "preview", time.monotonic() - started)
    return {
        "format": engine.fmt.name,
        "rowCount": plan.source_rows,
        "dayCount": plan.day_rows,
        "stats": plan.stats,
        "employeesToCreate": len(plan.created_employee_ids),
        "items": items,
        "errors": errors,
        "errorsTotal": errors_total,
        "errorsByCode": errors_by_code,
        "truncated": plan.source_rows > len(items) or errors_total > len(errors),
    }


def preview_errors_csv(*, actor, organisation: Organisation, options: ImportOptions):
    """Every error of a preview as a CSV file (BOM, header, formulas neutralised), for the
    download large files need. PostgreSQL writes it into a temporary file while the plan's
    transaction is open; the response streams the file after that transaction has been
    rolled back, so memory stays flat however many errors there are."""
    spool_dir = storage_dir() / "tmp"
    spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Closed by the response once streamed (or below on failure), not by a with block.
    spool = tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115
    try:
        spool.write(BOM.encode("utf-8"))
        with (
            rolled_back_plan(organisation, options) as (engine, _plan),
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


def source_rows(source: Source, fmt: ImportFormat, parsing: ParseOptions) -> int:
    """The file's row count as ``fmt`` reads it: the upload's own count when it was detected
    as that format, else counted by parsing, stopping just past the sync limit (all that
    the limit check needs)."""
    upload = source.upload
    if upload is not None and upload.format == fmt.name and not parsing.mapping:
        return upload.row_count
    stop = settings.IMPORT_SYNC_MAX_ROWS + 1
    return sum(1 for _ in itertools.islice(fmt.parse(source.table, parsing), stop))
