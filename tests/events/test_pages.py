"""The events pages: who may open which, what they show, and what their forms change."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from events import services
from events.choices import Attendance, EventStatus, Registration
from events.models import EventCheckIn, EventParticipant

pytestmark = pytest.mark.django_db

LIST = "/events/"
MINE = "/events/mine/"
LOGIN = "/accounts/login/"


@pytest.fixture
def browser():
    """browser(employee) → a test Client logged in as that employee's user."""

    def make(employee=None) -> Client:
        client = Client()
        if employee is not None:
            client.force_login(employee.user)
        return client

    return make


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def make_event(organiser, *, title="Fire drill", starts_in=-2, lasts=60, **extra):
    """An event of the organiser's organisation starting ``starts_in`` minutes from now."""
    now = timezone.now()
    starts_at = now + dt.timedelta(minutes=starts_in)
    return services.event_create(
        actor=organiser.user,
        organisation=organiser.organisation,
        title=title,
        starts_at=starts_at,
        ends_at=starts_at + dt.timedelta(minutes=lasts),
        **extra,
    )


def register(organiser, event, *employees) -> list[EventParticipant]:
    services.participants_add(
        actor=organiser.user, event=event, employee_nos=[e.employee_no for e in employees]
    )
    return [EventParticipant.objects.get(event=event, employee=e) for e in employees]


@pytest.fixture
def running(people):
    """A running event (check-in open) with the employee and the stranger registered."""
    event = make_event(people["approver"], location="Hall A")
    employee, stranger = register(people["approver"], event, people["employee"], people["stranger"])
    return {"event": event, "employee": employee, "stranger": stranger}


# --- access ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", LIST),
        ("get", MINE),
        ("get", "/events/1/"),
        ("get", "/events/participants/1/"),
        ("post", "/events/1/complete/"),
        ("post", "/events/1/mark/"),
        ("post", "/events/participants/1/check-in/"),
        ("post", "/events/participants/1/mark/"),
    ],
)
def test_anonymous_is_sent_to_login(browser, method, url):
    response = getattr(browser(), method)(url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"{LOGIN}?next=")


def test_employee_is_sent_from_the_list_to_my_events(browser, people, running):
    client = browser(people["employee"])
    response = client.get(LIST)
    assert response.status_code == 302 and response["Location"] == MINE
    event = running["event"]
    assert client.get(f"/events/{event.pk}/").status_code == 403
    assert client.get(f"/events/participants/{running['stranger'].pk}/").status_code == 403
    response = client.post(f"/events/{event.pk}/complete/")
    assert response.status_code == 403
    event.refresh_from_db()
    assert event.status == EventStatus.SCHEDULED


@pytest.mark.parametrize("role", ["approver", "admin"])
def test_organisers_see_the_list_and_the_event(browser, people, running, role):
    client = browser(people[role])
    page = client.get(LIST)
    assert page.status_code == 200
    assert f'data-event="{running["event"].pk}"' in page.content.decode()
    detail = client.get(f"/events/{running['event'].pk}/")
    assert detail.status_code == 200
    assert people["employee"].name in detail.content.decode()


def test_another_organisations_event_is_not_found(
    browser, people, running, other_organisation, make_person
):
    outsider = make_person(other_organisation, "employee", "admin")
    client = browser(outsider)
    event, participant = running["event"], running["employee"]
    assert client.get(f"/events/{event.pk}/").status_code == 404
    assert client.get(f"/events/participants/{participant.pk}/").status_code == 404
    assert client.post(f"/events/{event.pk}/complete/").status_code == 404
    assert client.post(f"/events/{event.pk}/mark/", {"status": "absent"}).status_code == 404
    assert (
        client.post(f"/events/participants/{participant.pk}/mark/", {"status": "absent"})
    ).status_code == 404
    assert client.post(f"/events/participants/{participant.pk}/check-in/").status_code == 404
    assert f'data-event="{event.pk}"' not in client.get(LIST).content.decode()
    participant.refresh_from_db()
    assert participant.attendance == Attendance.UNKNOWN
    event.refresh_from_db()
    assert event.status == EventStatus.SCHEDULED


