"""The pages in Chinese, in a real browser whose language is zh-CN: an employee asks for a
correction of yesterday, the approver approves it, the employee sees it approved. Every
label the test clicks or reads comes from the zh-Hans catalogue, so a missing translation
fails it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone, translation

from attendance.choices import RecordStatus
from attendance.models import AdjustmentRequest, AttendanceRecord
from tests.conftest import PASSWORD

pytestmark = pytest.mark.e2e


def zh(text: str) -> str:
    """``text`` as the zh-Hans catalogue has it (and it must have it)."""
    with translation.override("zh-hans"):
        translated = translation.gettext(text)
    assert translated != text, f"no zh-Hans translation of {text!r}"
    return translated


@pytest.fixture
def team(transactional_db, organisation, make_person):
    approver = make_person(organisation, "employee", "approver", username="zh_approver")
    employee = make_person(
        organisation, "employee", approver=approver, username="zh_employee", name="王芳"
    )
    return {"approver": approver, "employee": employee}


def log_in(page, username: str) -> None:
    page.goto("/accounts/login/")
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    page.get_by_label(zh("Username")).fill(username)
    page.get_by_label(zh("Password")).fill(PASSWORD)
    page.get_by_role("button", name=zh("Sign in")).click()
    page.wait_for_url("**/attendance/")


def test_a_correction_asked_and_approved_in_chinese(team, new_page, screenshot):
    employee = team["employee"]
    yesterday = timezone.localtime(timezone.now(), employee.organisation.tz).date()
    yesterday -= dt.timedelta(days=1)
    day = yesterday.isoformat()

    page = new_page(locale="zh-CN")
    log_in(page, "zh_employee")
    page.goto(f"/attendance/?month={yesterday:%Y-%m}")
    assert page.get_by_role("heading", name=zh("My month"), exact=True).is_visible()
    page.locator(f"#day-{day}").get_by_role("link", name=zh("Correct")).click()
    assert page.get_by_label(zh("Work date")).input_value() == day
    page.get_by_label(zh("First in")).fill("09:00")
    page.get_by_label(zh("Last out")).fill("18:00")
    page.get_by_label(zh("Reason")).fill("门禁读卡器故障")
    page.get_by_role("button", name=zh("Send for approval")).click()
    page.wait_for_url("**/attendance/?month=*")
    request = AdjustmentRequest.objects.get(employee=employee)
    mine = page.locator(f'#my-requests tr[data-request="{request.pk}"]')
    assert mine.locator("[data-state]").inner_text() == zh("Pending")
    with translation.override("zh-hans"):
        sent = translation.gettext("Correction for %(date)s sent for approval.")
    assert sent.split("%(date)s")[-1] in page.locator(".messages").inner_text()
    screenshot(page, "zh-my-month-pending")

    approver_page = new_page(locale="zh-CN")
    log_in(approver_page, "zh_approver")
    approver_page.get_by_role("link", name=zh("Approvals"), exact=True).click()
    item = approver_page.locator(f'.inbox-item[data-request="{request.pk}"]')
    assert "王芳" in item.inner_text() and "09:00 – 18:00" in item.inner_text()
    item.get_by_label(zh("Comment")).fill("已与保安确认")
    item.get_by_role("button", name=zh("Approve")).click()
    approver_page.wait_for_url("**/attendance/approvals/")
    assert zh("Approved") in approver_page.locator(".messages").inner_text()
    screenshot(approver_page, "zh-approvals")

    page.reload()
    row = page.locator(f"#day-{day}")
    assert row.locator("[data-status]").inner_text() == zh("Adjusted")
    assert mine.locator("[data-state]").inner_text() == zh("Approved")
    assert "已与保安确认" in mine.inner_text()
    record = AttendanceRecord.objects.get(employee=employee, work_date=yesterday)
    assert record.status == RecordStatus.ADJUSTED


def test_the_language_switcher_turns_the_page_into_chinese_and_back(team, new_page):
    page = new_page()
    page.goto("/accounts/login/")
    assert page.locator("html").get_attribute("lang") == "en"
    switcher = page.locator(".language")
    switcher.get_by_role("button", name="简体中文").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert page.get_by_role("button", name=zh("Sign in")).is_visible()
    page.locator(".language").get_by_role("button", name="English").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
