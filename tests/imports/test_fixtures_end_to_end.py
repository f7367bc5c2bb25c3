"""Every fixture file, uploaded and committed through the API, gives exactly its
``expected_*.json``: every field of every day record."""

from __future__ import annotations

import zoneinfo

import pytest
from django.db.models import Count

from attendance.models import AttendanceRecord, Employee, Punch
from imports.models import ImportItem
from tests.imports.conftest import FIXTURES, REAL_FIXTURES, commit, expected, upload

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def _iso(moment):
    return moment.astimezone(SHANGHAI).isoformat() if moment else None


def _records(organisation, *, daily: bool) -> list[dict]:
    rows = []
    records = AttendanceRecord.objects.filter(organisation=organisation).select_related("employee")
    for record in records:
        row = {
            "employee": record.employee.employee_no,
            "workDate": record.work_date.isoformat(),
            "firstIn": _iso(record.first_in),
            "lastOut": _iso(record.last_out),
        }
        if daily:
            row |= {
                "name": record.employee.name,
                "workMinutes": record.work_minutes,
                "status": record.status,
                "lateMinutes": record.late_minutes,
            }
        rows.append(row)
    return sorted(rows, key=lambda row: (row["workDate"], row["employee"]))


def _sorted(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda row: (row["workDate"], row["employee"]))


@pytest.mark.parametrize(
    "filename, encoding",
    [
        ("dingtalk_daily.xlsx", ""),
        ("dingtalk_daily_utf8bom.csv", "utf-8-sig"),
        ("dingtalk_daily_gbk.csv", "gb18030"),
    ],
)
def test_dingtalk_daily_files_import_to_exactly_the_expected_days(
    filename, encoding, organisation, people, api
):
    client = api(people["importer"])
    uploaded = upload(client, (FIXTURES / filename).read_bytes(), filename)
    assert uploaded["format"] == "dingtalk_daily"
    assert uploaded["encoding"] == encoding
    assert uploaded["rowCount"] == 620

    result = commit(client, {"fileId": uploaded["fileId"], "createMissingEmployees": True})

    want = _sorted(expected("expected_daily.json"))
    assert result["stats"] == {
        "insert": 620,
        "update": 0,
        "unchanged": 0,
        "skip": 0,
        "invalid": 0,
        "duplicate": 0,
    }
    assert _records(organisation, daily=True) == want


def test_dingtalk_raw_punches_fold_into_the_expected_days(organisation, people, api):
    client = api(people["importer"])
    uploaded = upload(client, (FIXTURES / "dingtalk_raw.xlsx").read_bytes(), "raw.xlsx")
    assert uploaded["format"] == "dingtalk_raw"

    result = commit(client, {"fileId": uploaded["fileId"], "createMissingEmployees": True})

    want = _sorted(expected("expected_raw.json"))
    assert _records(organisation, daily=False) == want
    assert result["stats"]["insert"] == len(want)
    # 打卡无效 rows are dropped and counted, never folded into a day.
    assert result["stats"]["skip"] > 0
    assert Punch.objects.filter(organisation=organisation, batch_id=result["batchId"]).exists()


def test_device_log_matches_people_by_pin_and_folds_60_seconds(organisation, people, api):
    pins = sorted({row["employee"] for row in expected("expected_attlog.json")})
    for number, pin in enumerate(pins):
        Employee.objects.create(
            organisation=organisation, employee_no=f"D{number:03d}", name=pin, device_pin=pin
        )
    client = api(people["importer"])
    uploaded = upload(client, (FIXTURES / "attlog.dat").read_bytes(), "attlog.dat")
    assert uploaded["format"] == "zkteco_attlog"
    assert uploaded["rowCount"] == 764

    commit(client, {"fileId": uploaded["fileId"]})

    by_pin = {
        employee.employee_no: employee.device_pin
        for employee in Employee.objects.filter(organisation=organisation)
    }
    got = [
        {**row, "employee": by_pin[row["employee"]]} for row in _records(organisation, daily=False)
    ]
    assert _sorted(got) == _sorted(expected("expected_attlog.json"))


def test_the_real_device_log_imports_every_punch(organisation, people, api):
    path = REAL_FIXTURES / "zkteco_caoka_1_attlog.dat"
    if not path.exists():
        pytest.skip(
            f"{path} is absent: the real device log is read from the shared fixtures folder "
            "next to the project and is not copied into it (FORMATS.md)."
        )
    content = path.read_bytes()
    client = api(people["importer"])
    uploaded = upload(client, content, path.name)
    assert uploaded["format"] == "zkteco_attlog"
    # 10,942 newline-terminated lines and a last line without one.
    assert uploaded["rowCount"] == 10_943

    result = commit(client, {"fileId": uploaded["fileId"], "createMissingEmployees": True})

    stats = result["stats"]
    # Damaged records the device wrote: 2047-02-30 dates, control-byte and blank PINs,
    # dates decades ahead. Each is reported, none is imported.
    assert stats["invalid"] == 349
    errors = ImportItem.objects.filter(batch_id=result["batchId"], action="invalid")
    assert dict(errors.values_list("code").annotate(n=Count("id")).order_by()) == {
        "INVALID_DATE": 329,
        "INVALID_VALUE": 12,
        "FUTURE_DATE": 5,
        "MISSING_EMPLOYEE": 3,
    }
    # Every line is accounted for: a stored punch, the same punch again, or an error.
    stored = Punch.objects.filter(batch_id=result["batchId"]).count()
    assert stored + stats["duplicate"] + stats["invalid"] + stats["skip"] == 10_943
    assert stats["insert"] == AttendanceRecord.objects.filter(organisation=organisation).count()
    assert stats["insert"] > 1000
