"""End to end in a real browser: an employee checks in to a running event, the organiser
marks one person excused and completes the event, auto-absence marks the rest absent, and
the organiser's page shows the counts."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from events import services
from events.choices import Attendance, EventStatus
from events.models import EventParticipant
from tests.conftest import PASSWORD

pytestmark = pytest.mark.e2e


@pytest.fixture
def drill(transactional_db, organisation, make_person):
    """A running event (started two minutes ago) with three registered employees,
    committed so the live server's thread sees them."""
    organiser = make_person(organisation, "employee", "approver", username="e2e_organiser")
    employee = make_person(organisation, "employee", username="e2e_employee", name="Wang Fang")
    excused = make_person(organisation, "employee", name="Li Lei")
    no_show = make_person(organisation, "employee", name="Zhang Wei")
    starts_at = timezone.now() - dt.timedelta(minutes=2)
    event = services.event_create(
        actor=organiser.user,
        organisation=organisation,
        title="Fire drill",
        location="Courtyard",
        starts_at=starts_at,
        ends_at=starts_at + dt.timedelta(hours=1),
    )
    services.participants_add(
        actor=organiser.user,
        event=event,
        employee_nos=[employee.employee_no, excused.employee_no, no_show.employee_no],
    )

    def participant(person) -> EventParticipant:
        return EventParticipant.objects.get(event=event, employee=person)

    return {
        "event": event,
        "organiser": organiser,
        "employee": participant(employee),
        "excused": participant(excused),
        "no_show": participant(no_show),
    }


def log_in(page, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/attendance/")


def count_of(page, status: str) -> str:
    return page.locator(f'#attendance-chart [data-count="{status}"] strong').inner_text()


def test_check_in_excuse_complete_and_auto_absence(drill, new_page, screenshot):
    event = drill["event"]

    # The employee opens Events (their own: My events) and checks in.
    page = new_page()
    log_in(page, "e2e_employee")
    page.get_by_role("link", name="Events").click()
    page.wait_for_url("**/events/mine/")
    item = page.locator(f'.ev-mine-item[data-participant="{drill["employee"].pk}"]')
    item.get_by_role("button", name="Check in").click()
    page.wait_for_url("**/events/mine/")
    assert "Checked in to Fire drill: Present" in page.locator(".messages").inner_text()
    item = page.locator(f'.ev-mine-item[data-participant="{drill["employee"].pk}"]')
    assert item.locator("[data-attendance]").get_attribute("data-attendance") == "present"
    assert item.get_by_role("button", name="Check in").is_disabled()
    screenshot(page, "events-mine")

    # The organiser finds the running event and marks Li Lei excused, with a note.
    organiser = new_page()
    organiser.on("dialog", lambda dialog: dialog.accept())  # "Complete this event?"
    log_in(organiser, "e2e_organiser")
    organiser.get_by_role("link", name="Events").click()
    organiser.wait_for_url("**/events/")
    organiser.get_by_role("link", name="Fire drill").click()
    organiser.wait_for_url(f"**/events/{event.pk}/")
    assert count_of(organiser, "present") == "1"
    assert count_of(organiser, "unknown") == "2"
    row = organiser.locator(f'tr[data-participant="{drill["excused"].pk}"]')
    row.get_by_label("Attendance of Li Lei").select_option("excused")
    row.get_by_label("Notes for Li Lei").fill("Doctor's appointment")
    row.get_by_role("button", name="Mark", exact=True).click()
    organiser.wait_for_url(f"**/events/{event.pk}/")
    assert "Li Lei marked Excused" in organiser.locator(".messages").inner_text()
    row = organiser.locator(f'tr[data-participant="{drill["excused"].pk}"]')
    assert row.locator("[data-attendance]").get_attribute("data-attendance") == "excused"
    assert "Doctor's appointment" in row.inner_text()

    # Complete; the auto-absence (the beat's job) runs once the organisation's delay is over.
    organiser.get_by_role("button", name="Complete").click()
    organiser.wait_for_url(f"**/events/{event.pk}/")
    assert "is completed" in organiser.locator(".messages").inner_text()
    assert organiser.locator("[data-event-status]").get_attribute("data-event-status") == (
        EventStatus.COMPLETED
    )
    event.refresh_from_db()
    delay = dt.timedelta(minutes=event.organisation.auto_absence_delay_minutes)
    result = services.auto_absence_run(now=event.completed_at + delay + dt.timedelta(minutes=1))
    assert result["marked"] == 1

    organiser.reload()
    assert count_of(organiser, "present") == "1"
    assert count_of(organiser, "excused") == "1"
    assert count_of(organiser, "absent") == "1"
    assert count_of(organiser, "unknown") == "0"
    row = organiser.locator(f'tr[data-participant="{drill["no_show"].pk}"]')
    assert row.locator("[data-attendance]").get_attribute("data-attendance") == "absent"
    screenshot(organiser, "events-detail-completed")

    attendance = dict(
        EventParticipant.objects.filter(event=event).values_list("employee__name", "attendance")
    )
    assert attendance == {
        "Wang Fang": Attendance.PRESENT,
        "Li Lei": Attendance.EXCUSED,
        "Zhang Wei": Attendance.ABSENT,
    }
