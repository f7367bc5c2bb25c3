"""Uploads cannot exhaust the web process: a workbook whose shared strings would inflate
past the bounds, hold too many strings or take too long to read is refused with
UNSUPPORTED_FORMAT before anything is kept; a file name is cleaned, and a NUL in it is a
VALIDATION_ERROR, never a database error.

The bombs are generated here, streamed into tmp_path: nothing big is committed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest

from audit.models import AuditEvent
from imports.filenames import clean_filename
from imports.formats import xlsx
from imports.models import ImportUpload
from tests.imports.conftest import FIXTURES, IMPORT_API, stored_files, upload
from tests.imports.test_reading import FakeClock, shared_strings_workbook
from tests.support import data, error

REPOSITORY = Path(__file__).resolve().parents[2]
SHARED_STRINGS_TYPE = (
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
)
MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
# One rich-text run of a string: openpyxl builds several objects for each.
RUN = '<r><rPr><b/><sz val="11"/><rFont val="宋体"/></rPr><t>{}</t></r>'

# --- generated workbooks --------------------------------------------------------------------


def shared_strings_bomb(path: Path, inflated: int = 157_000_000) -> Path:
    """The issue's file: tests/fixtures/dingtalk_daily.xlsx (a valid sheet of 620 rows),
    plus a registered shared strings part of ~157 MB that deflates to ~1.5 MB (a ratio of
    ~105, under the 200 a zip-bomb check refuses): 440,000 distinct strings of five
    rich-text runs each. Before it was bounded, reading it like an upload took 227 s on
    the development machine (its strings parsed three times)."""
    override = f'<Override PartName="/xl/sharedStrings.xml" ContentType="{SHARED_STRINGS_TYPE}"/>'
    runs = RUN.format("考勤") * 4
    with (
        zipfile.ZipFile(FIXTURES / "dingtalk_daily.xlsx") as source,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        for entry in source.infolist():
            content = source.read(entry)
            if entry.filename == "[Content_Types].xml":
                content = content.replace(b"</Types>", override.encode() + b"</Types>")
            archive.writestr(entry.filename, content)
        with archive.open("xl/sharedStrings.xml", "w") as part:
            written = part.write(f'<sst xmlns="{MAIN_NS}">'.encode())
            number = 0
            while written < inflated:
                chunk = "".join(
                    f"<si>{runs}{RUN.format(number + offset)}</si>" for offset in range(10_000)
                ).encode()
                number += 10_000
                written += part.write(chunk)
            part.write(b"</sst>")
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    return shared_strings_bomb(tmp_path_factory.mktemp("bomb") / "每日统计.xlsx")


def tiny_strings_bomb(path: Path, count: int) -> Path:
    """``count`` distinct short strings: a few MB, under the byte bound, past the count."""
    return shared_strings_workbook(
        path,
        (
            "".join(
                f"<si><t>{number}</t></si>" for number in range(start, min(count, start + 10_000))
            )
            for start in range(0, count, 10_000)
        ),
        sheet_data='<row r="1"><c r="A1" t="s"><v>0</v></c></row>',
    )


def test_the_bomb_is_what_the_issue_describes_and_passes_the_zip_checks(bomb):
    entry = zipfile.ZipFile(bomb).getinfo("xl/sharedStrings.xml")
    assert 150_000_000 < entry.file_size < 165_000_000
    assert bomb.stat().st_size < 1_700_000
    assert 90 < entry.file_size / entry.compress_size < xlsx.XLSX_MAX_COMPRESSION_RATIO
    xlsx.check_xlsx_archive(bomb)  # the zip-bomb checks alone let it through


# --- the web process ------------------------------------------------------------------------

# What an upload does with the file (open, detect, parse every row), in a process of its
# own so that its peak memory is its own: VmHWM is the resident set's high-water mark.
READ_LIKE_AN_UPLOAD = """
import datetime as dt, json, re, sys, time, zoneinfo
import django
django.setup()
from common.exceptions import ApplicationError
from imports import formats
from imports.formats.base import ParseOptions
from imports.formats.reading import open_table

def high_water_mb():
    status = open("/proc/self/status").read()
    return int(re.search(r"VmHWM:\\s+(\\d+)", status).group(1)) / 1024

