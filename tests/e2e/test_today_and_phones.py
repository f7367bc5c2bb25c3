"""In a real browser: today stays "In progress" until its scheduled end, the punch button
offers in then out, and the everyday pages fit a 375 px phone without sideways scrolling."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from attendance import services
from attendance.choices import RecordSource, RecordStatus
from attendance.models import AttendanceRecord, Punch
from tests.conftest import PASSWORD

pytestmark = pytest.mark.e2e

PHONE = {"width": 375, "height": 740}


@pytest.fixture
def team(transactional_db, organisation, make_person):
    approver = make_person(organisation, "employee", "approver", username="ph_approver")
    employee = make_person(
        organisation, "employee", approver=approver, username="ph_employee", name="Wang Fang"
    )
    admin = make_person(organisation, "employee", "admin", username="ph_admin")
    return {"approver": approver, "employee": employee, "admin": admin}


def log_in(page, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # Admins land on their dashboard (once it exists), everyone else on their month.
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def all_day_shift(organisation) -> None:
    """Every day a workday whose shift ends at 23:59: now is before the scheduled end."""
    organisation.work_start, organisation.work_end = dt.time(0, 0), dt.time(23, 59)
    organisation.workdays = list(range(7))
    organisation.save(update_fields=["work_start", "work_end", "workdays"])


def daytime_zone() -> str:
    """A time zone where it is now between 04:00 and 20:00 (one always is)."""
    for zone in ("Asia/Shanghai", "Europe/London", "America/New_York", "Pacific/Auckland"):
        if dt.time(4) <= timezone.localtime(timezone.now(), ZoneInfo(zone)).time() <= dt.time(20):
            return zone
    raise AssertionError("no daytime zone among the four")


def overflow(page) -> dict:
    return page.evaluate(
        "() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})"
    )


def assert_fits(page, what: str) -> None:
    sizes = overflow(page)
    assert sizes["scroll"] <= sizes["inner"], f"{what} scrolls sideways at 375 px: {sizes}"


def test_today_is_in_progress_after_an_early_punch_out(team, new_page):
    employee = team["employee"]
    org = employee.organisation
    # In a zone where it is daytime now, the punches land well before the shift's end at
    # 23:59 and on one work date, whatever the hour the suite runs at.
    org.time_zone = daytime_zone()
    org.save(update_fields=["time_zone"])
    all_day_shift(org)
    today = timezone.localtime(timezone.now(), org.tz).date()

    page = new_page()
    log_in(page, "ph_employee")
    panel = page.locator(".today-card")
    assert panel.get_by_role("button", name="Punch out").count() == 0
    panel.get_by_role("button", name="Punch in").click()
    page.wait_for_url("**/attendance/")
    assert "Punched in at" in page.locator(".messages").inner_text()

    # Once in, the page offers out only: a second in cannot turn the first in into last out.
    assert panel.get_by_role("button", name="Punch in").count() == 0
    page.wait_for_timeout(1100)  # the out-punch a distinct second after the in-punch
    panel.get_by_role("button", name="Punch out").click()
    page.wait_for_url("**/attendance/")

    record = AttendanceRecord.objects.get(employee=employee, work_date=today)
    assert record.early_leave_minutes > 0  # stored as judged so far, hours before the end
    row = page.locator(f"#day-{today.isoformat()}")
    assert row.locator("[data-status]").get_attribute("data-status") == "in_progress"
    assert row.locator("[data-status]").inner_text() == "In progress"
    assert panel.locator("[data-status]").inner_text() == "In progress"
    early_tile = page.locator(".stat", has_text="minutes left early")
    assert early_tile.locator(".stat-value").inner_text() == "0"
    statuses = page.locator(".summary-card [data-status]").evaluate_all(
        "nodes => nodes.map(n => n.dataset.status)"
    )
    assert statuses == ["in_progress"]
    # Out stays on offer: punching out again moves the last out.
    assert panel.get_by_role("button", name="Punch out").count() == 1
    assert Punch.objects.filter(employee=employee).count() == 2


def test_month_and_requests_fit_a_phone(team, new_page):
    employee = team["employee"]
    org = employee.organisation
    today = timezone.localtime(timezone.now(), org.tz).date()
    day = today - dt.timedelta(days=1) if today.day > 1 else today
    AttendanceRecord.objects.create(
        organisation=org,
        employee=employee,
        work_date=day,
        first_in=dt.datetime.combine(day, dt.time(9, 20), tzinfo=org.tz),
        last_out=dt.datetime.combine(day, dt.time(17, 10), tzinfo=org.tz),
        work_minutes=470,
        late_minutes=20,
        early_leave_minutes=50,
        status=RecordStatus.LATE_EARLY,
        source=RecordSource.PUNCH,
    )
    services.adjustment_request_create(
        actor=employee.user,
        employee=employee,
        work_date=day,
        first_in=dt.datetime.combine(day, dt.time(9, 0), tzinfo=org.tz),
        last_out=dt.datetime.combine(day, dt.time(18, 0), tzinfo=org.tz),
        reason="The badge reader at the north gate was down all morning, ask security",
    )
    page = new_page()
    page.set_viewport_size(PHONE)
    log_in(page, "ph_employee")
    page.goto(f"/attendance/?month={day:%Y-%m}")
    assert page.locator("#my-requests tr[data-request]").count() == 1
    assert_fits(page, "my month with a request")

    # Every day of the month is in the chart, inside the page's width.
    chart = page.locator("svg.chart").bounding_box()
    assert chart["x"] >= 0 and chart["x"] + chart["width"] <= PHONE["width"]
    labels = page.locator("svg.chart .day-label").count()
    assert labels == page.locator("table.days tbody tr").count()
    last_bar_day = page.locator("svg.chart .day-label").last.bounding_box()
    assert last_bar_day is None or last_bar_day["x"] + last_bar_day["width"] <= PHONE["width"]
    # Rows are stacked with their captions.
    row = page.locator(f"#day-{day.isoformat()}")
    assert "first in" in row.inner_text().lower() and "09:20" in row.inner_text()


def test_approvals_fit_a_phone(team, new_page):
    employee, approver = team["employee"], team["approver"]
    org = employee.organisation
    today = timezone.localtime(timezone.now(), org.tz).date()
    for days_back, reason in ((1, "Forgot to punch out"), (2, "Visited a customer all day")):
        day = today - dt.timedelta(days=days_back)
        asked = services.adjustment_request_create(
            actor=employee.user,
            employee=employee,
            work_date=day,
            first_in=dt.datetime.combine(day, dt.time(9, 0), tzinfo=org.tz),
            last_out=dt.datetime.combine(day, dt.time(18, 0), tzinfo=org.tz),
            reason=reason,
        )
    services.adjustment_request_approve(actor=approver.user, request=asked, comment="Fine")
    page = new_page()
    page.set_viewport_size(PHONE)
    log_in(page, "ph_approver")
    page.goto("/attendance/approvals/")
    assert page.locator(".inbox-item").count() == 1
    assert page.locator("tr[data-request]").count() == 1
    assert_fits(page, "approvals")


@pytest.mark.parametrize("url", ["/audit/", "/events/"])
def test_audit_and_events_fit_a_phone(team, new_page, url):
    page = new_page()
    page.set_viewport_size(PHONE)
    log_in(page, "ph_admin")
    response = page.goto(url)
    assert response.status == 200
    assert_fits(page, url)


def test_skip_link_is_the_first_focusable_element_and_leads_to_main(team, new_page):
    page = new_page()
    log_in(page, "ph_employee")
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "() => [document.activeElement.textContent.trim(),"
        " document.activeElement.getAttribute('href')]"
    )
    assert focused == ["Skip to content", "#main"]
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    # On the month page the correction form is one link away, not ~30 "Correct" links.
    skip_to_form = page.get_by_role("link", name="Skip to the correction form")
    assert skip_to_form.get_attribute("href") == "#correct"
    correct_links_before = page.evaluate(
        """() => {
            const skip = document.querySelector('.skip-to-form');
            return [...document.querySelectorAll('a')].filter(a =>
              a.textContent.trim() === 'Correct'
              && (skip.compareDocumentPosition(a) & Node.DOCUMENT_POSITION_PRECEDING)).length;
        }"""
    )
    assert correct_links_before == 0
    skip_to_form.focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.name") == "work_date"
