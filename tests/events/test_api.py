"""The events API (API.md "Events"): who may call what, the bodies, the refusals and their
codes, check-in through the API (window, lateness, nonce), and list query counts."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from events import services
from events.choices import Attendance, EventStatus, Registration
from events.models import Event, EventParticipant
from tests.support import client_for, data, error

pytestmark = pytest.mark.django_db

EVENT_KEYS = {
    "id",
    "title",
    "location",
    "startsAt",
    "endsAt",
    "checkInOpensAt",
    "checkInClosesAt",
    "lateGraceMinutes",
    "status",
    "completedAt",
    "counts",
}
PARTICIPANT_KEYS = {
    "id",
    "employee",
    "registration",
    "attendance",
    "markedAt",
    "markedBy",
    "notes",
}
ZERO = {"unknown": 0, "present": 0, "late": 0, "absent": 0, "excused": 0}


def make_event(actor, *, starts_in=dt.timedelta(minutes=10), hours=2, **extra) -> Event:
    starts_at = timezone.now() + starts_in
    return services.event_create(
        actor=actor.user,
        organisation=actor.organisation,
        title=extra.pop("title", "Fire drill"),
        starts_at=starts_at,
        ends_at=starts_at + dt.timedelta(hours=hours),
        **extra,
    )


def add(event, *employees) -> list[EventParticipant]:
    services.participants_add(
        actor=None, event=event, employee_nos=[employee.employee_no for employee in employees]
    )
    return [EventParticipant.objects.get(event=event, employee=e) for e in employees]


@pytest.fixture
def world(people, other_organisation, make_person):
    """An event with the employee and the approver taking part, an event the employee is
    not part of (the stranger's), and an event of another organisation."""
    event = make_event(people["admin"], location="Hall A")
    employee_row, approver_row = add(event, people["employee"], people["approver"])
    elsewhere = make_event(people["admin"], title="Board meeting")
    add(elsewhere, people["stranger"])
    outsider = make_person(other_organisation, "employee", "admin", username="outsider")
    foreign = make_event(outsider, title="Their event")
    foreign_row = add(foreign, outsider)[0]
    return {
        **people,
        "event": event,
        "row": employee_row,
        "approver_row": approver_row,
        "elsewhere": elsewhere,
        "outsider": outsider,
        "foreign": foreign,
        "foreign_row": foreign_row,
    }


def _call(client, method: str, url: str, body=None):
    return (
        getattr(client, method)(url, body, format="json")
        if body is not None
        else getattr(client, method)(url)
    )


def endpoints(world) -> list[tuple[str, str, dict | None]]:
    event, row = world["event"], world["row"]
    base = f"/api/events/{event.pk}"
    return [
        ("get", "/api/events", None),
        (
            "post",
            "/api/events",
            {"title": "x", "startsAt": "2030-01-01T09:00", "endsAt": "2030-01-01T10:00"},
        ),
        ("get", "/api/events/mine", None),
        ("get", base, None),
        ("patch", base, {"title": "Renamed"}),
        ("get", f"{base}/participants", None),
        ("post", f"{base}/participants", {"employeeNos": ["NOBODY"]}),
        ("post", f"{base}/participants/{row.pk}/check-in", {}),
        ("patch", f"{base}/participants/{row.pk}/attendance", {"status": "excused"}),
        ("post", f"{base}/participants/attendance", {"participantIds": [row.pk], "status": "late"}),
        ("post", f"{base}/complete", None),  # last: a completed event refuses changes
    ]


ORGANISER_ONLY = {
    ("post", "/api/events"),
    ("patch", "{base}"),
    ("post", "{base}/complete"),
    ("get", "{base}/participants"),
    ("post", "{base}/participants"),
    ("patch", "{base}/participants/{pid}/attendance"),
    ("post", "{base}/participants/attendance"),
}


def _template(world, url: str) -> str:
    base = f"/api/events/{world['event'].pk}"
    return url.replace(
        f"{base}/participants/{world['row'].pk}", "{base}/participants/{pid}"
    ).replace(base, "{base}")


# --- who may call what ------------------------------------------------------------------


def test_anonymous_gets_401_everywhere(world):
    for method, url, body in endpoints(world):
        response = _call(APIClient(), method, url, body)
        error(response, 401, "UNAUTHENTICATED")
    assert world["event"].title == Event.objects.get(pk=world["event"].pk).title


def test_an_employee_is_refused_the_organisers_endpoints(world):
    client = client_for(world["employee"])
    for method, url, body in endpoints(world):
        if (method, _template(world, url)) in ORGANISER_ONLY:
            error(_call(client, method, url, body), 403, "FORBIDDEN")
    event = Event.objects.get(pk=world["event"].pk)
    assert (event.title, event.status) == ("Fire drill", EventStatus.SCHEDULED)


@pytest.mark.parametrize("who", ["admin", "approver"])
def test_organisers_reach_every_endpoint(world, who):
    client = client_for(world[who])
    expected = {"post /api/events": 201}
    for method, url, body in endpoints(world):
        response = _call(client, method, url, body)
        status = expected.get(f"{method} {url}", 200)
        assert response.status_code == status, (method, url, response.content)
        assert response.json()["ok"] is True


def test_another_organisations_ids_answer_404(world):
    client = client_for(world["admin"])
    foreign, row = world["foreign"], world["foreign_row"]
    base = f"/api/events/{foreign.pk}"
    for method, url, body in [
        ("get", base, None),
        ("patch", base, {"title": "Hijacked"}),
        ("post", f"{base}/complete", None),
        ("get", f"{base}/participants", None),
        ("post", f"{base}/participants", {"employeeNos": [world["employee"].employee_no]}),
        ("post", f"{base}/participants/{row.pk}/check-in", {}),
        ("patch", f"{base}/participants/{row.pk}/attendance", {"status": "absent"}),
        ("post", f"{base}/participants/attendance", {"participantIds": [row.pk], "status": "late"}),
    ]:
        error(_call(client, method, url, body), 404, "NOT_FOUND")
    # Nor a participant of another event through this organisation's event.
    own = f"/api/events/{world['event'].pk}/participants/{row.pk}"
    error(client.post(f"{own}/check-in", {}, format="json"), 404, "NOT_FOUND")
    error(client.patch(f"{own}/attendance", {"status": "absent"}, format="json"), 404, "NOT_FOUND")
    listed = data(client.get("/api/events"))["items"]
    assert foreign.pk not in {item["id"] for item in listed}
    foreign.refresh_from_db()
    row.refresh_from_db()
    assert (foreign.title, foreign.status, row.attendance) == (
        "Their event",
        EventStatus.SCHEDULED,
        Attendance.UNKNOWN,
    )


def test_an_employee_sees_only_the_events_they_take_part_in(world):
    client = client_for(world["employee"])
    listed = data(client.get("/api/events"))
    assert [item["id"] for item in listed["items"]] == [world["event"].pk]
    assert listed["total"] == 1
    assert data(client.get(f"/api/events/{world['event'].pk}"))["id"] == world["event"].pk
    error(client.get(f"/api/events/{world['elsewhere'].pk}"), 404, "NOT_FOUND")
    error(client.get(f"/api/events/{world['foreign'].pk}"), 404, "NOT_FOUND")


def test_an_employee_checks_in_only_themself(world):
    client = client_for(world["employee"])
    other = f"/api/events/{world['event'].pk}/participants/{world['approver_row'].pk}/check-in"
    error(client.post(other, {}, format="json"), 403, "FORBIDDEN")
    world["approver_row"].refresh_from_db()
    assert world["approver_row"].attendance == Attendance.UNKNOWN
    # Not in the event at all: the event itself is not theirs to see.
    stranger = client_for(world["stranger"])
    own_url = f"/api/events/{world['event'].pk}/participants/{world['row'].pk}/check-in"
    error(stranger.post(own_url, {}, format="json"), 404, "NOT_FOUND")


# --- events -----------------------------------------------------------------------------


def test_create_answers_the_event_in_the_organisations_zone(world):
    body = {
        "title": "  Safety training ",
        "location": "Room 3",
        "startsAt": "2030-05-04T09:00:00+08:00",
        "endsAt": "2030-05-04T01:30:00Z",
        "checkInOpensAt": "2030-05-04T08:00",  # no offset: the organisation's zone
        "lateGraceMinutes": 10,
    }
    created = data(client_for(world["approver"]).post("/api/events", body, format="json"), 201)
    assert set(created) == EVENT_KEYS
    assert created == {
        "id": created["id"],
        "title": "Safety training",
        "location": "Room 3",
        "startsAt": "2030-05-04T09:00:00+08:00",
        "endsAt": "2030-05-04T09:30:00+08:00",
        "checkInOpensAt": "2030-05-04T08:00:00+08:00",
        "checkInClosesAt": None,
        "lateGraceMinutes": 10,
        "status": "scheduled",
        "completedAt": None,
        "counts": ZERO,
    }
    event = Event.objects.get(pk=created["id"])
    assert event.organisation == world["approver"].organisation
    assert event.starts_at == dt.datetime(2030, 5, 4, 1, 0, tzinfo=dt.UTC)
    assert AuditEvent.objects.filter(
        action="events.event.created", target_id=str(event.pk)
    ).exists()


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (
            {"title": "x", "startsAt": "2030-01-01T10:00", "endsAt": "2030-01-01T09:00"},
            {"endsAt", "checkInClosesAt"},  # the default window closes at the end too
        ),
        (
            {
                "title": "x",
                "startsAt": "2030-01-01T10:00",
                "endsAt": "2030-01-01T12:00",
                "checkInOpensAt": "2030-01-01T11:00",
                "checkInClosesAt": "2030-01-01T10:30",
            },
            {"checkInClosesAt"},
        ),
        ({"title": " ", "startsAt": "2030-01-01T10:00", "endsAt": "2030-01-01T11:00"}, {"title"}),
        ({"startsAt": "2030-01-01T10:00", "endsAt": "2030-01-01T11:00"}, {"title"}),
        ({"title": "x", "startsAt": 20300101, "endsAt": "2030-01-01T11:00"}, {"startsAt"}),
        (
            {"title": "x", "startsAt": "0001-01-01T00:00", "endsAt": "9999-12-31T23:59+01:00"},
            {"startsAt", "endsAt"},
        ),
        (
            {
                "title": "x",
                "startsAt": "2030-01-01T10:00",
                "endsAt": "2030-01-01T11:00",
                "lateGraceMinutes": 241,
            },
            {"lateGraceMinutes"},
        ),
        (
            {
                "title": "x",
                "startsAt": "2030-01-01T10:00",
                "endsAt": "2030-01-01T11:00",
                "lateGraceMinutes": "5",
            },
            {"lateGraceMinutes"},
        ),
        (
            {
                "title": "x",
                "startsAt": "2030-01-01T10:00",
                "endsAt": "2030-01-01T11:00",
                "organisation": 1,
            },
            {"organisation"},
        ),
    ],
)
def test_create_refuses_bad_bodies_naming_the_field(world, body, fields):
    before = Event.objects.count()
    response = client_for(world["admin"]).post("/api/events", body, format="json")
    details = error(response, 400, "VALIDATION_ERROR")["details"]
    assert set(details["fields"]) == fields
    assert Event.objects.count() == before