before = high_water_mb()
started = time.monotonic()
try:
    table = open_table(sys.argv[1], filename="bomb.xlsx")
    fmt = formats.detect_format(table)
    options = ParseOptions(time_zone=zoneinfo.ZoneInfo("Asia/Shanghai"), today=dt.date.today())
    outcome = {"rows": sum(1 for _ in fmt.parse(table, options))}
except ApplicationError as refusal:
    outcome = {"code": refusal.code, "details": refusal.details}
outcome |= {
    "seconds": time.monotonic() - started,
    "before_mb": before,
    "peak_mb": high_water_mb(),
}
print(json.dumps(outcome))
"""


def read_in_a_process(path: Path) -> dict:
    # Reading needs no database: an unset DATABASE_URL must not start the embedded one.
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": os.environ.get("DATABASE_URL") or "postgres://unused@127.0.0.1:9/unused",
    }
    finished = subprocess.run(
        [sys.executable, "-c", READ_LIKE_AN_UPLOAD, str(path)],
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr
    return json.loads(finished.stdout.strip().splitlines()[-1])


def test_the_shared_strings_bomb_is_refused_quickly_in_little_memory(bomb):
    outcome = read_in_a_process(bomb)
    assert outcome["code"] == "UNSUPPORTED_FORMAT"
    assert outcome["details"]["limit"] == "IMPORT_XLSX_MAX_SHARED_STRINGS_BYTES"
    assert outcome["seconds"] < 5
    assert outcome["peak_mb"] < 300
    assert outcome["peak_mb"] - outcome["before_mb"] < 50


def test_a_normal_workbook_still_reads_in_a_process():
    """The same measurement is not vacuous: the fixture reads whole."""
    outcome = read_in_a_process(FIXTURES / "dingtalk_daily.xlsx")
    assert outcome["rows"] > 0
    assert outcome["peak_mb"] < 300


# --- through the API: refused, nothing kept -------------------------------------------------


def nothing_kept(settings) -> None:
    assert stored_files(settings) == []
    assert not ImportUpload.objects.exists()
    assert not AuditEvent.objects.filter(action="imports.upload.created").exists()


def test_the_bomb_upload_is_refused_before_anything_is_kept(client, settings, bomb):
    started = time.monotonic()
    response = upload(client, bomb.read_bytes(), "每日统计.xlsx", status=415)
    elapsed = time.monotonic() - started
    refusal = error(response, 415, "UNSUPPORTED_FORMAT")
    assert refusal["details"]["limit"] == "IMPORT_XLSX_MAX_SHARED_STRINGS_BYTES"
    assert "export the sheet as CSV, or split it" in refusal["message"]
    assert str(settings.IMPORT_STORAGE_DIR) not in refusal["message"]
    assert elapsed < 5
    nothing_kept(settings)


def test_a_workbook_of_too_many_tiny_strings_is_refused(client, settings, tmp_path):
    """With the bounds as configured: under the byte bound, past the count. The count is under
    test, not the parse time: a loaded machine reads a million strings slower than its bound."""
    settings.IMPORT_XLSX_MAX_PARSE_SECONDS = 600
    limits = xlsx.XlsxLimits.from_settings()
    path = tiny_strings_bomb(tmp_path / "f.xlsx", limits.shared_strings + 1)
    entry = zipfile.ZipFile(path).getinfo("xl/sharedStrings.xml")
    assert entry.file_size < limits.shared_strings_bytes
    assert entry.file_size / entry.compress_size < xlsx.XLSX_MAX_COMPRESSION_RATIO
    refusal = error(
        upload(client, path.read_bytes(), "f.xlsx", status=415), 415, "UNSUPPORTED_FORMAT"
    )
    assert refusal["details"] == {
        "limit": "IMPORT_XLSX_MAX_SHARED_STRINGS",
        "maxStrings": limits.shared_strings,
    }
    nothing_kept(settings)


def test_a_workbook_just_under_the_count_bound_is_read(client, settings, tmp_path):
    settings.IMPORT_XLSX_MAX_SHARED_STRINGS = 1000
    path = tiny_strings_bomb(tmp_path / "f.xlsx", 1000)
    uploaded = upload(client, path.read_bytes(), "f.xlsx")
    assert uploaded["container"] == "xlsx"


def test_a_read_past_the_parse_time_is_refused_and_its_staged_rows_dropped(
    client, settings, monkeypatch
):
    """The opening and the head are read in time; the parse that stages every row is not:
    the rows staged so far go with the refused upload's transaction."""
    settings.IMPORT_XLSX_MAX_PARSE_SECONDS = 1
    monkeypatch.setattr(xlsx, "_now", FakeClock(step=0.001))
    content = (FIXTURES / "dingtalk_daily.xlsx").read_bytes()
    refusal = error(upload(client, content, "daily.xlsx", status=415), 415, "UNSUPPORTED_FORMAT")
    assert refusal["details"] == {"limit": "IMPORT_XLSX_MAX_PARSE_SECONDS", "maxSeconds": 1}
    nothing_kept(settings)


