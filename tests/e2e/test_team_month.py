"""In a real browser: the team month as an approver (their reports only, click-through to a
person's month) and as an admin (filter by department), refused to an employee, and on a
375 px phone without sideways scrolling of the page."""

from __future__ import annotations

import pytest

from tests.e2e.test_today_and_phones import PHONE, assert_fits, log_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def team(transactional_db, organisation, make_person):
    approver = make_person(organisation, "employee", "approver", username="tm_approver")
    report = make_person(
        organisation,
        "employee",
        approver=approver,
        username="tm_report",
        name="Wang Fang",
        department="Sales",
    )
    other = make_person(organisation, "employee", name="Li Lei", department="Ops")
    make_person(organisation, "employee", "admin", username="tm_admin")
    return {"approver": approver, "report": report, "other": other}


def test_an_approver_sees_their_reports_and_opens_a_persons_month(team, new_page):
    page = new_page()
    log_in(page, "tm_approver")
    page.goto("/attendance/team/")
    grid = page.locator(".team-grid tbody")
    assert grid.locator("tr").count() == 1
    assert "Wang Fang" in grid.inner_text()
    assert "Li Lei" not in grid.inner_text()
    grid.get_by_role("link", name="Wang Fang").click()
    page.wait_for_url(f"**/attendance/people/{team['report'].pk}/**")
    assert page.locator("h1").inner_text().startswith("Wang Fang")


def test_an_admin_filters_by_department(team, new_page):
    page = new_page()
    log_in(page, "tm_admin")
    page.goto("/attendance/team/")
    assert page.locator(".team-grid tbody tr").count() == 3  # all but the admin
    page.get_by_label("Department").select_option("Ops")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**department=Ops**")
    rows = page.locator(".team-grid tbody tr")
    assert rows.count() == 1 and "Li Lei" in rows.inner_text()


def test_an_employee_is_refused(team, new_page):
    page = new_page()
    log_in(page, "tm_report")
    response = page.goto("/attendance/team/")
    assert response.status == 403
    assert "Approvers only" in page.content()


def test_the_team_month_fits_a_phone(team, new_page):
    page = new_page()
    page.set_viewport_size(PHONE)
    log_in(page, "tm_admin")
    page.goto("/attendance/team/")
    assert page.locator(".team-grid").is_visible()
    assert_fits(page, "the team month")
    page.goto(f"/attendance/people/{team['report'].pk}/")
    assert_fits(page, "a person's month")