def test_an_employee_cannot_check_a_colleague_in(browser, people, running):
    response = browser(people["employee"]).post(
        f"/events/participants/{running['stranger'].pk}/check-in/", {"nonce": "x"}
    )
    assert response.status_code == 404
    running["stranger"].refresh_from_db()
    assert running["stranger"].attendance == Attendance.UNKNOWN


def test_my_events_shows_only_my_events(browser, people, running):
    others = make_event(people["approver"], title="Board meeting")
    register(people["approver"], others, people["stranger"])
    page = browser(people["employee"]).get(MINE).content.decode()
    assert "Fire drill" in page
    assert "Board meeting" not in page


def test_navigation_links_events(browser, people):
    page = browser(people["employee"]).get(MINE).content.decode()
    assert 'href="/events/"' in page


def test_posts_need_a_csrf_token(people, running):
    client = Client(enforce_csrf_checks=True)
    client.force_login(people["employee"].user)
    response = client.post(f"/events/participants/{running['employee'].pk}/check-in/")
    assert response.status_code == 403
    running["employee"].refresh_from_db()
    assert running["employee"].attendance == Attendance.UNKNOWN


# --- the organisers' list ----------------------------------------------------------------


def test_list_has_running_upcoming_and_past_tabs_and_filters(browser, people):
    organiser = people["approver"]
    running = make_event(organiser, title="Running drill")
    upcoming = make_event(organiser, title="Upcoming training", starts_in=24 * 60)
    past = make_event(organiser, title="Past meeting", starts_in=-3 * 24 * 60)
    cancelled = make_event(organiser, title="Cancelled party", starts_in=2 * 24 * 60)
    services.event_cancel(actor=organiser.user, event=cancelled)
    client = browser(organiser)

    def shown(query: str) -> set[int]:
        page = client.get(f"{LIST}?{query}").content.decode()
        return {int(pk) for pk in re.findall(r'<tr data-event="(\d+)"', page)}

    assert shown("") == {running.pk}  # running first when something is running
    assert shown("tab=running") == {running.pk}
    assert shown("tab=upcoming") == {upcoming.pk}
    assert shown("tab=past") == {past.pk, cancelled.pk}
    assert shown("tab=past&status=cancelled") == {cancelled.pk}
    assert shown("tab=past&q=meeting") == {past.pk}
    assert shown("tab=past&q=nothing-like-this") == set()


def test_list_shows_the_attendance_bar(browser, people, running):
    services.participant_mark(
        actor=people["approver"].user, participant=running["employee"], status="excused"
    )
    page = browser(people["approver"]).get(LIST).content.decode()
    row = page[page.index(f'<tr data-event="{running["event"].pk}"') :]
    row = row[: row.index("</tr>")]
    assert "at-excused w-50" in row
    assert "at-unknown w-50" in row


# --- the event page ----------------------------------------------------------------------


def test_event_page_shows_counts_and_filters_participants(browser, people, running):
    organiser = people["approver"]
    services.participant_mark(
        actor=organiser.user, participant=running["stranger"], status="absent", notes="Sick"
    )
    client = browser(organiser)
    page = client.get(f"/events/{running['event'].pk}/").content.decode()
    assert re.search(r'data-count="absent">.*?<strong>1</strong>', page)
    assert re.search(r'data-count="unknown">.*?<strong>1</strong>', page)
    assert "Sick" in page

    def rows(query: str) -> set[int]:
        html = client.get(f"/events/{running['event'].pk}/?{query}").content.decode()
        return {int(pk) for pk in re.findall(r'<tr data-participant="(\d+)"', html)}

    assert rows("") == {running["employee"].pk, running["stranger"].pk}
    assert rows("attendance=absent") == {running["stranger"].pk}
    assert rows("attendance=unknown") == {running["employee"].pk}
    assert rows(f"q={people['employee'].employee_no}") == {running["employee"].pk}
    assert rows("q=nobody-by-this-name") == set()