def test_detail_and_patch(world):
    client = client_for(world["admin"])
    url = f"/api/events/{world['event'].pk}"
    shown = data(client.get(url))
    assert set(shown) == EVENT_KEYS
    assert shown["counts"] == {**ZERO, "unknown": 2}
    patched = data(
        client.patch(
            url,
            {"title": "Evacuation drill", "lateGraceMinutes": 0, "checkInClosesAt": None},
            format="json",
        )
    )
    assert (patched["title"], patched["lateGraceMinutes"]) == ("Evacuation drill", 0)
    assert patched["location"] == "Hall A"  # keys not given stay
    new_end = timezone.localtime(world["event"].starts_at, world["admin"].organisation.tz)
    response = client.patch(url, {"endsAt": new_end.isoformat()}, format="json")
    assert set(error(response, 400, "VALIDATION_ERROR")["details"]["fields"]) == {"endsAt"}
    error(client.patch(url, {"status": "completed"}, format="json"), 400, "VALIDATION_ERROR")
    assert data(client.get(url))["status"] == "scheduled"


def test_complete_then_refuse_changes(world):
    client = client_for(world["approver"])
    url = f"/api/events/{world['event'].pk}"
    completed = data(client.post(f"{url}/complete"))
    assert completed["status"] == "completed"
    assert completed["completedAt"].endswith("+08:00")
    error(client.post(f"{url}/complete"), 409, "REQUEST_STATE_CONFLICT")
    error(client.patch(url, {"title": "Late change"}, format="json"), 409, "REQUEST_STATE_CONFLICT")
    response = client.post(f"{url}/participants", {"employeeNos": ["X"]}, format="json")
    error(response, 409, "REQUEST_STATE_CONFLICT")


