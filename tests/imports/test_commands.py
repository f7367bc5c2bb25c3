"""manage.py import_attendance and rollback_import: thin wrappers over the same services."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command

from attendance.models import AttendanceRecord
from imports.models import ImportBatch
from tests.imports.conftest import FIXTURES

PERCENT = re.compile(r"\]\s*(\d+\.\d)%")  # the progress bar's "[###---]  54.9%"


def _run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_import_then_rollback_from_the_shell(organisation, people, settings):
    # Chunks of 100 rows: the 620-row file reports progress after each one, not only at the
    # end (the bar's first report is never throttled).
    settings.IMPORT_CHUNK_ROWS = 100
    path = FIXTURES / "dingtalk_daily_gbk.csv"
    dry_out, _ = _run(
        "import_attendance",
        str(path),
        "--org",
        organisation.slug,
        "--dry-run",
        "--create-missing-employees",
    )
    assert "insert=620" in dry_out
    assert not AttendanceRecord.objects.filter(organisation=organisation).exists()

    out, err = _run(
        "import_attendance",
        str(path),
        "--org",
        organisation.slug,
        "--create-missing-employees",
    )
    batch_id = int(out.strip().splitlines()[-1])
    assert "format dingtalk_daily" in err
    percents = [float(value) for value in PERCENT.findall(err)]
    assert percents[-1] == 100.0
    # Printed during the run: a share between the staging half and the end.
    assert any(50.0 < value < 100.0 for value in percents[:-1]), err
    assert percents == sorted(percents)
    assert ImportBatch.objects.get(pk=batch_id).stats["insert"] == 620
    assert AttendanceRecord.objects.filter(organisation=organisation).count() == 620

    out, _ = _run("rollback_import", str(batch_id))
    assert "620 deleted" in out
    assert not AttendanceRecord.objects.filter(organisation=organisation).exists()
    with pytest.raises(CommandError, match="ALREADY_ROLLED_BACK"):
        _run("rollback_import", str(batch_id))


def test_bad_files_and_names_are_command_errors(organisation, tmp_path):
    binary = tmp_path / "x.xls"
    binary.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)
    with pytest.raises(CommandError, match="UNSUPPORTED_FORMAT"):
        _run("import_attendance", str(binary), "--org", organisation.slug)
    with pytest.raises(CommandError, match="No organisation"):
        _run("import_attendance", str(binary), "--org", "nope")
    with pytest.raises(CommandError, match="No batch"):
        _run("rollback_import", "999999")
