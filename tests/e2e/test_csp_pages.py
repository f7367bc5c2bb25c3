"""In a real browser under the content security policy: the API docs render, the admin
centre works (including django-import-export's export page), and no page logs a violation
(the ``new_page`` fixture fails the test on any)."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD

pytestmark = pytest.mark.e2e


@pytest.fixture
def admin_person(transactional_db, organisation, make_person):
    return make_person(organisation, "employee", "admin", username="e2e_admin", name="Li Na")


def admin_log_in(page) -> None:
    page.goto("/admin/login/")
    page.get_by_label("Username").fill("e2e_admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/")


def test_api_docs_render_under_the_policy(transactional_db, new_page, screenshot):
    page = new_page()
    page.goto("/api/docs/")
    page.locator(".swagger-ui .info .title").wait_for()
    assert "Attendance API" in page.locator(".swagger-ui .info .title").inner_text()
    # The operations come from the schema request the docs' script made.
    page.locator(".opblock-summary-path", has_text="/api/attendance/records").first.wait_for()
    screenshot(page, "csp-api-docs")


def test_admin_centre_works_under_the_policy(admin_person, new_page, screenshot):
    page = new_page()
    admin_log_in(page)
    assert page.get_by_role("heading", name="Administration").is_visible()
    page.goto("/admin/attendance/employee/")
    page.get_by_role("link", name="Export").click()
    page.wait_for_url("**/export/**")
    # The "Select all" box is wired by static/js/admin.js, not by an inline handler.
    toggle = page.locator("input.select-toggle")
    assert toggle.get_attribute("onchange") is None
    fields = page.locator(".selectable-field-export-row:visible input[type=checkbox]")
    assert fields.count() > 1
    toggle.uncheck()
    assert not any(box.is_checked() for box in fields.all())
    toggle.check()
    assert all(box.is_checked() for box in fields.all())
    page.goto("/admin/attendance/organisation/")
    page.locator("#result_list tbody a").first.click()
    page.get_by_label("Grace (minutes)").wait_for()
    screenshot(page, "csp-admin-organisation")


def test_lockout_page_in_the_browser(admin_person, new_page, settings):
    settings.AXES_FAILURE_LIMIT = 2
    page = new_page()
    for _attempt in range(2):
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill("e2e_admin")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Sign in").click()
    assert "Too many failed sign-ins" in page.locator("[role=alert]").inner_text()
