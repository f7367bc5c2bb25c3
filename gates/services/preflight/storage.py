"""Upload storage: IMPORT_STORAGE_DIR can be created and written as the application does, and
its volume has room for the largest allowed upload (IMPORT_UPLOAD_MAX_BYTES)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext as _

from gates.services.runs import CheckFailed, GateContext


def probe_storage_writable():
    from imports.services.uploads import storage_dir

    evidence = {"directory": str(settings.IMPORT_STORAGE_DIR)}
    try:
        directory = storage_dir()  # created as the application creates it
        with tempfile.NamedTemporaryFile(
            dir=directory, prefix=".preflight-", delete=False
        ) as probe:
            probe.write(b"preflight\n")
            probe.flush()
            os.fsync(probe.fileno())
        written = Path(probe.name)
        written.unlink()
    except OSError as exc:
        raise CheckFailed(
            _("%(directory)s is not writable: %(error)s")
            % {"directory": settings.IMPORT_STORAGE_DIR, "error": f"{type(exc).__name__}: {exc}"},
            evidence=evidence,
        ) from exc
    if written.exists():
        raise CheckFailed(_("a file written there could not be deleted"), evidence=evidence)
    return _("created and deleted a file in %(directory)s") % {"directory": directory}, evidence


def probe_storage_space(ctx: GateContext):
    directory = Path(settings.IMPORT_STORAGE_DIR)
    measured = directory
    while not measured.exists() and measured != measured.parent:
        measured = measured.parent  # not created yet: the volume it would be created on
    usage = shutil.disk_usage(measured)
    limit = settings.IMPORT_UPLOAD_MAX_BYTES
    ctx.figures["freeBytes"] = usage.free
    ctx.figures["uploadMaxBytes"] = limit
    evidence = {
        "directory": str(directory),
        "measuredAt": str(measured),
        "freeBytes": usage.free,
        "totalBytes": usage.total,
        "uploadMaxBytes": limit,
    }
    if usage.free < limit:
        raise CheckFailed(
            _(
                "%(free)s bytes free on %(path)s, less than the largest allowed upload "
                "(IMPORT_UPLOAD_MAX_BYTES %(limit)s)"
            )
            % {"free": usage.free, "path": measured, "limit": limit},
            evidence=evidence,
        )
    return _("%(free)s bytes free, the largest upload is %(limit)s") % {
        "free": usage.free,
        "limit": limit,
    }, evidence
