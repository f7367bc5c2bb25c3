"""Rollback run as a job, the job's progress writer, the batch export's row selection, the
DingTalk template, matching by UserId, punch formats end to end, query counts, format
override and mapping, the command's options and the preview's errors CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
import zoneinfo

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from attendance import services as attendance_services
from attendance.models import AttendanceRecord, Employee, Punch
from audit.models import AuditEvent
from config.celery import app as celery_app
from imports import formats, services
from imports.models import ImportBatch, ImportJob, ImportUpload
from tests.imports.conftest import (
    FIXTURES,
    IMPORT_API,
    commit,
    day_record,
    expected,
    preview,
    record_snapshot,
    stored_files,
    upload,
)
from tests.support import client_for, data, error

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
BOM = b"\xef\xbb\xbf"
HEADER = "employee_no,name,work_date,first_in,last_out,status\n"


def standard_csv(*rows: str) -> str:
    return HEADER + "".join(f"{row}\n" for row in rows)


def _at(day: str, clock: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=SHANGHAI)


def _csv_download(response) -> tuple[bytes, list[list[str]]]:
    assert response.status_code == 200, response.content
    raw = b"".join(response.streaming_content)
    return raw, list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


@pytest.fixture
def staff(organisation):
    return [
        Employee.objects.create(organisation=organisation, employee_no=f"00{n}", name=f"S{n}")
        for n in range(1, 4)
    ]


# --- 1. rollback as a job -------------------------------------------------------------------


def _first_batch(client) -> dict:
    return commit(
        client,
        {
            "csvText": standard_csv(
                "001,S1,2026-05-04,08:50,17:00,", "002,S2,2026-05-04,09:00,18:00,"
            )
        },
    )


def _second_batch(client) -> dict:
    """Updates a day of the first batch, leaves one unchanged and inserts two."""
    return commit(
        client,
        {
            "csvText": standard_csv(
                "001,S1,2026-05-04,09:40,18:00,",  # update
                "002,S2,2026-05-04,09:00,18:00,",  # unchanged
                "003,S3,2026-05-04,09:00,18:00,",  # insert
                "003,S3,2026-05-05,09:00,18:00,",  # insert
            )
        },
    )


def test_a_rollback_job_restores_exactly_and_audits_once(
    organisation, people, staff, client, settings
):
    _first_batch(client)
    before = record_snapshot(organisation)
    second = _second_batch(client)
    batch_id = second["batchId"]
    assert (second["stats"]["update"], second["stats"]["insert"]) == (1, 2)
    settings.IMPORT_ASYNC_ROLLBACK_ROWS = 1

    queued = data(client.post(f"{IMPORT_API}/rollback/{batch_id}"), 202)["job"]

    assert (queued["kind"], queued["status"]) == ("rollback", "queued")
    # Queued only: nothing is undone until the job runs.
    assert ImportBatch.objects.get(pk=batch_id).status == "committed"
    assert record_snapshot(organisation) != before

    job = services.import_job_run(job_id=queued["id"])

    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert job.batch_id == batch_id
    assert job.result["batchId"] == batch_id
    assert (job.result["status"], job.result["restored"], job.result["deleted"]) == (
        "rolled_back",
        1,
        2,
    )
    assert record_snapshot(organisation) == before
    batch = ImportBatch.objects.get(pk=batch_id)
    assert batch.status == "rolled_back"
    assert batch.rolled_back_by_id == people["importer"].user_id
    events = AuditEvent.objects.filter(action="imports.batch.rolled_back", target_id=str(batch_id))
    assert events.count() == 1
    assert events.get().data["deleted"] == 2

    shown = data(client.get(f"{IMPORT_API}/jobs/{queued['id']}"))["job"]
    assert (shown["status"], shown["batchId"], shown["result"]["restored"]) == (
        "succeeded",
        batch_id,
        1,
    )
    # A second delivery of the task is a no-op.
    again = services.import_job_run(job_id=queued["id"])
    assert again.status == ImportJob.Status.SUCCEEDED and again.attempts == 1
    assert events.count() == 1
    error(client.post(f"{IMPORT_API}/rollback/{batch_id}"), 409, "ALREADY_ROLLED_BACK")


@pytest.mark.parametrize("later_write", ["later_batch", "manual_edit"])
def test_a_rollback_job_over_a_day_written_later_fails_and_changes_nothing(
    later_write, organisation, staff, client, settings
):
    _first_batch(client)
    second = _second_batch(client)
    if later_write == "later_batch":
        commit(client, {"csvText": standard_csv("003,S3,2026-05-05,10:00,18:00,")})
        touched = ("003", "2026-05-05")
    else:
        record = day_record(staff[0], "2026-05-04")
        record.note = "fixed by hand"
        record.save()
        touched = ("001", "2026-05-04")
    before = record_snapshot(organisation)
    settings.IMPORT_ASYNC_ROLLBACK_ROWS = 1
    queued = data(client.post(f"{IMPORT_API}/rollback/{second['batchId']}"), 202)["job"]

    job = services.import_job_run(job_id=queued["id"])

    assert job.status == ImportJob.Status.FAILED
    assert job.error["code"] == "ROLLBACK_CONFLICT"
    conflicts = {(c["employeeNo"], c["workDate"]) for c in job.error["details"]["conflicts"]}
    assert conflicts == {touched}
    assert job.result is None and job.finished_at is not None
    assert record_snapshot(organisation) == before
    assert ImportBatch.objects.get(pk=second["batchId"]).status == "committed"
    assert not AuditEvent.objects.filter(action="imports.batch.rolled_back").exists()
    shown = data(client.get(f"{IMPORT_API}/jobs/{queued['id']}"))["job"]
    assert shown["status"] == "failed" and shown["error"]["code"] == "ROLLBACK_CONFLICT"


# --- 2. the job's progress writer -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.django_db(transaction=True)
def test_the_pulse_writes_progress_at_most_once_per_interval_on_its_own_connection(
    organisation, monkeypatch
):
    job = ImportJob.objects.create(
        organisation=organisation, kind=ImportJob.Kind.COMMIT, status=ImportJob.Status.RUNNING
    )
    writes = []
    execute = services.JobPulse._execute

    def counted(self, sql, params):
        writes.append(params)
        return execute(self, sql, params)

    monkeypatch.setattr(services.JobPulse, "_execute", counted)
    pulse = services.JobPulse(job.pk, interval=0.5)
    pulse.start()

    def stored() -> tuple[int, int]:
        job.refresh_from_db()
        return job.processed, job.total

    try:
        with transaction.atomic():
            for processed in range(1, 20001):
                pulse(processed, 30000)
            # Its own connection commits: progress is visible while the job's transaction
            # is still open, and survives its rollback.
            deadline = time.monotonic() + 5
            while stored() != (20000, 30000) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert stored() == (20000, 30000)
            transaction.set_rollback(True)
        assert stored() == (20000, 30000)
        # Twenty thousand reports, a write or two: coalesced, at most one per interval.
        assert 1 <= len(writes) <= 2
        pulse(25000, 30000, force=True)
        deadline = time.monotonic() + 5
        while stored() != (25000, 30000) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stored() == (25000, 30000)
    finally:
        pulse.stop()
    job.refresh_from_db()
    assert job.heartbeat_at is not None


# --- 3. the batch export --------------------------------------------------------------------

EVIL_NAME = '=HYPERLINK("http://evil.example/","click")'


def test_batch_export_types_select_exactly_their_rows_and_neutralise_formulas(
    organisation, staff, client
):
    first = commit(
        client,
        {
            "csvText": standard_csv(
                "001,S1,2026-05-04,08:50,17:00,",  # early leave
                "002,S2,2026-05-04,09:20,18:00,",  # late
                f'777,"{EVIL_NAME.replace(chr(34), chr(34) * 2)}",2026-05-04,09:00,18:00,',
            ),
            "createMissingEmployees": True,
        },
    )
    assert Employee.objects.get(organisation=organisation, employee_no="777").name == EVIL_NAME
    assert first["stats"]["insert"] == 3
    batch = commit(
        client,
        {
            "csvText": standard_csv(
                "001,S1,2026-05-04,09:00,18:00,",  # 2 updated, normal
                "002,S2,2026-05-04,09:20,18:00,",  # 3 unchanged, late
                "003,S3,2026-05-04,09:30,18:00,",  # 4 inserted, late
                "777,X,2026-05-04,09:00,17:00,",  # 5 updated, early leave
                "-404,Nobody,2026-05-04,09:00,18:00,",  # 6 skipped: unknown employee
                "003,S3,2026-13-04,09:00,18:00,",  # 7 invalid date
                "003,S3,2026-05-04,09:00,18:00,",  # 8 duplicate of row 4
            )
        },
    )
    assert batch["stats"] == {
        "insert": 1,
        "update": 2,
        "unchanged": 1,
        "skip": 1,
        "invalid": 1,
        "duplicate": 1,
    }

    def export(kind: str) -> list[dict]:
        response = client.get(f"{IMPORT_API}/batches/{batch['batchId']}/export.csv?type={kind}")
        raw, rows = _csv_download(response)
        assert raw.startswith(BOM + b"row,action,code,column,message,employee_no,name,")
        return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]

    every = export("all")
    assert [(row["row"], row["action"]) for row in every] == [
        ("2", "updated"),
        ("3", "unchanged"),
        ("4", "inserted"),
        ("5", "updated"),
        ("6", "skipped"),
        ("7", "invalid"),
        ("8", "duplicate"),
    ]
    assert [row["row"] for row in export("imported")] == ["2", "4", "5"]
    skipped = export("skipped")
    assert [(row["row"], row["code"]) for row in skipped] == [
        ("6", "UNKNOWN_EMPLOYEE"),
        ("7", "INVALID_DATE"),
        ("8", "DUPLICATE_ROW"),
    ]
    anomalies = export("anomalies")
    assert [(row["row"], row["status"]) for row in anomalies] == [
        ("3", "late"),
        ("4", "late"),
        ("5", "early_leave"),
    ]
    by_row = {row["row"]: row for row in every}
    # A spreadsheet would run these as formulas: the export quotes them.
    assert by_row["5"]["name"] == "'" + EVIL_NAME
    assert by_row["6"]["employee_no"] == "'-404"
    assert by_row["2"]["prior_status"] == "early_leave" and by_row["2"]["status"] == "normal"
    assert by_row["4"]["first_in"] == "2026-05-04 09:30:00"


# --- 4 and 5. the DingTalk daily template and matching by UserId ----------------------------

DAILY_HEADER = formats.get_format("dingtalk_daily").template_rows()[0]


def daily_csv(*rows: dict[str, str], header: list[str] = DAILY_HEADER) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(column, "") for column in header])
    return BOM + buffer.getvalue().encode("utf-8")


def daily_row(**cells: str) -> dict[str, str]:
    return {
        "姓名": "王五",
        "工号": "00077",
        "UserId": "",
        "部门": "研发中心",
        "日期": "26-05-06 星期三",
        "班次": "普通出勤 08:30-18:00",
        "上班1打卡时间": "08:41",
        "上班1打卡结果": "迟到",
        "下班1打卡时间": "18:05",
        "下班1打卡结果": "正常",
        "迟到时长": "11",
        **cells,
    }


def test_the_dingtalk_daily_template_has_a_bom_and_its_header_is_read_back(
    organisation, people, client
):
    raw, rows = _csv_download(client.get(f"{IMPORT_API}/template?format=dingtalk_daily"))
    assert raw.startswith(BOM + "姓名,".encode())
    header = rows[0]
    assert {"日期", "工号", "UserId", "上班1打卡时间", "下班1打卡时间"} <= set(header)

    uploaded = upload(client, daily_csv(daily_row(), header=header), "template.csv")

    assert (uploaded["format"], uploaded["rowCount"]) == ("dingtalk_daily", 1)
    result = commit(client, {"fileId": uploaded["fileId"], "createMissingEmployees": True})
    assert result["stats"]["insert"] == 1
    day = day_record(
        Employee.objects.get(organisation=organisation, employee_no="00077"), "2026-05-06"
    )
    assert (day.first_in, day.last_out) == (_at("2026-05-06", "08:41"), _at("2026-05-06", "18:05"))
    assert (day.status, day.late_minutes, day.work_minutes) == ("late", 11, 564)


def test_an_empty_employee_number_matches_an_existing_employee_by_dingtalk_user_id(
    organisation, people, client
):
    known = Employee.objects.create(
        organisation=organisation, employee_no="E-9", name="王五", dingtalk_user_id="0123-4567"
    )
    employees = Employee.objects.filter(organisation=organisation).count()

    result = commit(
        client,
        {
            "csvText": daily_csv(daily_row(工号="", UserId="0123-4567")).decode("utf-8-sig"),
            "createMissingEmployees": True,
        },
    )

    assert result["stats"]["insert"] == 1
    assert day_record(known, "2026-05-06").batch_id == result["batchId"]
    assert Employee.objects.filter(organisation=organisation).count() == employees
    assert ImportBatch.objects.get(pk=result["batchId"]).created_employee_ids == []


def test_an_employee_created_from_a_row_without_number_takes_the_user_id(
    organisation, people, client
):
    result = commit(
        client,
        {
            "csvText": daily_csv(daily_row(工号="", UserId="154335349840-3301595691")).decode(
                "utf-8-sig"
            ),
            "createMissingEmployees": True,
        },
    )

    created = Employee.objects.get(
        pk__in=ImportBatch.objects.get(pk=result["batchId"]).created_employee_ids
    )
    assert (created.employee_no, created.dingtalk_user_id, created.name) == (
        "154335349840-3301595691",
        "154335349840-3301595691",
        "王五",
    )
    assert day_record(created, "2026-05-06").status == "late"


# --- 6. punch formats -----------------------------------------------------------------------


@pytest.fixture
def device_people(organisation):
    pins = sorted({row["employee"] for row in expected("expected_attlog.json")})
    return [
        Employee.objects.create(
            organisation=organisation, employee_no=f"D{number:03d}", name=pin, device_pin=pin
        )
        for number, pin in enumerate(pins)
    ]


def test_device_log_punches_belong_to_the_batch_and_rollback_removes_exactly_them(
    organisation, people, device_people, client
):
    web_punch, _record, _ = attendance_services.punch_create(
        actor=people["employee"].user,
        employee=people["employee"],
        kind="in",
        occurred_at=_at("2026-05-04", "08:55"),
    )
    content = (FIXTURES / "attlog.dat").read_bytes()
    uploaded = upload(client, content, "attlog.dat")

    first = commit(client, {"fileId": uploaded["fileId"]})

    days = len(expected("expected_attlog.json"))
    assert first["stats"]["insert"] == days
    imported = Punch.objects.filter(organisation=organisation).exclude(pk=web_punch.pk)
    assert imported.count() > days
    assert set(imported.values_list("batch_id", flat=True)) == {first["batchId"]}
    assert set(imported.values_list("source", flat=True)) == {"device"}
    # Every line is one stored punch or a duplicate of one (60 s window).
    assert imported.count() + first["stats"]["duplicate"] == uploaded["rowCount"]
    punch_count = imported.count()

    rolled_back = data(client.post(f"{IMPORT_API}/rollback/{first['batchId']}"))

    assert rolled_back["deleted"] == days
    assert list(Punch.objects.filter(organisation=organisation)) == [web_punch]
    assert list(AttendanceRecord.objects.filter(organisation=organisation)) == [
        day_record(people["employee"], "2026-05-04")
    ]
    rollback_stats = ImportBatch.objects.get(pk=first["batchId"]).rollback_stats
    assert rollback_stats["punchesDeleted"] == punch_count

    again = commit(client, {"fileId": uploaded["fileId"]})

    assert again["stats"] == first["stats"]
    assert Punch.objects.filter(batch_id=again["batchId"]).count() == punch_count
    assert AttendanceRecord.objects.filter(batch_id=again["batchId"]).count() == days


def test_preview_of_a_changed_device_log_counts_updates_and_unchanged_days(
    organisation, device_people, client
):
    content = (FIXTURES / "attlog.dat").read_bytes()
    first = commit(client, {"fileId": upload(client, content, "attlog.dat")["fileId"]})
    days = first["stats"]["insert"]
    person = Employee.objects.get(organisation=organisation, device_pin="700001")
    # One later punch moves that person's lastOut on 1 May; every other day is as before.
    changed = content + b"   700001\t2026-05-01 23:30:00\t1\t1\t15\t0\n"
    assert day_record(person, "2026-05-01").last_out == _at("2026-05-01", "19:18")

    body = preview(client, {"fileId": upload(client, changed, "attlog2.dat")["fileId"]})

    assert body["stats"]["update"] == 1
    assert body["stats"]["unchanged"] == days - 1
    assert body["stats"]["insert"] == 0
    assert day_record(person, "2026-05-01").last_out == _at("2026-05-01", "19:18")


# --- 7. query counts ------------------------------------------------------------------------


def _queries(employee, url: str) -> tuple[int, dict]:
    client = client_for(employee)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    return len(queries), data(response)


def _batches(organisation, people, count: int) -> list[ImportBatch]:
    return [
        ImportBatch.objects.create(
            organisation=organisation,
            created_by=people["importer"].user,
            rolled_back_by=people["admin"].user if number % 2 else None,
            format="standard",
            stats=dict.fromkeys(
                ("insert", "update", "unchanged", "skip", "invalid", "duplicate"), 0
            ),
        )
        for number in range(count)
    ]


def test_batch_list_queries_do_not_grow_with_the_number_of_batches(organisation, people):
    _batches(organisation, people, 2)
    small, small_body = _queries(people["importer"], f"{IMPORT_API}/batches")
    _batches(organisation, people, 18)
    large, large_body = _queries(people["importer"], f"{IMPORT_API}/batches")
    assert (small_body["total"], len(large_body["items"])) == (2, 20)
    assert {item["createdBy"] for item in large_body["items"]} == {"importer_user"}
    assert {item["rolledBackBy"] for item in large_body["items"]} == {"admin_user", None}
    assert small == large


def test_batch_item_queries_do_not_grow_with_the_number_of_items(organisation, people, client):
    def batch_of(rows: int) -> int:
        employees = [
            Employee.objects.create(organisation=organisation, employee_no=f"Q{rows}-{n}", name="Q")
            for n in range(rows)
        ]
        text = standard_csv(
            *(
                f"{e.employee_no},Q,2026-05-04,09:{n % 60:02d},18:00,"
                for n, e in enumerate(employees)
            )
        )
        return commit(client, {"csvText": text})["batchId"]

    small_batch, large_batch = batch_of(2), batch_of(20)
    small, small_body = _queries(people["importer"], f"{IMPORT_API}/batches/{small_batch}/items")
    large, large_body = _queries(people["importer"], f"{IMPORT_API}/batches/{large_batch}/items")
    assert (len(small_body["items"]), len(large_body["items"])) == (2, 20)
    assert small == large


def test_job_detail_queries_are_few_and_do_not_depend_on_the_job(organisation, people):
    batch = _batches(organisation, people, 1)[0]
    bare = ImportJob.objects.create(organisation=organisation, kind=ImportJob.Kind.COMMIT)
    done = ImportJob.objects.create(
        organisation=organisation,
        kind=ImportJob.Kind.ROLLBACK,
        created_by=people["importer"].user,
        status=ImportJob.Status.SUCCEEDED,
        batch=batch,
        result={"batchId": batch.pk},
    )
    first, first_body = _queries(people["importer"], f"{IMPORT_API}/jobs/{bare.pk}")
    second, second_body = _queries(people["importer"], f"{IMPORT_API}/jobs/{done.pk}")
    assert (first_body["job"]["batchId"], second_body["job"]["batchId"]) == (None, batch.pk)
    assert first == second
    assert second <= 6


# --- 8. format override and mapping ---------------------------------------------------------


def test_a_mapping_reads_a_standard_file_with_other_headers(organisation, staff, client):
    text = "staff_id,day,in,out\n001,2026-05-04,09:00,18:00\n002,2026-05-04,09:15,17:30\n"
    mapping = {"staff_id": "employee_no", "day": "work_date", "in": "first_in", "out": "last_out"}
    error(
        client.post(f"{IMPORT_API}/preview", {"csvText": text}, format="json"),
        415,
        "UNSUPPORTED_FORMAT",
    )

    body = preview(client, {"csvText": text, "format": "standard", "mapping": mapping})

    assert body["format"] == "standard"
    assert body["stats"] == {
        "insert": 2,
        "update": 0,
        "unchanged": 0,
        "skip": 0,
        "invalid": 0,
        "duplicate": 0,
    }
    assert not AttendanceRecord.objects.filter(organisation=organisation).exists()

    result = commit(client, {"csvText": text, "format": "standard", "mapping": mapping})

    assert result["stats"]["insert"] == 2
    first = day_record(staff[0], "2026-05-04")
    assert (first.first_in, first.last_out, first.status) == (
        _at("2026-05-04", "09:00"),
        _at("2026-05-04", "18:00"),
        "normal",
    )
    second = day_record(staff[1], "2026-05-04")
    assert (second.late_minutes, second.early_leave_minutes, second.status) == (
        15,
        30,
        "late_early",
    )
    assert ImportBatch.objects.get(pk=result["batchId"]).format == "standard"


def test_forcing_the_device_log_format_on_a_dingtalk_file_is_refused(
    organisation, people, client, settings
):
    uploaded = upload(client, (FIXTURES / "dingtalk_daily_utf8bom.csv").read_bytes(), "daily.csv")
    assert uploaded["format"] == "dingtalk_daily"
    body = {"fileId": uploaded["fileId"], "format": "zkteco_attlog"}

    error(client.post(f"{IMPORT_API}/preview", body, format="json"), 415, "UNSUPPORTED_FORMAT")
    response = client.post(
        f"{IMPORT_API}/commit",
        {**body, "commitToken": data(client.post(f"{IMPORT_API}/prepare"))["commitToken"]},
        format="json",
    )
    error(response, 415, "UNSUPPORTED_FORMAT")

    assert not ImportBatch.objects.exists()
    assert not AttendanceRecord.objects.filter(organisation=organisation).exists()
    assert Employee.objects.filter(organisation=organisation).count() == len(people)


# --- 10. manage.py import_attendance --------------------------------------------------------


def _run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_a_dry_run_writes_nothing_at_all(organisation, people, settings):
    events = AuditEvent.objects.count()
    employees = Employee.objects.count()

    out, err = _run(
        "import_attendance",
        str(FIXTURES / "dingtalk_daily_gbk.csv"),
        "--org",
        organisation.slug,
        "--dry-run",
        "--create-missing-employees",
    )

    assert "insert=620" in out and "format dingtalk_daily" in err
    assert not ImportUpload.objects.exists()
    assert stored_files(settings) == []
    assert AuditEvent.objects.count() == events
    assert Employee.objects.count() == employees
    assert not ImportBatch.objects.exists()
    assert not AttendanceRecord.objects.filter(organisation=organisation).exists()


def test_a_dry_run_reports_row_errors(organisation, people, tmp_path, settings):
    path = tmp_path / "bad.csv"
    path.write_text(standard_csv("404,Nobody,2026-05-04,09:00,18:00,"), encoding="utf-8")

    out, _ = _run("import_attendance", str(path), "--org", organisation.slug, "--dry-run")

    assert "skip=1" in out and "UNKNOWN_EMPLOYEE" in out
    assert not ImportUpload.objects.exists() and stored_files(settings) == []


def test_the_format_option_overrides_detection(organisation, staff, tmp_path):
    # Both the standard parser and the DingTalk daily parser can read this file; detection
    # picks the standard format, which names 001, while the DingTalk columns name 002.
    path = tmp_path / "both.csv"
    path.write_text(
        "employee_no,work_date,first_in,last_out,工号,日期,上班1打卡时间,下班1打卡时间\n"
        "001,2026-05-04,09:00,18:00,002,26-05-04 星期一,09:00,18:00\n",
        encoding="utf-8",
    )

    detected_out, _ = _run("import_attendance", str(path), "--org", organisation.slug)
    forced_out, _ = _run(
        "import_attendance", str(path), "--org", organisation.slug, "--format", "dingtalk_daily"
    )

    detected = ImportBatch.objects.get(pk=int(detected_out.split()[-1]))
    forced = ImportBatch.objects.get(pk=int(forced_out.split()[-1]))
    assert (detected.format, forced.format) == ("standard", "dingtalk_daily")
    assert day_record(staff[0], "2026-05-04").batch_id == detected.pk
    assert day_record(staff[1], "2026-05-04").batch_id == forced.pk
    with pytest.raises(CommandError, match="UNSUPPORTED_FORMAT"):
        _run("import_attendance", str(path), "--org", organisation.slug, "--format", "dingtalk_raw")
    assert ImportBatch.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_async_option_queues_a_job_that_commits_the_file(
    organisation, staff, tmp_path, monkeypatch
):
    """The job is queued after its transaction commits; Celery's eager mode runs the task
    (the worker's body, import_job_run) in this process instead of publishing it."""
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    path = tmp_path / "days.csv"
    path.write_text(
        standard_csv("001,S1,2026-05-04,09:00,18:00,", "002,S2,2026-05-04,09:30,18:00,"),
        encoding="utf-8",
    )

    out, err = _run("import_attendance", str(path), "--org", organisation.slug, "--async")

    batch_id = int(out.strip().splitlines()[-1])
    assert "insert=2" in out and "100.0%" in err
    job = ImportJob.objects.get()
    assert (job.kind, job.status, job.batch_id, job.attempts) == (
        "commit",
        "succeeded",
        batch_id,
        1,
    )
    assert job.result["stats"]["insert"] == 2
    assert (
        AuditEvent.objects.filter(action="imports.job.queued", target_id=str(job.pk)).count() == 1
    )
    assert AttendanceRecord.objects.filter(batch_id=batch_id).count() == 2


# --- 11. the preview's errors CSV -----------------------------------------------------------


def test_the_errors_csv_has_a_bom_and_every_error_beyond_the_preview_limit(
    organisation, staff, client, settings
):
    settings.IMPORT_ERRORS_LIMIT = 3
    rows = [f"9{n:02d},Nobody,2026-05-04,09:00,18:00," for n in range(7)]
    rows += ["001,S1,2026-05-04,09:00,18:00,", "002,S2,2026-99-04,09:00,18:00,"]
    body = {"csvText": standard_csv(*rows)}
    shown = preview(client, body)
    assert (len(shown["errors"]), shown["errorsTotal"], shown["truncated"]) == (3, 8, True)

    raw, lines = _csv_download(client.post(f"{IMPORT_API}/preview/errors.csv", body, format="json"))

    assert raw.startswith(BOM + b"row,column,code,message")
    assert lines[0] == ["row", "column", "code", "message"]
    assert sorted((int(row), code) for row, _column, code, _message in lines[1:]) == [
        *((n, "UNKNOWN_EMPLOYEE") for n in range(2, 9)),
        (10, "INVALID_DATE"),
    ]
    assert not AttendanceRecord.objects.filter(organisation=organisation).exists()


@pytest.mark.parametrize("role", ["importer", "admin"])
def test_importers_and_admins_may_download_the_errors_csv(role, people, api):
    response = api(people[role]).post(
        f"{IMPORT_API}/preview/errors.csv",
        {"csvText": standard_csv("404,Nobody,2026-05-04,09:00,18:00,")},
        format="json",
    )
    _raw, lines = _csv_download(response)
    assert response["Content-Type"].startswith("text/csv")
    assert [line[2] for line in lines[1:]] == ["UNKNOWN_EMPLOYEE"]
