"""The audit pages: access, filters, keyset "Next page", the detail view and its links."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

PAGE = "/audit/"


def detail(event) -> str:
    return f"/audit/events/{event.pk}/"


@pytest.fixture
def browser():
    """browser(employee) → a Django test client logged in as that employee's user."""

    def make(employee=None) -> Client:
        client = Client()
        if employee is not None:
            assert client.login(username=employee.user.username, password=PASSWORD)
        return client

    return make


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0) - dt.timedelta(hours=1)


@pytest.fixture
def make_event(organisation):
    def make(action: str, at: dt.datetime, *, org=None, **columns) -> AuditEvent:
        columns.setdefault("actor_label", "system")
        return AuditEvent.objects.create(
            organisation=org or organisation, action=action, occurred_at=at, **columns
        )

    return make


def text(response) -> str:
    return response.content.decode()


def row_ids(response) -> list[int]:
    return [int(found) for found in re.findall(r'<tr data-event="(\d+)">', text(response))]


@pytest.mark.parametrize("path", [PAGE, "/audit/events/1/"])
def test_anonymous_goes_to_login_other_roles_get_403(people, browser, path):
    response = browser().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    for role in ("employee", "approver", "importer"):
        response = browser(people[role]).get(path)
        assert response.status_code == 403
        assert "Administrators only" in text(response)


def test_admins_see_their_organisations_events_only(
    people, browser, make_event, other_organisation, now
):
    mine = make_event("test.page.mine", now, actor_label="admin_user (Ada)")
    theirs = make_event("test.page.theirs", now, org=other_organisation)
    response = browser(people["admin"]).get(f"{PAGE}?actionPrefix=test.page.")
    assert response.status_code == 200
    assert row_ids(response) == [mine.pk]
    assert browser(people["admin"]).get(detail(theirs)).status_code == 404


def test_the_navigation_links_the_page_for_admins_only(people, browser):
    assert f'href="{PAGE}"' in text(browser(people["admin"]).get("/attendance/"))
    assert f'href="{PAGE}"' not in text(browser(people["employee"]).get("/attendance/"))


def test_filters_apply_and_are_kept_in_the_form(people, browser, make_event, now):
    kept = make_event(
        "imports.batch.committed",
        now,
        target_type="imports.importbatch",
        target_id="31",
        data={"errorCode": "BUSY"},
    )
    make_event("imports.batch.committed", now - dt.timedelta(minutes=1))
    make_event("attendance.punch.created", now, data={"errorCode": "BUSY"})
    response = browser(people["admin"]).get(f"{PAGE}?actionPrefix=imports.&status=failed&q=busy")
    assert row_ids(response) == [kept.pk]
    page = text(response)
    assert 'name="actionPrefix" value="imports."' in page
    assert '<option value="failed" selected>' in page
    assert 'href="/imports/batches/31/"' in page  # the target, linked
    assert "BUSY" in page


def test_the_export_link_carries_the_current_filters(people, browser):
    response = browser(people["admin"]).get(f"{PAGE}?actionPrefix=imports.&from=2026-01-01")
    (href,) = re.findall(r'href="([^"]*export\.csv[^"]*)" data-export', text(response))
    parts = urlsplit(href.replace("&amp;", "&"))
    assert parts.path == "/api/attendance-admin/audit-logs/export.csv"
    assert parse_qs(parts.query) == {"actionPrefix": ["imports."], "from": ["2026-01-01"]}
    # The session can follow it: a streamed CSV, audited.
    download = browser(people["admin"]).get(href.replace("&amp;", "&"))
    assert download.status_code == 200
    assert b"".join(download.streaming_content).startswith("\ufeff".encode())


def test_next_page_follows_the_keyset_without_repeats(people, browser, make_event, now):
    same = now - dt.timedelta(minutes=5)
    made = [make_event("test.pages.same", same) for _ in range(120)]
    expected = [event.pk for event in sorted(made, key=lambda e: e.pk, reverse=True)]
    client = browser(people["admin"])
    url = f"{PAGE}?action=test.pages.same"
    seen = []
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen += row_ids(response)
        found = re.search(r'href="(\?[^"]*cursor=[^"]*)" rel="next"', text(response))
        url = PAGE + found[1].replace("&amp;", "&") if found else None
    assert seen == expected
    assert 'rel="first"' in text(response)  # later pages lead back to the newest


def test_bad_filters_show_their_errors(people, browser):
    response = browser(people["admin"]).get(f"{PAGE}?from=someday&pageSize=7000")
    assert response.status_code == 400
    page = text(response)
    assert "ISO 8601" in page
    assert "Correct the filters above." in page


def test_empty_boxes_are_no_filter(people, browser, make_event, now):
    event = make_event("test.empty.boxes", now)
    response = browser(people["admin"]).get(
        f"{PAGE}?q=&action=test.empty.boxes&actionPrefix=&actor=&targetType=&targetId="
        "&status=&from=&to=&pageSize="
    )
    assert response.status_code == 200
    assert row_ids(response) == [event.pk]


def test_the_detail_view_shows_every_field_and_links(people, browser, make_event, now):
    admin = people["admin"]
    event = make_event(
        "attendance.employee.updated",
        now,
        actor_id=admin.user_id,
        actor_label="admin_user (Ada)",
        target_type="attendance.employee",
        target_id=str(admin.pk),
        request_id="req-42",
        ip="10.9.8.7",
        user_agent="Firefox <script>",
        data={"changed": ["name"], "名字": "张三"},
    )
    response = browser(admin).get(detail(event))
    assert response.status_code == 200
    page = text(response)
    local = timezone.localtime(now, admin.organisation.tz)
    assert local.strftime("%Y-%m-%d %H:%M:%S") in page
    assert "+0800" in page
    for shown in ("attendance.employee.updated", "admin_user (Ada)", "req-42", "10.9.8.7"):
        assert shown in page
    assert "Firefox &lt;script&gt;" in page  # escaped
    assert "&quot;名字&quot;: &quot;张三&quot;" in page  # pretty JSON, as written, escaped
    assert "&quot;changed&quot;: [\n    &quot;name&quot;\n  ]" in page
    assert f'href="/admin/attendance/employee/{admin.pk}/change/"' in page
    assert f"?targetType=attendance.employee&amp;targetId={admin.pk}" in page
    assert f"?actor={admin.user_id}" in page


def test_pages_have_no_inline_script(people, browser, make_event, now):
    event = make_event("test.csp", now)
    for path in (PAGE, detail(event)):
        page = text(browser(people["admin"]).get(path))
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
        assert " on" + "click=" not in page