def test_list_filters(world):
    client = client_for(world["admin"])
    past = make_event(world["admin"], title="Old training", starts_in=-dt.timedelta(days=10))
    services.event_complete(actor=world["admin"].user, event=past)
    ids = lambda query: [item["id"] for item in data(client.get(f"/api/events{query}"))["items"]]  # noqa: E731
    assert set(ids("")) == {world["event"].pk, world["elsewhere"].pk, past.pk}
    assert ids("?status=completed") == [past.pk]
    assert set(ids("?q=DRILL")) == {world["event"].pk}
    assert set(ids("?q=hall")) == {world["event"].pk}
    tz = world["admin"].organisation.tz
    past_day = timezone.localtime(past.starts_at, tz).date()
    today = timezone.localdate(timezone=tz)
    assert ids(f"?from={past_day}&to={past_day}") == [past.pk]
    assert past.pk not in ids(f"?from={today}")
    assert set(ids(f"?to={past_day + dt.timedelta(days=1)}")) == {past.pk}
    response = client.get(f"/api/events?from={today}&to={past_day}")
    assert set(error(response, 400, "VALIDATION_ERROR")["details"]["fields"]) == {"to"}
    error(client.get("/api/events?status=done"), 400, "VALIDATION_ERROR")
    error(client.get("/api/events?pageSize=201"), 400, "VALIDATION_ERROR")
    paged = data(client.get("/api/events?pageSize=2&page=2"))
    assert (paged["page"], paged["pageSize"], paged["total"], len(paged["items"])) == (2, 2, 3, 1)


