"""Import tests: uploads go to a private folder per test; helpers to drive the API."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from attendance.models import RECORD_VALUE_COLUMNS, AttendanceRecord
from tests.support import data

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REAL_FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "real"
IMPORT_API = "/api/attendance/import"


@pytest.fixture
def client(api, people):
    """The API as the organisation's importer."""
    return api(people["importer"])


def stored_files(settings) -> list:
    root = settings.IMPORT_STORAGE_DIR
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def day_record(employee, day: str) -> AttendanceRecord:
    return AttendanceRecord.objects.get(employee=employee, work_date=dt.date.fromisoformat(day))


def record_snapshot(organisation) -> list[tuple]:
    """Every column of the organisation's day records (from the model's own fields, so a
    column added later is covered too): what an exact rollback restores."""
    return list(
        AttendanceRecord.objects.filter(organisation=organisation)
        .order_by("employee_id", "work_date")
        .values_list("id", "employee_id", "work_date", *RECORD_VALUE_COLUMNS)
    )


@pytest.fixture(autouse=True)
def _private_upload_storage(settings, tmp_path):
    settings.IMPORT_STORAGE_DIR = tmp_path / "uploads"


def expected(name: str) -> list[dict]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))["rows"]


def upload(client, content: bytes, filename: str = "file.csv", status: int = 201):
    response = client.post(
        f"{IMPORT_API}/upload?filename={filename}",
        data=content,
        content_type="application/octet-stream",
    )
    if status != 201:
        return response
    return data(response, 201)


def prepare(client) -> str:
    return data(client.post(f"{IMPORT_API}/prepare"))["commitToken"]


def commit(client, body: dict, status: int = 200):
    response = client.post(
        f"{IMPORT_API}/commit", {"commitToken": prepare(client), **body}, format="json"
    )
    return data(response, status) if status == 200 else response


def preview(client, body: dict):
    return data(client.post(f"{IMPORT_API}/preview", body, format="json"))