def test_the_fixture_still_uploads_with_the_default_bounds(client):
    uploaded = upload(client, (FIXTURES / "dingtalk_daily.xlsx").read_bytes(), "daily.xlsx")
    assert (uploaded["container"], uploaded["format"]) == ("xlsx", "dingtalk_daily")


# --- file names -----------------------------------------------------------------------------

CSV = "employee_no,name,work_date,first_in,last_out,status\nE1,张三,2026-05-01,08:00,18:00,\n"


def upload_named(client, filename: str):
    return client.post(
        f"{IMPORT_API}/upload?filename={quote(filename)}",
        data=CSV.encode(),
        content_type="application/octet-stream",
    )


def test_a_nul_in_a_file_name_is_a_clean_400(client, settings):
    response = upload_named(client, "考勤\x00.csv")
    refusal = error(response, 400, "VALIDATION_ERROR")
    assert "filename" in refusal["details"]["fields"]
    nothing_kept(settings)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("考勤\x1b[31m.csv", "考勤[31m.csv"),
        ("report\u202egpj.csv", "reportgpj.csv"),
        ("../../etc/每日汇总.csv", "每日汇总.csv"),
        ("C:\\Users\\张三\\Desktop\\打卡.csv", "打卡.csv"),
        ("\r\n\t", "upload"),
    ],
)
def test_a_file_name_is_stored_and_audited_clean(client, sent, kept):
    uploaded = data(upload_named(client, sent), 201)
    stored = ImportUpload.objects.get(pk=uploaded["fileId"])
    event = AuditEvent.objects.get(action="imports.upload.created", target_id=str(stored.pk))
    assert stored.filename == event.data["filename"] == kept


@pytest.mark.parametrize(
    ("name", "cleaned"),
    [
        ("每日汇总 2026-05.xlsx", "每日汇总 2026-05.xlsx"),
        ("bad\x00name.csv", "badname.csv"),
        ("a\x01b\x1fc\x7fd\x85e.csv", "abcde.csv"),
        ("tab\there\nnew\rline.csv", "tabherenewline.csv"),
        ("invoice\u202excod.exe", "invoicexcod.exe"),
        ("\u2066iso\u2069\u200b\ufeff.csv", "iso.csv"),
        ("log\u2028line.csv", "logline.csv"),
        ("lone\udcffsurrogate.csv", "lonesurrogate.csv"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("dir/sub/", "sub"),
        ("..\x00/x.csv", "x.csv"),
        ("  \u3000 打卡记录.xlsx \t ", "打卡记录.xlsx"),
        ("", "upload"),
        ("   ", "upload"),
        ("\x00\x00", "upload"),
        ("../..", "upload"),
        (None, "upload"),
    ],
)
def test_clean_filename(name, cleaned):
    assert clean_filename(name) == cleaned
    assert clean_filename(cleaned) == cleaned


def test_a_long_file_name_keeps_its_extension():
    name = "考" * 300 + ".xlsx"
    cleaned = clean_filename(name)
    assert len(cleaned) == 255
    assert cleaned == "考" * 250 + ".xlsx"
    assert clean_filename("a" * 300) == "a" * 255
    # A "suffix" longer than an extension is cut like the rest of the name.
    assert clean_filename("a" * 200 + "." + "b" * 100) == ("a" * 200 + "." + "b" * 100)[:255]
    assert clean_filename("x" * 255) == "x" * 255