# --- participants -----------------------------------------------------------------------


def test_add_participants(world, make_person):
    client = client_for(world["admin"])
    inactive = make_person(world["admin"].organisation, "employee", is_active=False)
    foreign_no = world["outsider"].employee_no
    body = {
        "employeeNos": [
            world["stranger"].employee_no,
            world["employee"].employee_no,
            inactive.employee_no,
            foreign_no,
        ]
    }
    url = f"/api/events/{world['event'].pk}/participants"
    result = data(client.post(url, body, format="json"))
    assert result == {
        "added": [world["stranger"].employee_no],
        "unchanged": [world["employee"].employee_no],
        "missing": [inactive.employee_no, foreign_no],
    }
    assert world["event"].participants.count() == 3
    for bad in ({"employeeNos": []}, {"employeeNos": "E1"}, {"employeeNos": [1]}, {}):
        error(client.post(url, bad, format="json"), 400, "VALIDATION_ERROR")


def test_participant_list_filters_and_body(world):
    client = client_for(world["approver"])
    url = f"/api/events/{world['event'].pk}/participants"
    listed = data(client.get(url))
    assert listed["total"] == 2
    first = next(item for item in listed["items"] if item["id"] == world["row"].pk)
    assert set(first) == PARTICIPANT_KEYS
    assert first == {
        "id": world["row"].pk,
        "employee": {
            "id": world["employee"].pk,
            "employeeNo": world["employee"].employee_no,
            "name": world["employee"].name,
        },
        "registration": "registered",
        "attendance": "unknown",
        "markedAt": None,
        "markedBy": None,
        "notes": "",
    }
    services.participant_mark(
        actor=world["admin"].user, participant=world["row"], status="excused", notes="ill"
    )
    excused = data(client.get(f"{url}?attendance=excused"))["items"]
    assert [item["id"] for item in excused] == [world["row"].pk]
    assert excused[0]["markedBy"] == {"id": world["admin"].user_id, "username": "admin_user"}
    assert excused[0]["markedAt"].endswith("+08:00")
    found = data(client.get(f"{url}?q={world['approver'].employee_no}"))["items"]
    assert [item["id"] for item in found] == [world["approver_row"].pk]
    assert data(client.get(f"{url}?q=nobody-at-all"))["items"] == []
    error(client.get(f"{url}?attendance=gone"), 400, "VALIDATION_ERROR")