def test_event_page_is_paged_by_50_with_a_fixed_number_of_queries(browser, people, make_person):
    organiser = people["approver"]
    event = make_event(organiser)
    employees = [make_person(organiser.organisation, "employee") for _ in range(60)]
    register(organiser, event, *employees)
    client = browser(organiser)
    client.get(f"/events/{event.pk}/")  # sessions, roles: warmed up
    with CaptureQueriesContext(connection) as queries:
        first = client.get(f"/events/{event.pk}/")
    assert first.status_code == 200
    assert first.content.decode().count("<tr data-participant=") == 50
    assert len(queries) <= 15, [query["sql"][:120] for query in queries]
    second = client.get(f"/events/{event.pk}/?page=2").content.decode()
    assert second.count("<tr data-participant=") == 10
    assert "Page 2 of 2" in second


def test_organiser_checks_someone_in_from_the_event_page(browser, people, running):
    participant = running["employee"]
    client = browser(people["approver"])
    response = client.post(
        f"/events/participants/{participant.pk}/check-in/",
        {"nonce": uuid.uuid4().hex, "next": f"/events/{running['event'].pk}/?q=x"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == f"/events/{running['event'].pk}/?q=x"
    assert any("checked in: Present" in text for text in messages_of(response)), messages_of(
        response
    )
    participant.refresh_from_db()
    assert participant.attendance == Attendance.PRESENT
    assert participant.marked_by == people["approver"].user


def test_mark_with_notes_through_the_row_form(browser, people, running):
    participant = running["employee"]
    response = browser(people["approver"]).post(
        f"/events/participants/{participant.pk}/mark/",
        {"status": "excused", "notes": "Doctor's appointment"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == f"/events/{running['event'].pk}/"
    assert any("marked Excused" in text for text in messages_of(response))
    participant.refresh_from_db()
    assert participant.attendance == Attendance.EXCUSED
    assert participant.notes == "Doctor's appointment"
    assert participant.marked_by_organiser
    audit = AuditEvent.objects.get(action="events.attendance.marked")
    assert audit.data["to"] == "excused"
    # …and the participant's history, read from the audit log.
    history = browser(people["approver"]).get(f"/events/participants/{participant.pk}/")
    assert "Doctor&#x27;s appointment" in history.content.decode()
    assert 'data-action="events.attendance.marked"' in history.content.decode()


def test_a_bad_mark_is_a_message_not_a_500(browser, people, running):
    participant = running["employee"]
    response = browser(people["approver"]).post(
        f"/events/participants/{participant.pk}/mark/", {"status": "teleported"}, follow=True
    )
    assert response.status_code == 200
    assert any("Choose an attendance" in text for text in messages_of(response))
    participant.refresh_from_db()
    assert participant.attendance == Attendance.UNKNOWN


def test_bulk_mark_with_the_ticked_boxes(browser, people, running):
    event = running["event"]
    ids = [running["employee"].pk, running["stranger"].pk]
    client = browser(people["admin"])
    response = client.post(
        f"/events/{event.pk}/mark/",
        {"participant": [str(pk) for pk in ids] + ["999999"], "status": "absent", "notes": "x"},
        follow=True,
    )
    assert any(
        "Marked 2 as Absent" in text and "1 not found" in text for text in messages_of(response)
    )
    assert set(
        EventParticipant.objects.filter(pk__in=ids).values_list("attendance", flat=True)
    ) == {Attendance.ABSENT}
    nothing = client.post(f"/events/{event.pk}/mark/", {"status": "absent"}, follow=True)
    assert any("Tick at least one" in text for text in messages_of(nothing))


def test_complete_button_completes_and_twice_is_a_message(browser, people, running):
    client = browser(people["approver"])
    event = running["event"]
    response = client.post(f"/events/{event.pk}/complete/", follow=True)
    assert any("is completed" in text for text in messages_of(response))
    event.refresh_from_db()
    assert event.status == EventStatus.COMPLETED
    assert event.completed_by == people["approver"].user
    again = client.post(f"/events/{event.pk}/complete/", follow=True)
    assert again.status_code == 200
    assert any("already completed" in text for text in messages_of(again))
    assert "Complete</button>" not in again.content.decode()


# --- my events: check-in -----------------------------------------------------------------


def test_employee_checks_in_inside_the_window_once_per_nonce(browser, people, running):
    client = browser(people["employee"])
    page = client.get(MINE).content.decode()
    participant = running["employee"]
    assert f'action="/events/participants/{participant.pk}/check-in/"' in page
    nonce = re.search(r'name="nonce" value="([0-9a-f]{32})"', page)[1]
    url = f"/events/participants/{participant.pk}/check-in/"
    first = client.post(url, {"nonce": nonce}, follow=True)
    assert first.redirect_chain[-1][0] == MINE
    assert any("Checked in to Fire drill: Present" in text for text in messages_of(first))
    again = client.post(url, {"nonce": nonce}, follow=True)
    assert any("Checked in to Fire drill" in text for text in messages_of(again))
    assert EventCheckIn.objects.filter(participant=participant).count() == 1
    assert AuditEvent.objects.filter(action="events.attendance.checked_in").count() == 1
    participant.refresh_from_db()
    assert participant.attendance == Attendance.PRESENT
    # Checked in: the button is off, and says why.
    after = again.content.decode()
    assert "Checked in (Present)." in after


def test_check_in_button_is_disabled_outside_the_window(browser, people):
    organiser = people["approver"]
    later = make_event(organiser, title="Tomorrow's training", starts_in=24 * 60)
    (participant,) = register(organiser, later, people["employee"])
    page = browser(people["employee"]).get(MINE).content.decode()
    item = page[page.index(f'data-participant="{participant.pk}"') :]
    item = item[: item.index("</li>")]
    assert "disabled" in item
    assert "Check-in opens at" in item
    assert "/check-in/" not in item


def test_check_in_outside_the_window_is_the_checkin_closed_message(browser, people):
    organiser = people["approver"]
    later = make_event(organiser, title="Tomorrow's training", starts_in=24 * 60)
    (participant,) = register(organiser, later, people["employee"])
    response = browser(people["employee"]).post(
        f"/events/participants/{participant.pk}/check-in/", {"nonce": "n1"}, follow=True
    )
    assert response.status_code == 200
    texts = messages_of(response)
    assert texts and all("Check-in" in text and "not open" in text for text in texts)
    participant.refresh_from_db()
    assert participant.attendance == Attendance.UNKNOWN


def test_waitlisted_check_in_is_the_not_registered_message(browser, people, running):
    participant = running["employee"]
    EventParticipant.objects.filter(pk=participant.pk).update(registration=Registration.WAITLISTED)
    client = browser(people["employee"])
    page = client.get(MINE).content.decode()
    assert "You are on the waiting list." in page
    response = client.post(
        f"/events/participants/{participant.pk}/check-in/", {"nonce": "n2"}, follow=True
    )
    assert response.status_code == 200
    assert any("waitlisted" in text for text in messages_of(response))
    participant.refresh_from_db()
    assert participant.attendance == Attendance.UNKNOWN


def test_pages_show_times_in_the_organisations_zone(browser, people):
    organiser = people["approver"]
    tz = organiser.organisation.tz
    starts_at = dt.datetime.combine(
        timezone.localtime(timezone.now(), tz).date() + dt.timedelta(days=2),
        dt.time(9, 30),
        tzinfo=tz,
    )
    event = services.event_create(
        actor=organiser.user,
        organisation=organiser.organisation,
        title="Zone check",
        starts_at=starts_at,
        ends_at=starts_at + dt.timedelta(hours=1),
    )
    register(organiser, event, people["employee"])
    assert "09:30 – 10:30" in browser(people["employee"]).get(MINE).content.decode()
    assert "09:30 – 10:30" in browser(organiser).get(f"{LIST}?tab=upcoming").content.decode()
