"""End to end in a real browser: an employee asks for a correction, the approver approves it,
and the employee sees the corrected day."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from attendance.choices import RecordStatus, RequestState
from attendance.models import AdjustmentRequest, AttendanceRecord
from tests.conftest import PASSWORD

pytestmark = pytest.mark.e2e


@pytest.fixture
def team(transactional_db, organisation, make_person):
    """An approver and their report, committed so the live server's thread sees them."""
    approver = make_person(organisation, "employee", "approver", username="e2e_approver")
    employee = make_person(
        organisation, "employee", approver=approver, username="e2e_employee", name="Wang Fang"
    )
    return {"approver": approver, "employee": employee}


def log_in(page, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/attendance/")


def test_correction_is_requested_approved_and_shown(team, new_page, screenshot):
    employee = team["employee"]
    tz = employee.organisation.tz
    yesterday = timezone.localtime(timezone.now(), tz).date() - dt.timedelta(days=1)
    day = yesterday.isoformat()

    # The employee asks for yesterday to be corrected, starting from the day's row.
    page = new_page()
    log_in(page, "e2e_employee")
    page.goto(f"/attendance/?month={yesterday:%Y-%m}")
    page.locator(f"#day-{day}").get_by_role("link", name="Correct").click()
    assert page.get_by_label("Work date").input_value() == day
    page.get_by_label("First in").fill("09:00")
    page.get_by_label("Last out").fill("18:00")
    page.get_by_label("Reason").fill("Badge reader at the gate was down")
    page.get_by_role("button", name="Send for approval").click()
    page.wait_for_url("**/attendance/?month=*")

    mine = page.locator("#my-requests tr[data-date]", has_text="Badge reader at the gate")
    assert mine.locator("[data-state]").inner_text() == "Pending"
    assert "sent for approval" in page.locator(".messages").inner_text()
    request = AdjustmentRequest.objects.get(employee=employee)
    assert request.state == RequestState.PENDING

    # The approver, in a browser context of their own, approves it with a comment.
    approver_page = new_page()
    log_in(approver_page, "e2e_approver")
    approver_page.get_by_role("link", name="Approvals").click()
    item = approver_page.locator(f'.inbox-item[data-request="{request.pk}"]')
    assert "Wang Fang" in item.inner_text()
    assert "09:00 – 18:00" in item.inner_text()
    screenshot(approver_page, "approvals-inbox")
    item.get_by_label("Comment").fill("Confirmed with security")
    item.get_by_role("button", name="Approve").click()
    approver_page.wait_for_url("**/attendance/approvals/")
    assert "Approved: Wang Fang" in approver_page.locator(".messages").inner_text()
    assert approver_page.locator(f'.inbox-item[data-request="{request.pk}"]').count() == 0

    # The employee reloads: the day is adjusted, the request approved with the comment.
    page.reload()
    row = page.locator(f"#day-{day}")
    assert row.locator("[data-status]").get_attribute("data-status") == "adjusted"
    assert row.locator("[data-status]").inner_text() == "Adjusted"
    assert "09:00" in row.inner_text() and "18:00" in row.inner_text()
    mine = page.locator(f'#my-requests tr[data-request="{request.pk}"]')
    assert mine.locator("[data-state]").inner_text() == "Approved"
    assert "Confirmed with security" in mine.inner_text()
    screenshot(page, "my-month")

    record = AttendanceRecord.objects.get(employee=employee, work_date=yesterday)
    assert record.status == RecordStatus.ADJUSTED