def test_mark_one_participant(world):
    client = client_for(world["approver"])
    url = f"/api/events/{world['event'].pk}/participants/{world['row'].pk}/attendance"
    marked = data(client.patch(url, {"status": "excused", "notes": "Doctor's note"}, format="json"))
    assert (marked["attendance"], marked["notes"]) == ("excused", "Doctor's note")
    assert marked["markedBy"]["id"] == world["approver"].user_id
    audit = AuditEvent.objects.get(
        action="events.attendance.marked", target_id=str(world["row"].pk)
    )
    assert (audit.data["from"], audit.data["to"]) == ("unknown", "excused")
    for bad in ({"status": "gone"}, {}, {"status": "late", "notes": 5}, {"status": "late", "x": 1}):
        error(client.patch(url, bad, format="json"), 400, "VALIDATION_ERROR")
    assert data(client.get(f"/api/events/{world['event'].pk}"))["counts"]["excused"] == 1


def test_mark_of_a_waitlisted_registration_is_refused(world):
    EventParticipant.objects.filter(pk=world["row"].pk).update(registration=Registration.WAITLISTED)
    url = f"/api/events/{world['event'].pk}/participants/{world['row'].pk}/attendance"
    response = client_for(world["admin"]).patch(url, {"status": "present"}, format="json")
    error(response, 409, "NOT_REGISTERED")


def test_bulk_mark(world):
    client = client_for(world["admin"])
    url = f"/api/events/{world['event'].pk}/participants/attendance"
    ids = [world["row"].pk, world["approver_row"].pk]
    services.participant_mark(actor=world["admin"].user, participant=world["row"], status="late")
    body = {"participantIds": [*ids, world["foreign_row"].pk], "status": "late", "notes": ""}
    result = data(client.post(url, body, format="json"))
    assert result == {
        "updated": [world["approver_row"].pk],
        "unchanged": [world["row"].pk],
        "missing": [world["foreign_row"].pk],
    }
    assert set(
        EventParticipant.objects.filter(pk__in=ids).values_list("attendance", flat=True)
    ) == {Attendance.LATE}
    for bad in (
        {"participantIds": [], "status": "late"},
        {"participantIds": ["1"], "status": "late"},
        {"participantIds": ids},
    ):
        error(client.post(url, bad, format="json"), 400, "VALIDATION_ERROR")


# --- check-in ---------------------------------------------------------------------------


def check_in_url(event, participant) -> str:
    return f"/api/events/{event.pk}/participants/{participant.pk}/check-in"


def test_check_in_before_the_start_is_present(world):
    client = client_for(world["employee"])
    body = data(client.post(check_in_url(world["event"], world["row"]), {}, format="json"))
    assert set(body) == PARTICIPANT_KEYS
    assert body["attendance"] == "present"
    assert body["markedBy"] == {"id": world["employee"].user_id, "username": "employee_user"}
    mine = data(client.get("/api/events/mine"))["items"]
    assert mine[0]["participant"]["attendance"] == "present"


def test_check_in_after_start_and_grace_is_late(world):
    event = make_event(world["admin"], starts_in=-dt.timedelta(minutes=20), late_grace_minutes=5)
    row = add(event, world["employee"])[0]
    body = data(client_for(world["employee"]).post(check_in_url(event, row), {}, format="json"))
    assert body["attendance"] == "late"


