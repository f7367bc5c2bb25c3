"""Bad input through the API: each case answers its exact code and leaves nothing behind
(no stored file, upload, batch, item, job, record, employee, punch or audit event)."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import pytest
from django.utils import timezone

from attendance.models import AttendanceRecord, Employee, Punch
from audit.models import AuditEvent
from imports import services
from imports.models import (
    CommitToken,
    IdempotencyKey,
    ImportBatch,
    ImportItem,
    ImportJob,
    ImportUpload,
)
from tests.imports.conftest import IMPORT_API, commit, prepare, preview, stored_files, upload
from tests.imports.test_reading import billion_laughs_workbook, minimal_workbook_entries
from tests.support import data, error

HEADER = "employee_no,name,work_date,first_in,last_out,status\n"
MAPPED_HEADER = "staff_id,who,day,in,out,state\n"
MAPPING = {
    "staff_id": "employee_no",
    "who": "name",
    "day": "work_date",
    "in": "first_in",
    "out": "last_out",
    "state": "status",
}


@pytest.fixture
def staff(organisation):
    return [
        Employee.objects.create(organisation=organisation, employee_no=f"B{n}", name=f"B{n}")
        for n in range(1, 6)
    ]


def _written(settings) -> dict:
    """Everything an import could leave behind."""
    return {
        "files": stored_files(settings),
        "uploads": ImportUpload.objects.count(),
        "batches": ImportBatch.objects.count(),
        "items": ImportItem.objects.count(),
        "jobs": ImportJob.objects.count(),
        "keys": IdempotencyKey.objects.count(),
        "records": AttendanceRecord.objects.count(),
        "employees": Employee.objects.count(),
        "punches": Punch.objects.count(),
        "audit": AuditEvent.objects.count(),
    }


def _html_posing_as_xls() -> bytes:
    return b"<html><body><table><tr><td>employee_no</td></tr></table></body></html>"


def _zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, part in minimal_workbook_entries().items():
            if name != "xl/worksheets/sheet1.xml":
                archive.writestr(name, part)
        archive.writestr("xl/worksheets/sheet1.xml", b"A" * (20 * 1024 * 1024))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "filename, make_content, needle",
    [
        ("attendance.xls", lambda tmp: _html_posing_as_xls(), "XLSX or CSV"),
        ("bomb.xlsx", lambda tmp: _zip_bomb(), "zip bomb"),
        ("laughs.xlsx", lambda tmp: billion_laughs_workbook(tmp).read_bytes(), "entit"),
        # 0xE9 then a comma: neither UTF-8 nor GB18030 (Windows-1252's "é").
        (
            "latin1.csv",
            lambda tmp: (HEADER + "B1,Ren\xe9,2026-05-04,,,\n").encode("cp1252"),
            "UTF-8",
        ),
    ],
    ids=["html-named-xls", "zip-bomb", "xml-entities", "wrong-encoding"],
)
def test_unreadable_uploads_are_refused_and_leave_nothing(
    client, settings, tmp_path, staff, filename, make_content, needle
):
    before = _written(settings)
    failure = error(
        upload(client, make_content(tmp_path), filename, status=415), 415, "UNSUPPORTED_FORMAT"
    )
    assert needle.lower() in failure["message"].lower()
    assert _written(settings) == before


def test_header_only_text_is_empty_at_preview_and_commit(client, settings, staff):
    before = _written(settings)
    token = prepare(client)
    body = {"csvText": HEADER}
    error(client.post(f"{IMPORT_API}/preview", body, format="json"), 400, "EMPTY_FILE")
    response = client.post(f"{IMPORT_API}/commit", {**body, "commitToken": token}, format="json")
    error(response, 400, "EMPTY_FILE")
    assert _written(settings) == before
    # The failed commit did not use the token up.
    assert CommitToken.objects.filter(used_at__isnull=True).count() == 1


def test_header_only_upload_read_with_a_mapping_is_empty(client, settings, staff):
    uploaded = upload(client, MAPPED_HEADER.encode(), "mapped.csv")
    assert uploaded["format"] in ("", None) and uploaded["rowCount"] == 0
    before = _written(settings)
    body = {"fileId": uploaded["fileId"], "format": "standard", "mapping": MAPPING}
    error(client.post(f"{IMPORT_API}/preview", body, format="json"), 400, "EMPTY_FILE")
    error(commit(client, body, status=400), 400, "EMPTY_FILE")
    assert _written(settings) == before


def test_the_sync_limit_holds_for_uploads_read_with_a_chosen_format(client, settings, staff):
    settings.IMPORT_SYNC_MAX_ROWS = 2
    rows = "".join(f"B{n},B{n},2026-05-04,09:00,18:00,normal\n" for n in range(1, 6))
    uploaded = upload(client, (MAPPED_HEADER + rows).encode(), "mapped.csv")
    # Not recognised at upload, so the upload could not count its rows.
    assert uploaded["rowCount"] == 0
    before = _written(settings)
    body = {"fileId": uploaded["fileId"], "format": "standard", "mapping": MAPPING}
    failure = error(commit(client, body, status=400), 400, "IMPORT_TOO_LARGE_FOR_SYNC")
    assert failure["details"] == {"rowCount": 3, "syncMaxRows": 2}
    assert _written(settings) == before
    # Preview of a stored upload has no sync limit, and reads all five rows.
    assert preview(client, body)["stats"]["insert"] == 5
    settings.IMPORT_SYNC_MAX_ROWS = 5
    assert commit(client, body)["stats"]["insert"] == 5


@pytest.mark.parametrize("endpoint, status", [("commit", 410), ("commit-async", 410)])
def test_an_expired_upload_cannot_be_committed(client, settings, staff, endpoint, status):
    uploaded = upload(client, (HEADER + "B1,B1,2026-05-04,09:00,18:00,normal\n").encode())
    ImportUpload.objects.filter(pk=uploaded["fileId"]).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    token = prepare(client)
    before = _written(settings)
    response = client.post(
        f"{IMPORT_API}/{endpoint}",
        {"fileId": uploaded["fileId"], "commitToken": token, "idempotencyKey": "late"},
        format="json",
    )
    error(response, status, "UPLOAD_EXPIRED")
    assert _written(settings) == before
    assert CommitToken.objects.filter(used_at__isnull=True).count() == 1


def test_bad_rows_of_a_commit_are_reported_and_never_written(organisation, client, staff):
    result = commit(
        client,
        {
            "csvText": HEADER
            + "B1,B1,2026-05-04,09:00,18:00,normal\n"  # inserted
            + "B1,B1,2026-05-04,08:00,17:00,normal\n"  # duplicate of the first
            + "B2,B2,2026-02-30,09:00,18:00,normal\n"  # impossible date
            + "B3,B3,04/05/2026x,09:00,18:00,normal\n"  # malformed date
            + "B4,B4,2026-05-04,24:30,18:00,normal\n"  # impossible time
            + "B4,B4,2026-05-05,9h,18:00,normal\n"  # malformed time
            + "B5,B5,2099-01-01,09:00,18:00,normal\n"  # future
            + "B5,B5,2026-05-06,2026-05-06 18:00,2026-05-06 09:00,normal\n"  # out before in
            + "ZZ,Nobody,2026-05-04,09:00,18:00,normal\n"  # unknown employee
        },
    )
    assert result["stats"] == {
        "insert": 1,
        "update": 0,
        "unchanged": 0,
        "skip": 1,
        "invalid": 6,
        "duplicate": 1,
    }
    records = AttendanceRecord.objects.filter(organisation=organisation)
    assert list(records.values_list("employee__employee_no", "work_date")) == [
        ("B1", dt.date(2026, 5, 4))
    ]
    record = records.get()
    assert record.first_in.astimezone(organisation.tz).time() == dt.time(9, 0)
    codes = dict(
        ImportItem.objects.filter(batch_id=result["batchId"])
        .exclude(action="inserted")
        .values_list("row", "code")
    )
    assert codes == {
        3: "DUPLICATE_ROW",
        4: "INVALID_DATE",
        5: "INVALID_DATE",
        6: "INVALID_TIME",
        7: "INVALID_TIME",
        8: "FUTURE_DATE",
        9: "INVALID_TIME",  # the parser's: "last_out … is before the first_in …"
        10: "UNKNOWN_EMPLOYEE",
    }


def test_commit_async_replays_a_key_first_used_by_a_sync_commit(client, settings, staff):
    body = {"csvText": HEADER + "B1,B1,2026-05-04,09:00,18:00,normal\n", "idempotencyKey": "k1"}
    first = commit(client, body)
    before = _written(settings)
    response = client.post(
        f"{IMPORT_API}/commit-async", {**body, "commitToken": prepare(client)}, format="json"
    )
    replay = data(response, 200)
    assert replay["job"] is None and replay["idempotent"] is True
    assert replay["result"]["batchId"] == first["batchId"]
    assert replay["result"]["stats"] == first["stats"]
    assert _written(settings) == before


def test_a_key_whose_job_is_queued_gives_that_job_again_or_is_in_progress_for_a_sync_commit(
    client, settings, staff
):
    uploaded = upload(client, (HEADER + "B1,B1,2026-05-04,09:00,18:00,normal\n").encode())
    body = {"fileId": uploaded["fileId"], "idempotencyKey": "k2"}
    queued = data(
        client.post(
            f"{IMPORT_API}/commit-async", {**body, "commitToken": prepare(client)}, format="json"
        ),
        202,
    )
    job_id = queued["job"]["id"]
    assert queued["job"]["status"] == "queued" and queued["idempotent"] is False
    before = _written(settings)
    # commit-async asked again: the job it made (idempotent), nothing new queued.
    again = data(
        client.post(
            f"{IMPORT_API}/commit-async", {**body, "commitToken": prepare(client)}, format="json"
        ),
        202,
    )
    assert (again["job"]["id"], again["idempotent"]) == (job_id, True)
    # A synchronous commit has no answer to give until the job ends.
    response = client.post(
        f"{IMPORT_API}/commit", {**body, "commitToken": prepare(client)}, format="json"
    )
    assert error(response, 409, "IMPORT_IN_PROGRESS")["details"] == {"jobId": job_id}
    assert _written(settings) == before
    assert ImportJob.objects.count() == 1

    # The worker's body runs the job; the same key then replays it on both endpoints.
    job = services.import_job_run(job_id=job_id)
    assert job.status == ImportJob.Status.SUCCEEDED
    replay = data(client.post(f"{IMPORT_API}/commit-async", body, format="json"), 202)
    assert replay["job"]["id"] == job_id and replay["idempotent"] is True
    assert replay["job"]["status"] == "succeeded"
    sync_replay = data(client.post(f"{IMPORT_API}/commit", body, format="json"))
    assert sync_replay["idempotent"] is True
    assert sync_replay["batchId"] == job.batch_id
    assert sync_replay["elapsedMs"] == job.result["elapsedMs"] > 0
    assert ImportBatch.objects.count() == 1


def test_the_purge_is_not_stopped_by_a_queued_rollback_job(
    organisation, people, client, settings, staff
):
    uploaded = upload(client, (HEADER + "B1,B1,2026-05-04,09:00,18:00,normal\n").encode())
    ImportJob.objects.create(
        organisation=organisation,
        kind=ImportJob.Kind.ROLLBACK,
        params={"batch_id": 1},
        total=1,
    )
    ImportUpload.objects.filter(pk=uploaded["fileId"]).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert services.purge_expired_uploads() == 1
    assert stored_files(settings) == []
    assert not ImportUpload.objects.exists()


def test_the_purge_keeps_an_expired_upload_a_queued_commit_still_needs(
    organisation, client, settings, staff
):
    uploaded = upload(client, (HEADER + "B1,B1,2026-05-04,09:00,18:00,normal\n").encode())
    data(
        client.post(
            f"{IMPORT_API}/commit-async",
            {"fileId": uploaded["fileId"], "commitToken": prepare(client)},
            format="json",
        ),
        202,
    )
    ImportUpload.objects.filter(pk=uploaded["fileId"]).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert services.purge_expired_uploads() == 0
    assert ImportUpload.objects.filter(pk=uploaded["fileId"]).exists()


def test_a_nul_in_the_file_name_is_a_clean_400_and_nothing_is_kept(client, settings, staff):
    before = _written(settings)
    response = client.post(
        f"{IMPORT_API}/upload?filename=report%00.exe.csv",
        data=(HEADER + "B1,B1,2026-05-04,09:00,18:00,normal\n").encode(),
        content_type="application/octet-stream",
    )
    assert "filename" in error(response, 400, "VALIDATION_ERROR")["details"]["fields"]
    assert _written(settings) == before


def test_control_and_bidi_characters_and_paths_leave_the_file_name(client, staff):
    uploaded = upload(
        client,
        (HEADER + "B1,B1,2026-05-04,09:00,18:00,normal\n").encode(),
        filename="..%2F..%2F%E8%80%83%E5%8B%A4%E2%80%AEvsc%07.csv",
    )
    assert uploaded["filename"] == "考勤vsc.csv"
    assert ImportUpload.objects.get(pk=uploaded["fileId"]).filename == "考勤vsc.csv"
