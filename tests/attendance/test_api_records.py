"""The attendance API: permissions of every endpoint, me, punch, records, summary, export."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zoneinfo

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from attendance.models import AdjustmentRequest, AttendanceRecord, Employee, Punch
from audit.models import AuditEvent
from tests.support import client_for, data, error

pytestmark = pytest.mark.django_db

User = get_user_model()
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
MONDAY = dt.date(2024, 3, 4)


STATUSES = [
    "normal",
    "late",
    "early_leave",
    "late_early",
    "partial",
    "absent",
    "off",
    "leave",
    "adjusted",
]


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


def make_record(employee, day=MONDAY, status="normal", **values) -> AttendanceRecord:
    defaults = {
        "first_in": at(day, 9, 0),
        "last_out": at(day, 18, 0),
        "work_minutes": 540,
        "source": "punch",
    }
    defaults.update(values)
    return AttendanceRecord.objects.create(
        organisation_id=employee.organisation_id,
        employee=employee,
        work_date=day,
        status=status,
        **defaults,
    )


def record_json(record: AttendanceRecord) -> dict:
    employee = record.employee

    def local(moment):
        return moment.astimezone(SHANGHAI).isoformat() if moment else None

    return {
        "id": record.pk,
        "employee": {"id": employee.pk, "employeeNo": employee.employee_no, "name": employee.name},
        "workDate": record.work_date.isoformat(),
        "firstIn": local(record.first_in),
        "lastOut": local(record.last_out),
        "workMinutes": record.work_minutes,
        "lateMinutes": record.late_minutes,
        "earlyLeaveMinutes": record.early_leave_minutes,
        "status": record.status,
        "source": record.source,
        "batchId": None,
    }


# --- permission matrix for every attendance endpoint ------------------------------------


@pytest.fixture
def pending_request(people):
    employee = people["employee"]
    return AdjustmentRequest.objects.create(
        organisation_id=employee.organisation_id,
        employee=employee,
        work_date=MONDAY,
        requested_status="leave",
        reason="ill",
        created_by=employee.user,
    )


def attendance_endpoints(request_id, reject_id=None, cancel_id=None):
    reject_id, cancel_id = reject_id or request_id, cancel_id or request_id
    return [
        ("get", "/api/attendance/me", None),
        ("post", "/api/attendance/punch", {"kind": "in"}),
        ("get", "/api/attendance/records", None),
        ("get", "/api/attendance/summary?month=2024-03", None),
        ("get", "/api/attendance/export.csv", None),
        ("get", "/api/attendance/requests", None),
        ("post", "/api/attendance/requests", {"workDate": "2024-03-05", "status": "leave"}),
        ("get", f"/api/attendance/requests/{request_id}", None),
        ("post", f"/api/attendance/requests/{request_id}/approve", {}),
        ("post", f"/api/attendance/requests/{reject_id}/reject", {}),
        ("post", f"/api/attendance/requests/{cancel_id}/cancel", {}),
    ]


def call(client, method, url, body):
    return (
        getattr(client, method)(url, body, format="json") if method == "post" else client.get(url)
    )


def test_every_attendance_endpoint_refuses_anonymous(api, pending_request):
    for method, url, body in attendance_endpoints(pending_request.pk):
        response = call(api(), method, url, body)
        error(response, 401, "UNAUTHENTICATED")
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Punch.objects.exists()
    pending_request.refresh_from_db()
    assert pending_request.state == "pending"


def test_every_attendance_endpoint_refuses_a_login_without_an_employee(pending_request):
    client = APIClient()
    client.force_authenticate(user=User.objects.create_user("outsider", password="x" * 12))
    for method, url, body in attendance_endpoints(pending_request.pk):
        error(call(client, method, url, body), 403, "FORBIDDEN")


def test_every_attendance_endpoint_refuses_an_inactive_employee(people, pending_request):
    Employee.objects.filter(pk=people["approver"].pk).update(is_active=False)
    client = client_for(people["approver"])
    for method, url, body in attendance_endpoints(pending_request.pk):
        error(call(client, method, url, body), 403, "FORBIDDEN")
    pending_request.refresh_from_db()
    assert pending_request.state == "pending"


def test_every_attendance_endpoint_answers_the_right_role(people, pending_request):
    employee, approver = client_for(people["employee"]), client_for(people["approver"])
    to_reject, to_cancel = (
        AdjustmentRequest.objects.create(
            organisation_id=pending_request.organisation_id,
            employee=pending_request.employee,
            work_date=MONDAY - dt.timedelta(days=days),
            requested_status="leave",
            reason="x",
            created_by=pending_request.created_by,
        )
        for days in (1, 2)
    )
    endpoints = attendance_endpoints(pending_request.pk, to_reject.pk, to_cancel.pk)
    expected = [
        (employee, 200),  # me
        (employee, 201),  # punch
        (employee, 200),  # records
        (employee, 200),  # summary
        (employee, 200),  # export.csv
        (employee, 200),  # requests list
        (employee, 201),  # requests create
        (approver, 200),  # detail
        (approver, 200),  # approve
        (approver, 200),  # reject
        (employee, 200),  # cancel
    ]
    for (method, url, body), (client, status) in zip(endpoints, expected, strict=True):
        if url == "/api/attendance/requests" and method == "post":
            body = {**body, "reason": "ill"}
        response = call(client, method, url, body)
        assert response.status_code == status, (url, response.content)
    states = dict(
        AdjustmentRequest.objects.filter(
            pk__in=[pending_request.pk, to_reject.pk, to_cancel.pk]
        ).values_list("pk", "state")
    )
    assert states == {
        pending_request.pk: "approved",
        to_reject.pk: "rejected",
        to_cancel.pk: "cancelled",
    }


def test_deciding_is_forbidden_to_the_requester_and_hidden_from_strangers(people, pending_request):
    own = client_for(people["employee"])
    for action in ("approve", "reject"):
        error(own.post(f"/api/attendance/requests/{pending_request.pk}/{action}"), 403, "FORBIDDEN")
        error(
            client_for(people["stranger"]).post(
                f"/api/attendance/requests/{pending_request.pk}/{action}"
            ),
            404,
            "NOT_FOUND",
        )
    error(
        client_for(people["approver"]).post(
            f"/api/attendance/requests/{pending_request.pk}/cancel"
        ),
        403,
        "FORBIDDEN",
    )
    pending_request.refresh_from_db()
    assert pending_request.state == "pending"


def test_bearer_token_authenticates(people):
    from attendance import services

    user = people["employee"].user
    _, raw = services.api_token_issue(actor=user, user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert data(client.get("/api/attendance/me"))["username"] == user.username


# --- me and punch -----------------------------------------------------------------------


def test_me(people):
    approver, employee = people["approver"], people["employee"]
    body = data(client_for(approver).get("/api/attendance/me"))
    organisation = approver.organisation
    assert body == {
        "userId": approver.user_id,
        "username": "approver_user",
        "employee": {
            "id": approver.pk,
            "employeeNo": approver.employee_no,
            "name": approver.name,
            "department": "",
            "approverId": None,
        },
        "organisation": {
            "id": organisation.pk,
            "name": organisation.name,
            "timeZone": "Asia/Shanghai",
        },
        "roles": ["attendance_approver", "attendance_employee"],
    }
    assert data(client_for(employee).get("/api/attendance/me"))["employee"]["approverId"] == (
        approver.pk
    )


def test_punch_answers_the_punch_and_the_day_and_resends_are_idempotent(people):
    employee = people["employee"]
    client = client_for(employee)
    first = data(
        client.post("/api/attendance/punch", {"kind": "in", "clientId": "c-1"}, format="json"), 201
    )
    assert set(first) == {"punch", "day", "created"}
    assert first["created"] is True
    assert first["punch"]["kind"] == "in"
    assert first["punch"]["source"] == "web"
    assert first["punch"]["occurredAt"].endswith("+08:00")
    record = AttendanceRecord.objects.get(employee=employee)
    assert first["day"] == record_json(record)
    assert first["day"]["workDate"] == first["punch"]["workDate"]

    again = data(
        client.post("/api/attendance/punch", {"kind": "in", "clientId": "c-1"}, format="json"), 200
    )
    assert again["created"] is False
    assert again["punch"] == first["punch"]
    assert Punch.objects.filter(employee=employee).count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "kind"), ({"kind": "sideways"}, "kind"), ({"kind": "in", "clientId": ""}, "clientId")],
)
def test_punch_validates_its_body(people, body, field):
    response = client_for(people["employee"]).post("/api/attendance/punch", body, format="json")
    assert list(error(response, 400, "VALIDATION_ERROR")["details"]["fields"]) == [field]
    assert not Punch.objects.exists()


# --- records ----------------------------------------------------------------------------


@pytest.fixture
def records(people, other_organisation, make_person):
    """One Monday record per person of the organisation, and one in another organisation."""
    made = {name: make_record(person) for name, person in people.items()}
    made["foreign"] = make_record(make_person(other_organisation, "employee", "admin"))
    return made


def listed_ids(client, query="") -> list[int]:
    return [item["id"] for item in data(client.get(f"/api/attendance/records{query}"))["items"]]


def test_employee_sees_only_their_own_records(people, records):
    body = data(client_for(people["employee"]).get("/api/attendance/records"))
    assert body == {
        "items": [record_json(records["employee"])],
        "page": 1,
        "pageSize": 50,
        "total": 1,
    }


def test_approver_sees_own_and_reports(people, records):
    assert set(listed_ids(client_for(people["approver"]))) == {
        records["approver"].pk,
        records["employee"].pk,
    }


def test_admin_sees_the_whole_organisation_never_another(people, records):
    expected = {records[name].pk for name in people}
    assert set(listed_ids(client_for(people["admin"]))) == expected
    foreign_admin = records["foreign"].employee
    assert listed_ids(client_for(foreign_admin)) == [records["foreign"].pk]


def test_an_employee_filter_outside_ones_view_is_empty(people, records):
    stranger = people["stranger"].pk
    assert listed_ids(client_for(people["employee"]), f"?employee={stranger}") == []
    assert listed_ids(client_for(people["approver"]), f"?employee={stranger}") == []
    foreign = records["foreign"].employee_id
    assert listed_ids(client_for(people["admin"]), f"?employee={foreign}") == []


def test_record_filters(people):
    employee, stranger = people["employee"], people["stranger"]
    days = [MONDAY + dt.timedelta(days=offset) for offset in range(4)]
    mine = [
        make_record(employee, day, status)
        for day, status in zip(days, ["normal", "late", "normal", "absent"], strict=True)
    ]
    theirs = make_record(stranger, days[1], "late")
    admin = client_for(people["admin"])
    assert listed_ids(admin, "?from=2024-03-05&to=2024-03-06") == [
        mine[2].pk,
        mine[1].pk,
        theirs.pk,
    ]
    assert listed_ids(admin, "?status=late") == [mine[1].pk, theirs.pk]
    assert listed_ids(admin, f"?employee={employee.pk}&status=normal") == [mine[2].pk, mine[0].pk]
    assert listed_ids(admin, "?from=2024-03-07") == [mine[3].pk]
    assert listed_ids(admin, "?to=2024-03-04") == [mine[0].pk]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?from=2024-13-01", "from"),
        ("?from=yesterday", "from"),
        ("?to=2024-02-30", "to"),
        ("?from=2024-03-05&to=2024-03-04", "to"),
        ("?status=sleeping", "status"),
        ("?employee=abc", "employee"),
        ("?employee=0", "employee"),
    ],
)
def test_bad_record_filters_are_validation_errors(people, query, field):
    response = client_for(people["employee"]).get(f"/api/attendance/records{query}")
    details = error(response, 400, "VALIDATION_ERROR")["details"]
    assert list(details["fields"]) == [field]
    assert all(isinstance(message, str) for message in details["fields"][field])


@pytest.fixture
def sixty_records(people):
    employee = people["employee"]
    AttendanceRecord.objects.bulk_create(
        AttendanceRecord(
            organisation_id=employee.organisation_id,
            employee=employee,
            work_date=MONDAY - dt.timedelta(days=offset),
            status="normal",
            source="punch",
        )
        for offset in range(60)
    )
    return employee


def page(client, url):
    body = data(client.get(url))
    return (
        body["page"],
        body["pageSize"],
        body["total"],
        [item["workDate"] for item in body["items"]],
    )


def test_pagination(people, sixty_records):
    client = client_for(people["admin"])
    number, size, total, dates = page(client, "/api/attendance/records?pageSize=25&page=2")
    assert (number, size, total, len(dates)) == (2, 25, 60, 25)
    assert dates[0] == (MONDAY - dt.timedelta(days=25)).isoformat()
    assert (
        page(client, "/api/attendance/records?pageSize=25&page=3")[3][-1]
        == (MONDAY - dt.timedelta(days=59)).isoformat()
    )
    assert page(client, "/api/attendance/records")[:3] == (1, 50, 60)
    assert page(client, "/api/attendance/records?pageSize=200")[:3] == (1, 200, 60)
    refused = error(client.get("/api/attendance/records?pageSize=201"), 400, "VALIDATION_ERROR")
    assert list(refused["details"]["fields"]) == ["pageSize"]
    assert page(client, "/api/attendance/records?page=99") == (99, 50, 60, [])


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("page=²", "page"),
        ("pageSize=0", "pageSize"),
        ("pageSize=1.5", "pageSize"),
        ("page=" + "9" * 5000, "page"),
    ],
)
def test_bad_pagination_is_a_validation_error(people, query, field):
    response = client_for(people["employee"]).get(f"/api/attendance/records?{query}")
    assert list(error(response, 400, "VALIDATION_ERROR")["details"]["fields"]) == [field]


def count_queries(employee, url) -> tuple[int, int]:
    client = client_for(employee)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(queries), len(response.json()["data"]["items"])


def test_record_list_query_count_does_not_grow_with_the_page(people, sixty_records):
    small, small_items = count_queries(people["admin"], "/api/attendance/records?pageSize=5")
    large, large_items = count_queries(people["admin"], "/api/attendance/records?pageSize=50")
    assert (small_items, large_items) == (5, 50)
    assert small == large
    assert large <= 6


# --- summary ----------------------------------------------------------------------------


def test_summary_counts_statuses_and_minutes(people):
    employee = people["employee"]
    make_record(employee, MONDAY, "normal", work_minutes=540)
    make_record(employee, MONDAY + dt.timedelta(days=1), "late", work_minutes=500, late_minutes=40)
    make_record(
        employee,
        MONDAY + dt.timedelta(days=2),
        "early_leave",
        work_minutes=480,
        early_leave_minutes=60,
    )
    make_record(employee, dt.date(2024, 4, 1), "absent", work_minutes=0)  # another month
    make_record(people["stranger"], MONDAY, "late", work_minutes=1, late_minutes=7)
    expected_by_status = dict.fromkeys(STATUSES, 0) | {"normal": 1, "late": 1, "early_leave": 1}
    expected = {
        "month": "2024-03",
        "days": 3,
        "byStatus": expected_by_status,
        "workMinutes": 1520,
        "lateMinutes": 40,
        "earlyLeaveMinutes": 60,
    }
    assert data(client_for(employee).get("/api/attendance/summary?month=2024-03")) == expected
    admin = client_for(people["admin"])
    assert (
        data(admin.get(f"/api/attendance/summary?month=2024-03&employee={employee.pk}")) == expected
    )
    everyone = data(admin.get("/api/attendance/summary?month=2024-03"))
    assert (everyone["days"], everyone["byStatus"]["late"], everyone["lateMinutes"]) == (4, 2, 47)


def test_summary_of_an_empty_month(people):
    body = data(client_for(people["employee"]).get("/api/attendance/summary?month=2023-02"))
    assert body == {
        "month": "2023-02",
        "days": 0,
        "byStatus": dict.fromkeys(STATUSES, 0),
        "workMinutes": 0,
        "lateMinutes": 0,
        "earlyLeaveMinutes": 0,
    }


def test_summary_of_the_last_representable_month(people):
    body = data(client_for(people["employee"]).get("/api/attendance/summary?month=9999-12"))
    assert (body["month"], body["days"]) == ("9999-12", 0)


@pytest.mark.parametrize(
    "query", ["", "?month=2024-13", "?month=2024-3", "?month=march", "?month=0000-01"]
)
def test_summary_needs_a_month(people, query):
    response = client_for(people["employee"]).get(f"/api/attendance/summary{query}")
    assert list(error(response, 400, "VALIDATION_ERROR")["details"]["fields"]) == ["month"]


# --- export -----------------------------------------------------------------------------

EXPORT_HEADER = [
    "employee_no",
    "name",
    "department",
    "work_date",
    "first_in",
    "last_out",
    "work_minutes",
    "late_minutes",
    "early_leave_minutes",
    "status",
    "source",
    "batch_id",
]


def export_rows(client, query="") -> tuple[StreamingHttpResponse, bytes, list[list[str]]]:
    response = client.get(f"/api/attendance/export.csv{query}")
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    raw = b"".join(response.streaming_content)
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    return response, raw, rows


def test_export_streams_csv_with_bom_and_neutralised_formulas(people):
    employee = people["employee"]
    Employee.objects.filter(pk=employee.pk).update(
        name='=HYPERLINK("http://evil.example","x")', department="+SUM(A1)"
    )
    employee.refresh_from_db()
    make_record(employee, MONDAY, "late", work_minutes=500, late_minutes=40)
    response, raw, rows = export_rows(client_for(employee))
    assert raw.startswith(b"\xef\xbb\xbf")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="attendance.csv"'
    assert rows == [
        EXPORT_HEADER,
        [
            employee.employee_no,
            '\'=HYPERLINK("http://evil.example","x")',
            "'+SUM(A1)",
            "2024-03-04",
            "2024-03-04T09:00:00+08:00",
            "2024-03-04T18:00:00+08:00",
            "500",
            "40",
            "0",
            "late",
            "punch",
            "",
        ],
    ]


def test_export_keeps_visibility_and_filters(people, records):
    make_record(people["employee"], MONDAY + dt.timedelta(days=1), "late")
    _, _, rows = export_rows(client_for(people["employee"]))
    assert [(row[0], row[3]) for row in rows[1:]] == [
        (people["employee"].employee_no, "2024-03-05"),
        (people["employee"].employee_no, "2024-03-04"),
    ]
    _, _, rows = export_rows(client_for(people["admin"]), "?status=normal&to=2024-03-04")
    assert sorted(row[0] for row in rows[1:]) == sorted(p.employee_no for p in people.values())
    foreign_no = records["foreign"].employee.employee_no
    assert foreign_no not in {row[0] for row in rows[1:]}


def test_export_validates_its_filters(people):
    response = client_for(people["employee"]).get("/api/attendance/export.csv?from=nope")
    assert list(error(response, 400, "VALIDATION_ERROR")["details"]["fields"]) == ["from"]


def test_export_writes_only_its_own_audit_event_and_no_punch(people, records):
    before = AuditEvent.objects.count()
    export_rows(client_for(people["admin"]))
    assert AuditEvent.objects.count() == before + 1
    assert AuditEvent.objects.filter(action="attendance.records.exported").count() == 1
