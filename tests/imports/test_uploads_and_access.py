"""Uploads (limits, bad files, expiry, purge), the read endpoints and who may call them."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import pytest
from django.utils import timezone

from attendance.models import Employee
from imports import services
from imports.models import ImportUpload
from tests.imports.conftest import FIXTURES, IMPORT_API, commit, preview, stored_files, upload
from tests.support import data, error

STANDARD = "employee_no,name,work_date,first_in,last_out,status\n"


def test_raw_and_multipart_uploads_are_stored_privately_with_their_facts(client, settings):
    content = (FIXTURES / "dingtalk_daily_utf8bom.csv").read_bytes()
    raw = upload(client, content, "daily.csv")
    assert raw["bytes"] == len(content)
    assert raw["filename"] == "daily.csv"
    assert len(raw["sha256"]) == 64
    expires = dt.datetime.fromisoformat(raw["expiresAt"])
    assert dt.timedelta(hours=23) < expires - timezone.now() <= dt.timedelta(hours=24)

    multipart = data(
        client.post(
            f"{IMPORT_API}/upload",
            {"file": io.BytesIO(content)},
            format="multipart",
        ),
        201,
    )
    assert multipart["sha256"] == raw["sha256"]
    assert multipart["rowCount"] == 620
    assert len(stored_files(settings)) == 2
    assert not str(settings.IMPORT_STORAGE_DIR).startswith(str(settings.MEDIA_ROOT))


def test_oversized_upload_is_refused_and_leaves_nothing(client, settings):
    settings.IMPORT_UPLOAD_MAX_BYTES = 1000
    response = client.post(
        f"{IMPORT_API}/upload?filename=big.csv",
        data=STANDARD.encode() + b"0" * 5000,
        content_type="application/octet-stream",
    )
    failure = error(response, 413, "UPLOAD_TOO_LARGE")
    assert failure["details"]["maxBytes"] == 1000
    assert stored_files(settings) == []
    assert not ImportUpload.objects.exists()


@pytest.mark.parametrize(
    "content, status, code",
    [
        (b"", 400, "EMPTY_FILE"),
        (STANDARD.encode(), 400, "EMPTY_FILE"),
        (bytes(range(256)) * 40, 415, "UNSUPPORTED_FORMAT"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, 415, "UNSUPPORTED_FORMAT"),
    ],
    ids=["empty", "header-only", "binary", "legacy-xls"],
)
def test_bad_files_are_refused_with_their_code(client, settings, content, status, code):
    error(upload(client, content, "bad.csv", status=status), status, code)
    assert stored_files(settings) == []
    assert not ImportUpload.objects.exists()


def test_a_zip_bomb_posing_as_xlsx_is_refused(client, settings):
    settings.IMPORT_XLSX_MAX_UNCOMPRESSED_BYTES = 1024 * 1024
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"<" + b"a" * (8 * 1024 * 1024))
    error(upload(client, buffer.getvalue(), "bomb.xlsx", status=415), 415, "UNSUPPORTED_FORMAT")
    assert not ImportUpload.objects.exists()


def test_expired_uploads_answer_410_and_the_purge_deletes_them(
    organisation, people, client, settings
):
    uploaded = upload(client, (STANDARD + "E1,A,2026-05-04,09:00,18:00,\n").encode())
    ImportUpload.objects.filter(pk=uploaded["fileId"]).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    response = client.post(f"{IMPORT_API}/preview", {"fileId": uploaded["fileId"]}, format="json")
    error(response, 410, "UPLOAD_EXPIRED")
    assert services.purge_expired_uploads() == 1
    assert stored_files(settings) == []
    error(
        client.post(f"{IMPORT_API}/preview", {"fileId": uploaded["fileId"]}, format="json"),
        404,
        "NOT_FOUND",
    )


def test_uploads_of_another_organisation_are_not_found(
    client, other_organisation, make_person, api
):
    uploaded = upload(client, (STANDARD + "E1,A,2026-05-04,09:00,18:00,\n").encode())
    outsider = api(make_person(other_organisation, "employee", "importer"))
    error(
        outsider.post(f"{IMPORT_API}/preview", {"fileId": uploaded["fileId"]}, format="json"),
        404,
        "NOT_FOUND",
    )


def test_preview_body_needs_exactly_one_source(client):
    error(client.post(f"{IMPORT_API}/preview", {}, format="json"), 400, "VALIDATION_ERROR")
    error(
        client.post(f"{IMPORT_API}/preview", {"csvText": "x", "format": "nope"}, format="json"),
        400,
        "VALIDATION_ERROR",
    )


def test_csv_text_above_the_sync_limit_must_be_uploaded(client, settings):
    settings.IMPORT_SYNC_MAX_ROWS = 2
    body = STANDARD + "".join(f"E{n},A,2026-05-04,09:00,18:00,\n" for n in range(5))
    error(
        client.post(f"{IMPORT_API}/preview", {"csvText": body}, format="json"),
        400,
        "IMPORT_TOO_LARGE_FOR_SYNC",
    )


def test_formats_and_templates(client):
    formats = data(client.get(f"{IMPORT_API}/formats"))
    assert [item["name"] for item in formats] == [
        "standard",
        "dingtalk_daily",
        "dingtalk_raw",
        "zkteco_attlog",
    ]
    response = client.get(f"{IMPORT_API}/template?format=standard")
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeffemployee_no,")
    error(client.get(f"{IMPORT_API}/template?format=nope"), 400, "VALIDATION_ERROR")


def test_batch_list_detail_items_and_export(organisation, client):
    Employee.objects.create(organisation=organisation, employee_no="001", name="=HYPERLINK(1)")
    batch = commit(
        client,
        {
            "csvText": STANDARD
            + "001,X,2026-05-04,09:30,18:00,\n"
            + "404,Y,2026-05-04,09:00,18:00,\n"
        },
    )
    listed = data(client.get(f"{IMPORT_API}/batches"))
    assert listed["total"] == 1 and listed["items"][0]["id"] == batch["batchId"]
    detail = data(client.get(f"{IMPORT_API}/batches/{batch['batchId']}"))
    assert detail["status"] == "committed" and detail["stats"]["skip"] == 1
    skipped = data(client.get(f"{IMPORT_API}/batches/{batch['batchId']}/items?action=skipped"))
    assert [item["code"] for item in skipped["items"]] == ["UNKNOWN_EMPLOYEE"]
    error(
        client.get(f"{IMPORT_API}/batches/{batch['batchId']}/items?action=nope"),
        400,
        "VALIDATION_ERROR",
    )

    response = client.get(f"{IMPORT_API}/batches/{batch['batchId']}/export.csv?type=all")
    text = b"".join(response.streaming_content).decode("utf-8")
    lines = text.splitlines()
    assert lines[0].startswith("\ufeffrow,action,code")
    assert len(lines) == 3
    assert "'=HYPERLINK(1)" in lines[1]
    anomalies = client.get(f"{IMPORT_API}/batches/{batch['batchId']}/export.csv?type=anomalies")
    assert len(b"".join(anomalies.streaming_content).decode().splitlines()) == 2  # one late day
    imported = client.get(f"{IMPORT_API}/batches/{batch['batchId']}/export.csv?type=skipped")
    assert "UNKNOWN_EMPLOYEE" in b"".join(imported.streaming_content).decode()


ENDPOINTS = [
    ("get", "/formats", None),
    ("get", "/template", None),
    ("post", "/upload", None),
    ("post", "/prepare", None),
    ("post", "/preview", {"csvText": STANDARD + "E1,A,2026-05-04,09:00,18:00,\n"}),
    ("post", "/preview/errors.csv", {"csvText": STANDARD + "E1,A,2026-05-04,09:00,18:00,\n"}),
    ("post", "/commit", {"csvText": STANDARD}),
    ("post", "/commit-async", {"csvText": STANDARD}),
    ("get", "/jobs/00000000-0000-0000-0000-000000000000", None),
    ("get", "/batches", None),
    ("get", "/batches/1", None),
    ("get", "/batches/1/items", None),
    ("get", "/batches/1/export.csv", None),
    ("post", "/rollback/1", None),
]


@pytest.mark.parametrize("method, path, body", ENDPOINTS)
def test_every_endpoint_refuses_anonymous_and_plain_employees(method, path, body, api, people):
    call = getattr(api(), method)
    error(call(f"{IMPORT_API}{path}", body, format="json"), 401, "UNAUTHENTICATED")
    call = getattr(api(people["employee"]), method)
    error(call(f"{IMPORT_API}{path}", body, format="json"), 403, "FORBIDDEN")
    call = getattr(api(people["approver"]), method)
    error(call(f"{IMPORT_API}{path}", body, format="json"), 403, "FORBIDDEN")


@pytest.mark.parametrize("role", ["importer", "admin"])
def test_importers_and_admins_may_preview(role, people, api):
    body = preview(
        api(people[role]),
        {"csvText": STANDARD + f"{people['employee'].employee_no},A,2026-05-04,09:00,18:00,\n"},
    )
    assert body["stats"]["insert"] == 1


def test_a_browser_session_can_upload_a_raw_body(organisation, people):
    """Session authentication runs Django's CSRF check, which reads the body's form data
    before the view: a raw file body must still reach the upload."""
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(people["importer"].user)
    browser.get("/attendance/")
    token = browser.cookies["csrftoken"].value
    response = browser.post(
        f"{IMPORT_API}/upload?filename=daily.csv",
        data=(FIXTURES / "dingtalk_daily_utf8bom.csv").read_bytes(),
        content_type="application/octet-stream",
        headers={"X-CSRFToken": token},
    )
    assert data(response, 201)["rowCount"] == 620
    refused = browser.post(
        f"{IMPORT_API}/upload?filename=daily.csv",
        data=b"employee_no,work_date\nE1,2026-05-04\n",
        content_type="application/octet-stream",
    )
    error(refused, 403, "FORBIDDEN")
