"""The import pipeline's own series (exported at /metrics).

Each is counted where its event really happens: rows and the commit's duration when the
commit's transaction commits (a commit rolled back later imported nothing), a failure when
a commit is refused or its job fails, a preview's duration when its plan is done, a
rollback's when its transaction commits.

A job runs in a Celery worker, so what a job counts lives in the worker's process: it
reaches the web's /metrics only with prometheus_client's multiprocess mode (a
PROMETHEUS_MULTIPROC_DIR shared by the web and the worker), which is issue 11's work.
Without it every web process still declares these families (their ``# HELP``/``# TYPE``
lines) and counts its own synchronous commits, previews and rollbacks.
"""

from __future__ import annotations

import functools
import logging

from prometheus_client import Counter, Histogram

logger = logging.getLogger(__name__)

UNKNOWN_FORMAT = "unknown"

IMPORT_ROWS = Counter(
    "attendance_import_rows_total",
    "Rows of committed imports, by format and by what the import did with them",
    ["format", "action"],
)
IMPORT_FAILURES = Counter(
    "attendance_import_failures_total",
    "Import commits refused or failed (synchronous, queued or as a job), by format and error code",
    ["format", "code"],
)
IMPORT_DURATION = Histogram(
    "attendance_import_duration_seconds",
    "Seconds an import phase took (preview, commit, rollback), by format",
    ["format", "phase"],
    # From a few rows previewed to half a million committed (~20 s) and far past it: the
    # AttendanceImportSlow alert reads the p95 of commits against 120 s.
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
)

UPLOAD_BYTES = Counter(
    "attendance_import_upload_bytes_total",
    "Bytes of stored uploads, by detected format",
    ["format"],
)


def upload_stored(format_name: str, size: int) -> None:
    UPLOAD_BYTES.labels(format=format_name or UNKNOWN_FORMAT).inc(size)


def import_committed(format_name: str, stats: dict, seconds: float) -> None:
    for action, count in stats.items():
        if isinstance(count, int) and count > 0:
            IMPORT_ROWS.labels(format=format_name, action=action).inc(count)
    IMPORT_DURATION.labels(format=format_name, phase="commit").observe(seconds)


def phase_finished(format_name: str, phase: str, seconds: float) -> None:
    IMPORT_DURATION.labels(format=format_name or UNKNOWN_FORMAT, phase=phase).observe(seconds)


def import_failed(format_name: str | None, code: str) -> None:
    IMPORT_FAILURES.labels(format=format_name or UNKNOWN_FORMAT, code=code).inc()


def failure_code(exc: Exception) -> str:
    """The code the client is (or would be) answered with for ``exc``."""
    from common.exceptions import as_application_error

    error = as_application_error(exc)
    return error.code if error is not None else "INTERNAL_ERROR"


def requested_format(options) -> str:
    """The format of a refused commit: the one the request named, else the one its upload
    was detected as (one query, on failure only), else ``unknown``."""
    if options.format:
        return options.format
    if options.file_id is None:
        return UNKNOWN_FORMAT
    from imports.models import ImportUpload

    try:
        detected = (
            ImportUpload.objects.filter(pk=options.file_id).values_list("format", flat=True).first()
        )
    except Exception:  # the database may be why the commit failed: the count still counts
        logger.debug("the format of upload %s could not be read", options.file_id)
        return UNKNOWN_FORMAT
    return detected or UNKNOWN_FORMAT


def failures_counted(commit):
    """Count a commit service's refusal or failure (the services take keyword arguments
    only, ``options`` among them), then let it go on to the client."""

    @functools.wraps(commit)
    def counted(**arguments):
        try:
            return commit(**arguments)
        except Exception as exc:
            import_failed(requested_format(arguments["options"]), failure_code(exc))
            raise

    return counted
