"""Each finding of the schema fuzz run, pinned: the API refuses what its schema forbids, and
the schema declares what the API answers."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import RequestFactory
from django.utils import timezone
from rest_framework.test import APIClient

from common.views import page_not_found
from tests.support import client_for, data, error

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def _component(schema, name):
    return schema["components"]["schemas"][name]


def _parameter(schema, path, name, method="get"):
    parameters = schema["paths"][path][method]["parameters"]
    return next(p for p in parameters if p["name"] == name)["schema"]


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    "path",
    ["/api/\n", "/api/%0A", "/api/attendance/me%0A", "/api/%00", "/api/\x00x", "/api/a%0Ab"],
)
def test_every_api_path_answers_in_the_envelope(people, settings, path, debug):
    settings.DEBUG = debug  # in development Django's own 404 page lists every URL pattern
    response = client_for(people["admin"]).get(path)
    assert response["Content-Type"].startswith("application/json")
    assert error(response, 404, "NOT_FOUND")


def test_the_404_handler_answers_json_under_api_and_the_page_elsewhere(settings):
    settings.DEBUG = False
    api = page_not_found(RequestFactory().get("/api/x"), exception=None)
    assert (api.status_code, api["Content-Type"]) == (404, "application/json")
    page = page_not_found(RequestFactory().get("/attendance/nothing"), exception=None)
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def test_page_size_above_200_is_refused_as_the_schema_says(people, schema):
    client = client_for(people["admin"])
    size = _parameter(schema, "/api/attendance/records", "pageSize")
    page = _parameter(schema, "/api/attendance/records", "page")
    assert (size["minimum"], size["maximum"], page["minimum"]) == (1, 200, 1)
    assert data(client.get("/api/attendance/records?pageSize=200"))["pageSize"] == 200
    for query, field in (("pageSize=201", "pageSize"), ("pageSize=-5", "pageSize")):
        refused = error(client.get(f"/api/attendance/records?{query}"), 400, "VALIDATION_ERROR")
        assert list(refused["details"]["fields"]) == [field]
    refused = error(client.get("/api/attendance/records?page=0"), 400, "VALIDATION_ERROR")
    assert list(refused["details"]["fields"]) == ["page"]


def test_month_has_its_pattern_in_the_schema(people, schema):
    month = _parameter(schema, "/api/attendance/summary", "month")
    assert re.search(month["pattern"], "2026-05") and not re.search(month["pattern"], "")
    assert not re.search(month["pattern"], "0000-01")
    client = client_for(people["admin"])
    for value in ("", "0000-01", "2026-13"):
        refused = error(
            client.get(f"/api/attendance/summary?month={value}"), 400, "VALIDATION_ERROR"
        )
        assert list(refused["details"]["fields"]) == ["month"]


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/attendance/punch", {"kind": "in", "clientId": 0}, "clientId"),
        ("/api/attendance/punch", {"kind": "in", "extra": 1}, "extra"),
        ("/api/attendance/requests", {"workDate": "2026-01-01", "reason": 0}, "reason"),
        ("/api/attendance/import/preview", {"csvText": "x", "createMissingEmployees": 1}, None),
        ("/api/attendance/import/preview", {"csvText": "x", "previewLimit": "5"}, "previewLimit"),
        ("/api/attendance/import/preview", {"fileId": 1}, "fileId"),
        ("/api/attendance/import/preview", {}, "fileId"),
        ("/api/attendance-admin/users/batch/roles/assign", {"role": "admin"}, "userIds"),
        (
            "/api/attendance-admin/users/batch/roles/assign",
            {"role": "admin", "userIds": [1], "surplus": True},
            "surplus",
        ),
        (
            "/api/attendance-admin/users/batch/roles/assign",
            {"role": "admin", "userIds": ["1"]},
            None,
        ),
        ("/api/attendance-admin/settings", {"workStart": "09:00:00"}, "workStart"),
        ("/api/attendance-admin/settings", {"workStart": "9:00"}, "workStart"),
        ("/api/attendance-admin/settings", {"graceMinutes": "5"}, "graceMinutes"),
        ("/api/attendance-admin/settings", {"workdays": []}, "workdays"),
        ("/api/attendance-admin/settings", {"timeZone": "Mars/Olympus_Mons"}, "timeZone"),
    ],
)
def test_bodies_the_schema_forbids_are_refused(people, url, body, field):
    method = "put" if url.endswith("/settings") else "post"
    response = getattr(client_for(people["admin"]), method)(url, body, format="json")
    fields = error(response, 400, "VALIDATION_ERROR")["details"]["fields"]
    if field is not None:
        assert field in fields, fields


def test_input_bodies_are_closed_and_state_their_cross_field_rules(schema):
    for name in (
        "PunchInputRequest",
        "RequestInputRequest",
        "DecisionInputRequest",
        "RoleInputRequest",
        "BatchRoleInputRequest",
        "PreviewInputRequest",
        "CommitInputRequest",
        "PatchedSettingsRequest",
    ):
        assert _component(schema, name)["additionalProperties"] is False, name
    preview = _component(schema, "PreviewInputRequest")
    assert preview["oneOf"] == [{"required": ["fileId"]}, {"required": ["csvText"]}]
    assert len(_component(schema, "BatchRoleInputRequest")["anyOf"]) == 2
    assert len(_component(schema, "RequestInputRequest")["anyOf"]) == 3
    assert "required" not in _component(schema, "PatchedSettingsRequest")


def test_settings_times_are_answered_as_their_pattern_says(people, schema):
    body = data(client_for(people["admin"]).get("/api/attendance-admin/settings"))
    pattern = _component(schema, "Settings")["properties"]["workStart"]["pattern"]
    assert "format" not in _component(schema, "Settings")["properties"]["workStart"]
    assert re.search(pattern, body["workStart"]) and re.search(pattern, body["workEnd"])
    assert (body["workStart"], body["workEnd"]) == ("09:00", "18:00")


def test_nullable_batch_fields_are_declared_nullable(schema):
    properties = _component(schema, "Batch")["properties"]
    assert properties["rolledBackBy"]["nullable"] is True
    assert properties["createdBy"]["nullable"] is True


def test_corrections_older_than_the_window_are_refused(people, settings):
    settings.CORRECTION_MAX_AGE_DAYS = 366
    client = client_for(people["employee"])
    today = timezone.localdate(timezone=people["employee"].organisation.tz)

    def ask(day):
        body = {"workDate": day.isoformat(), "status": "leave", "reason": "ill"}
        return client.post("/api/attendance/requests", body, format="json")

    for day in (dt.date(2000, 1, 1), today - dt.timedelta(days=367)):
        refused = error(ask(day), 400, "VALIDATION_ERROR")
        assert list(refused["details"]["fields"]) == ["workDate"]
    assert data(ask(today - dt.timedelta(days=366)), 201)["state"] == "pending"
    settings.CORRECTION_MAX_AGE_DAYS = 30
    assert list(
        error(ask(today - dt.timedelta(days=31)), 400, "VALIDATION_ERROR")["details"]["fields"]
    ) == ["workDate"]


@pytest.mark.parametrize("instant", ["0001-01-01T00:00", "9999-12-31T23:59:59Z"])
def test_times_at_the_ends_of_the_calendar_are_refused_not_a_500(people, instant):
    # In a zone ahead of UTC, DRF's own conversion of year 1 overflowed (a 500).
    body = {"workDate": "2026-11-02", "firstIn": instant, "reason": "forgot"}
    response = client_for(people["employee"]).post("/api/attendance/requests", body, format="json")
    assert "firstIn" in error(response, 400, "VALIDATION_ERROR")["details"]["fields"]
