"""The adjustment request endpoints: create, list, detail, approve, reject, cancel."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from attendance.models import AdjustmentRequest, AttendanceRecord
from audit.models import AuditEvent
from tests.support import client_for, data, error

pytestmark = pytest.mark.django_db

User = get_user_model()
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
MONDAY = dt.date(2024, 3, 4)
URL = "/api/attendance/requests"


MISSING = object()


def create(client, **body):
    body.setdefault("workDate", "2024-03-04")
    body.setdefault("reason", "Forgot my badge")
    body = {key: value for key, value in body.items() if value is not MISSING}
    return client.post(URL, body, format="json")


def test_create_answers_the_request(people):
    employee = people["employee"]
    before = timezone.now()
    body = data(
        create(
            client_for(employee),
            firstIn="2024-03-04T09:00:00+08:00",
            lastOut="2024-03-04T10:00:00Z",
        ),
        201,
    )
    stored = AdjustmentRequest.objects.get()
    created_at = dt.datetime.fromisoformat(body.pop("createdAt"))
    assert created_at.utcoffset() == dt.timedelta(hours=8)
    assert before <= created_at <= timezone.now()
    assert body == {
        "id": stored.pk,
        "employee": {"id": employee.pk, "employeeNo": employee.employee_no, "name": employee.name},
        "workDate": "2024-03-04",
        "firstIn": "2024-03-04T09:00:00+08:00",
        "lastOut": "2024-03-04T18:00:00+08:00",
        "status": "",
        "reason": "Forgot my badge",
        "state": "pending",
        "createdBy": {"id": employee.user_id, "username": "employee_user"},
        "decidedBy": None,
        "decidedAt": None,
        "comment": "",
    }
    assert stored.requested_last_out == dt.datetime(2024, 3, 4, 10, tzinfo=dt.UTC)


def test_times_without_an_offset_are_read_in_the_organisation_time_zone(people):
    body = data(
        create(
            client_for(people["employee"]),
            firstIn="2024-03-04T09:00:00",
            lastOut="2024-03-04T18:30",
        ),
        201,
    )
    assert (body["firstIn"], body["lastOut"]) == (
        "2024-03-04T09:00:00+08:00",
        "2024-03-04T18:30:00+08:00",
    )
    stored = AdjustmentRequest.objects.get()
    assert stored.requested_first_in == dt.datetime(2024, 3, 4, 1, 0, tzinfo=dt.UTC)


def test_create_with_a_status_only(people):
    body = data(create(client_for(people["employee"]), status="leave"), 201)
    assert (body["status"], body["firstIn"], body["lastOut"]) == ("leave", None, None)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"status": "leave", "reason": MISSING}, ["reason"]),
        ({"status": "leave", "reason": None}, ["reason"]),
        ({"status": "leave", "reason": ""}, ["reason"]),
        ({"status": "leave", "workDate": "2024-02-30"}, ["workDate"]),
        ({"status": "adjusted"}, ["status"]),
        ({}, ["nonFieldErrors"]),
        ({"firstIn": "2024-03-09T09:00:00+08:00"}, ["firstIn"]),
        ({"firstIn": "2024-03-04T18:00:00+08:00", "lastOut": "2024-03-04T09:00:00+08:00"}, None),
        ({"status": "leave", "workDate": "2999-01-01"}, ["workDate"]),
    ],
)
def test_create_validates(people, body, fields):
    response = create(client_for(people["employee"]), **body)
    details = error(response, 400, "VALIDATION_ERROR")["details"]
    assert list(details["fields"]) == (fields or ["lastOut"])
    assert not AdjustmentRequest.objects.exists()


def test_a_second_pending_request_for_the_day_conflicts(people):
    client = client_for(people["employee"])
    data(create(client, status="leave"), 201)
    error(create(client, status="off"), 409, "REQUEST_STATE_CONFLICT")
    assert AdjustmentRequest.objects.count() == 1


@pytest.fixture
def requests_by_person(people, other_organisation, make_person):
    made = {}
    for name, person in people.items():
        made[name] = AdjustmentRequest.objects.create(
            organisation_id=person.organisation_id,
            employee=person,
            work_date=MONDAY,
            requested_status="leave",
            reason=f"{name} ill",
            created_by=person.user,
        )
    foreigner = make_person(other_organisation, "employee", "admin")
    made["foreign"] = AdjustmentRequest.objects.create(
        organisation_id=other_organisation.pk,
        employee=foreigner,
        work_date=MONDAY,
        requested_status="leave",
        reason="foreign",
        created_by=foreigner.user,
    )
    return made


def listed(client, query="") -> set[int]:
    return {item["id"] for item in data(client.get(f"{URL}{query}"))["items"]}


def test_list_visibility(people, requests_by_person):
    r = requests_by_person
    assert listed(client_for(people["employee"])) == {r["employee"].pk}
    assert listed(client_for(people["approver"])) == {r["approver"].pk, r["employee"].pk}
    assert listed(client_for(people["approver"]), "?mine=true") == {r["approver"].pk}
    assert listed(client_for(people["admin"])) == {r[name].pk for name in people}
    assert listed(client_for(r["foreign"].employee)) == {r["foreign"].pk}


def test_list_filters_by_state(people, requests_by_person):
    approved = requests_by_person["employee"]
    AdjustmentRequest.objects.filter(pk=approved.pk).update(
        state="approved", decided_at=timezone.now()
    )
    admin = client_for(people["admin"])
    assert listed(admin, "?status=approved") == {approved.pk}
    assert approved.pk not in listed(admin, "?status=pending")
    error(admin.get(f"{URL}?status=maybe"), 400, "VALIDATION_ERROR")


def test_list_is_paginated(people, requests_by_person):
    body = data(client_for(people["admin"]).get(f"{URL}?pageSize=2"))
    assert (body["page"], body["pageSize"], body["total"], len(body["items"])) == (1, 2, 5, 2)


def test_request_list_query_count_does_not_grow_with_the_page(people):
    employee = people["employee"]
    approver_user = people["approver"].user
    AdjustmentRequest.objects.bulk_create(
        AdjustmentRequest(
            organisation_id=employee.organisation_id,
            employee=employee,
            work_date=MONDAY - dt.timedelta(days=offset),
            requested_status="leave",
            reason="x",
            state="approved" if offset % 2 else "pending",
            decided_by=approver_user if offset % 2 else None,
            decided_at=timezone.now() if offset % 2 else None,
            created_by=employee.user,
        )
        for offset in range(60)
    )
    counts = []
    for size in (5, 50):
        client = client_for(people["admin"])
        with CaptureQueriesContext(connection) as queries:
            body = data(client.get(f"{URL}?pageSize={size}"))
        assert len(body["items"]) == size
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_detail(people, requests_by_person):
    request = requests_by_person["employee"]
    for viewer in ("employee", "approver", "admin"):
        body = data(client_for(people[viewer]).get(f"{URL}/{request.pk}"))
        assert (body["id"], body["reason"], body["state"]) == (
            request.pk,
            "employee ill",
            "pending",
        )


def test_detail_is_not_found_outside_ones_view(people, requests_by_person):
    request = requests_by_person["employee"]
    error(client_for(people["stranger"]).get(f"{URL}/{request.pk}"), 404, "NOT_FOUND")
    foreign = requests_by_person["foreign"].pk
    error(client_for(people["admin"]).get(f"{URL}/{foreign}"), 404, "NOT_FOUND")
    error(client_for(people["admin"]).get(f"{URL}/987654321"), 404, "NOT_FOUND")


def test_approve_rewrites_the_day(people):
    employee = people["employee"]
    record = AttendanceRecord.objects.create(
        organisation_id=employee.organisation_id,
        employee=employee,
        work_date=MONDAY,
        first_in=dt.datetime(2024, 3, 4, 9, 30, tzinfo=SHANGHAI),
        status="partial",
        source="punch",
    )
    request_id = data(
        create(
            client_for(employee),
            firstIn="2024-03-04T09:00:00+08:00",
            lastOut="2024-03-04T18:00:00+08:00",
        ),
        201,
    )["id"]
    approver = people["approver"]
    body = data(
        client_for(approver).post(f"{URL}/{request_id}/approve", {"comment": "fine"}, format="json")
    )
    assert (body["state"], body["comment"], body["decidedBy"]) == (
        "approved",
        "fine",
        {"id": approver.user_id, "username": "approver_user"},
    )
    assert body["decidedAt"].endswith("+08:00")
    record.refresh_from_db()
    assert (record.status, record.source, record.work_minutes) == ("adjusted", "adjustment", 540)
    event = AuditEvent.objects.get(action="attendance.request.approved")
    assert event.target_id == str(request_id)
    assert event.actor_id == approver.user_id

    records = data(client_for(employee).get("/api/attendance/records"))["items"]
    assert [(r["status"], r["source"], r["firstIn"]) for r in records] == [
        ("adjusted", "adjustment", "2024-03-04T09:00:00+08:00")
    ]


def test_approving_twice_conflicts(people, requests_by_person):
    request = requests_by_person["employee"]
    approver = client_for(people["approver"])
    data(approver.post(f"{URL}/{request.pk}/approve"))
    conflict = error(approver.post(f"{URL}/{request.pk}/approve"), 409, "REQUEST_STATE_CONFLICT")
    assert "approved" in conflict["message"]
    error(approver.post(f"{URL}/{request.pk}/reject"), 409, "REQUEST_STATE_CONFLICT")
    error(
        client_for(people["employee"]).post(f"{URL}/{request.pk}/cancel"),
        409,
        "REQUEST_STATE_CONFLICT",
    )
    assert AuditEvent.objects.filter(action="attendance.request.approved").count() == 1


def test_deciding_another_organisations_request_is_not_found(people, requests_by_person):
    foreign = requests_by_person["foreign"]
    admin = client_for(people["admin"])
    for action in ("approve", "reject", "cancel"):
        error(admin.post(f"{URL}/{foreign.pk}/{action}"), 404, "NOT_FOUND")
        error(admin.post(f"{URL}/987654321/{action}"), 404, "NOT_FOUND")
    foreign.refresh_from_db()
    assert foreign.state == "pending"


def test_reject(people, requests_by_person):
    request = requests_by_person["employee"]
    body = data(
        client_for(people["admin"]).post(
            f"{URL}/{request.pk}/reject", {"comment": "no proof"}, format="json"
        )
    )
    assert (body["state"], body["comment"]) == ("rejected", "no proof")
    assert not AttendanceRecord.objects.exists()


def test_decision_comment_is_validated(people, requests_by_person):
    request = requests_by_person["employee"]
    response = client_for(people["admin"]).post(
        f"{URL}/{request.pk}/approve", {"comment": "x" * 2001}, format="json"
    )
    assert list(error(response, 400, "VALIDATION_ERROR")["details"]["fields"]) == ["comment"]
    request.refresh_from_db()
    assert request.state == "pending"


def test_cancel(people, requests_by_person):
    request = requests_by_person["employee"]
    error(client_for(people["approver"]).post(f"{URL}/{request.pk}/cancel"), 403, "FORBIDDEN")
    body = data(client_for(people["employee"]).post(f"{URL}/{request.pk}/cancel"))
    assert body["state"] == "cancelled"
    error(
        client_for(people["approver"]).post(f"{URL}/{request.pk}/approve"),
        409,
        "REQUEST_STATE_CONFLICT",
    )
