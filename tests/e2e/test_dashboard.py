"""In a real browser: an admin signs in and lands on the dashboard, its tiles show today's
figures and lead to their lists, and no tile (nor the page) overflows at 375 or 1366 px,
even with figures far larger than the set-up's."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from attendance import services
from attendance.choices import RecordSource, RecordStatus
from attendance.models import AttendanceRecord
from tests.conftest import PASSWORD

pytestmark = pytest.mark.e2e

# Tiles whose content is wider than their box (a figure spilling out), and the page's own
# horizontal overflow.
OVERFLOW = """() => ({
    tiles: [...document.querySelectorAll('.dash-tile')]
        .filter((tile) => tile.scrollWidth > tile.clientWidth)
        .map((tile) => tile.dataset.tile),
    count: document.querySelectorAll('.dash-tile').length,
    page: document.documentElement.scrollWidth - window.innerWidth,
})"""
HUGE_FIGURES = """() => document.querySelectorAll('[data-figure]').forEach((figure) => {
    if (/^[0-9]+$/.test(figure.textContent.trim())) figure.textContent = '1234567890123';
})"""


@pytest.fixture
def office(transactional_db, organisation, make_person):
    """Today a workday in progress (it ends at 23:59:59): one on time, one late, one
    absent on record, two not in yet (the admin among them) and a pending correction."""
    organisation.workdays = list(range(7))
    organisation.work_start, organisation.work_end = dt.time(0, 0), dt.time(23, 59, 59)
    organisation.save(update_fields=["workdays", "work_start", "work_end"])
    tz = organisation.tz
    today = timezone.localtime(timezone.now(), tz).date()
    admin = make_person(organisation, "employee", "admin", username="e2e_dash_admin")
    on_time = make_person(organisation, "employee", name="Zhang Wei")
    late = make_person(organisation, "employee", name="Li Lei")
    absent = make_person(organisation, "employee", name="Han Meimei")
    make_person(organisation, "employee", name="Wang Fang")
    for person, status, minutes in (
        (on_time, RecordStatus.PARTIAL, 0),
        (late, RecordStatus.LATE, 42),
        (absent, RecordStatus.ABSENT, None),
    ):
        AttendanceRecord.objects.create(
            organisation=organisation,
            employee=person,
            work_date=today,
            first_in=None if minutes is None else timezone.now(),
            late_minutes=minutes or 0,
            status=status,
            source=RecordSource.PUNCH,
        )
    yesterday = today - dt.timedelta(days=1)
    services.adjustment_request_create(
        actor=on_time.user,
        employee=on_time,
        work_date=yesterday,
        first_in=dt.datetime.combine(yesterday, dt.time(9), tzinfo=tz),
        last_out=dt.datetime.combine(yesterday, dt.time(18), tzinfo=tz),
        reason="Forgot to punch out",
    )
    return {"admin": admin, "late": late}


def log_in(page) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("e2e_dash_admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def figure(page, tile: str) -> str:
    return page.locator(f'[data-tile="{tile}"] [data-figure]').inner_text().strip()


def test_an_admin_lands_on_the_dashboard_and_follows_a_tile(office, new_page, screenshot):
    page = new_page()
    log_in(page)
    page.wait_for_url("**/dashboard/")
    assert page.get_by_role("heading", name="Dashboard", exact=True).is_visible()
    figures = {tile: figure(page, tile) for tile in ("present", "late", "absent", "not_yet_in")}
    assert figures == {"present": "2", "late": "1", "absent": "1", "not_yet_in": "2"}
    assert figure(page, "pending") == "1"
    assert page.locator("[data-day-state]").inner_text() == "in progress"
    screenshot(page, "dashboard-1366")

    page.locator('[data-tile="late"]').click()
    page.wait_for_url("**/dashboard/today/late/")
    person = page.locator(f'[data-employee="{office["late"].pk}"]')
    assert "Li Lei" in person.inner_text() and "42 min late" in person.inner_text()

    page.go_back()
    page.locator('[data-tile="pending"]').click()
    page.wait_for_url("**/attendance/approvals/")
    assert "Forgot to punch out" in page.locator("main").inner_text()


@pytest.mark.parametrize("width", [375, 1366])
def test_no_tile_overflows(office, new_page, screenshot, width):
    page = new_page()
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page)
    page.wait_for_url("**/dashboard/")
    before = page.evaluate(OVERFLOW)
    assert before["count"] == 7 and before["tiles"] == [] and before["page"] <= 0, before
    page.evaluate(HUGE_FIGURES)  # figures of an organisation far larger than this one
    assert figure(page, "present") == "1234567890123"
    after = page.evaluate(OVERFLOW)
    assert after["tiles"] == [] and after["page"] <= 0, after
    screenshot(page, f"dashboard-huge-{width}")