def test_check_in_outside_the_window_is_closed(world):
    future = make_event(world["admin"], starts_in=dt.timedelta(hours=3))
    row = add(future, world["employee"])[0]
    client = client_for(world["employee"])
    err = error(client.post(check_in_url(future, row), {}, format="json"), 409, "CHECKIN_CLOSED")
    assert set(err["details"]) >= {"opensAt", "closesAt"}
    services.event_complete(actor=world["admin"].user, event=world["event"])
    response = client.post(check_in_url(world["event"], world["row"]), {}, format="json")
    error(response, 409, "CHECKIN_CLOSED")
    row.refresh_from_db()
    assert row.attendance == Attendance.UNKNOWN


@pytest.mark.parametrize("registration", [Registration.WAITLISTED, Registration.CANCELLED])
def test_check_in_of_a_registration_not_registered(world, registration):
    EventParticipant.objects.filter(pk=world["row"].pk).update(registration=registration)
    client = client_for(world["employee"])
    response = client.post(check_in_url(world["event"], world["row"]), {}, format="json")
    error(response, 409, "NOT_REGISTERED")


def test_an_organiser_checks_anybody_in(world):
    client = client_for(world["approver"])
    body = data(client.post(check_in_url(world["event"], world["row"]), format="json"))
    assert body["attendance"] == "present"
    assert body["markedBy"]["id"] == world["approver"].user_id


def test_the_same_nonce_answers_the_first_result(world):
    client = client_for(world["employee"])
    url = check_in_url(world["event"], world["row"])
    first = data(client.post(url, {"nonce": "phone-1"}, format="json"))
    again = data(client.post(url, {"nonce": "phone-1"}, format="json"))
    assert again == first
    events = AuditEvent.objects.filter(
        action="events.attendance.checked_in", target_id=str(world["row"].pk)
    )
    assert events.count() == 1
    assert world["row"].check_ins.count() == 1
    for bad in ({"nonce": ""}, {"nonce": 5}, {"nonce": "x" * 65}, {"nonce": "a", "extra": 1}):
        error(client.post(url, bad, format="json"), 400, "VALIDATION_ERROR")


# --- mine -------------------------------------------------------------------------------


def test_mine_lists_the_callers_events_with_their_row(world):
    services.participant_mark(
        actor=world["admin"].user, participant=world["row"], status="excused", notes="away"
    )
    items = data(client_for(world["employee"]).get("/api/events/mine"))["items"]
    assert len(items) == 1
    assert set(items[0]) == EVENT_KEYS | {"participant"}
    assert items[0]["id"] == world["event"].pk
    assert items[0]["counts"] == {**ZERO, "unknown": 1, "excused": 1}
    assert items[0]["participant"]["id"] == world["row"].pk
    assert items[0]["participant"]["attendance"] == "excused"
    assert items[0]["participant"]["notes"] == "away"
    assert data(client_for(world["admin"]).get("/api/events/mine"))["items"] == []


# --- query counts -----------------------------------------------------------------------


def _queries(employee, url: str) -> tuple[int, int]:
    client = client_for(employee)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(queries), len(response.json()["data"]["items"])


def test_list_queries_do_not_grow_with_the_page(world, make_person):
    admin, employee = world["admin"], world["employee"]
    few = _queries(admin, "/api/events?pageSize=2")
    few_mine = _queries(employee, "/api/events/mine?pageSize=2")
    few_participants = _queries(admin, f"/api/events/{world['event'].pk}/participants?pageSize=1")
    people = [make_person(admin.organisation, "employee") for _ in range(4)]
    for number in range(8):
        event = make_event(admin, title=f"Event {number}")
        add(event, employee, *people[: number % 4 + 1])
        services.participant_mark(
            actor=admin.user,
            participant=EventParticipant.objects.get(event=event, employee=employee),
            status="present",
        )
    add(world["event"], *people)
    services.participant_mark(actor=admin.user, participant=world["row"], status="late")
    many = _queries(admin, "/api/events?pageSize=20")
    many_mine = _queries(employee, "/api/events/mine?pageSize=20")
    many_participants = _queries(admin, f"/api/events/{world['event'].pk}/participants")
    assert (few[1], many[1]) == (2, 10)
    assert (few_mine[1], many_mine[1]) == (1, 9)
    assert (few_participants[1], many_participants[1]) == (1, 6)
    assert many[0] == few[0]
    assert many_mine[0] == few_mine[0]
    assert many_participants[0] == few_participants[0]
