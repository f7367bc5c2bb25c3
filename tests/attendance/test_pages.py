"""The server-rendered pages: access rules, what they show and what their forms change."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from attendance import services
from attendance.choices import PunchKind, RecordSource, RecordStatus, RequestState
from attendance.models import AdjustmentRequest, AttendanceRecord, Punch
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

HOME = "/attendance/"
APPROVALS = "/attendance/approvals/"
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


def local_today(organisation) -> dt.date:
    return timezone.localtime(timezone.now(), organisation.tz).date()


def yesterday_of(employee) -> dt.date:
    return local_today(employee.organisation) - dt.timedelta(days=1)


def at(organisation, day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=organisation.tz)


def ask(employee, day: dt.date, reason: str = "Forgot to punch") -> AdjustmentRequest:
    org = employee.organisation
    return services.adjustment_request_create(
        actor=employee.user,
        employee=employee,
        work_date=day,
        first_in=at(org, day, 9),
        last_out=at(org, day, 18),
        reason=reason,
    )


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# --- access ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", HOME),
        ("get", APPROVALS),
        ("post", HOME),
        ("post", "/attendance/punch/"),
        ("post", "/attendance/requests/1/cancel/"),
        ("post", "/attendance/approvals/1/decide/"),
    ],
)
def test_anonymous_is_sent_to_login(browser, method, url):
    response = getattr(browser(), method)(url)
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={url}"


def test_root_redirects_to_my_month(browser, people):
    response = browser(people["employee"]).get("/")
    assert response.status_code == 302
    assert response["Location"] == HOME


def test_employee_cannot_open_approvals(browser, people):
    response = browser(people["employee"]).get(APPROVALS)
    assert response.status_code == 403
    assert b"Approvers only" in response.content


def test_employee_cannot_decide_by_post(browser, people):
    request = ask(people["stranger"], yesterday_of(people["stranger"]))
    response = browser(people["employee"]).post(
        f"/attendance/approvals/{request.pk}/decide/", {"decision": "approve"}
    )
    assert response.status_code == 403
    request.refresh_from_db()
    assert request.state == RequestState.PENDING


def test_user_without_employee_is_forbidden(browser):
    user = get_user_model().objects.create_user("no_employee", password=PASSWORD)
    client = Client()
    client.force_login(user)
    response = client.get(HOME)
    assert response.status_code == 403
    assert b"No employee record" in response.content


def test_inactive_employee_is_forbidden(browser, people):
    employee = people["employee"]
    employee.is_active = False
    employee.save(update_fields=["is_active"])
    response = browser(employee).get(HOME)
    assert response.status_code == 403
    assert b"deactivated" in response.content


def test_ip_allowlist_refuses_other_addresses(browser, people):
    employee = people["employee"]
    organisation = employee.organisation
    organisation.ip_allowlist = ["10.0.0.0/8"]
    organisation.save(update_fields=["ip_allowlist"])
    client = browser(employee)

    response = client.get(HOME)
    assert response.status_code == 403
    assert b"Access from this address is not allowed" in response.content

    response = client.post("/attendance/punch/", {"kind": "in", "client_id": uuid.uuid4().hex})
    assert response.status_code == 403
    assert not Punch.objects.filter(employee=employee).exists()

    assert browser(people["approver"]).get(APPROVALS).status_code == 403
    assert client.get(HOME, REMOTE_ADDR="10.1.2.3").status_code == 200


def test_ip_allowlist_admits_listed_address(browser, people):
    organisation = people["employee"].organisation
    organisation.ip_allowlist = ["127.0.0.1/32"]
    organisation.save(update_fields=["ip_allowlist"])
    assert browser(people["employee"]).get(HOME).status_code == 200


def test_navigation_follows_roles(browser, people):
    employee_page = browser(people["employee"]).get(HOME).content.decode()
    assert APPROVALS not in employee_page
    assert 'href="/admin/"' not in employee_page
    assert 'action="/accounts/logout/"' in employee_page

    approver_page = browser(people["approver"]).get(HOME).content.decode()
    assert f'href="{APPROVALS}"' in approver_page
    assert 'href="/admin/"' not in approver_page

    admin_page = browser(people["admin"]).get(HOME).content.decode()
    assert f'href="{APPROVALS}"' in admin_page
    assert 'href="/admin/"' in admin_page
    assert browser(people["admin"]).get(APPROVALS).status_code == 200


# --- my month ----------------------------------------------------------------------------


def test_my_month_shows_every_day_with_local_times_and_status(browser, people):
    employee = people["employee"]
    org = employee.organisation
    month = dt.date(2026, 2, 1)
    AttendanceRecord.objects.create(
        organisation=org,
        employee=employee,
        work_date=dt.date(2026, 2, 3),
        first_in=at(org, dt.date(2026, 2, 3), 9, 17),
        last_out=at(org, dt.date(2026, 2, 3), 18, 2),
        work_minutes=525,
        late_minutes=17,
        status=RecordStatus.LATE,
        source=RecordSource.PUNCH,
    )
    AttendanceRecord.objects.create(
        organisation=org,
        employee=employee,
        work_date=dt.date(2026, 2, 4),
        first_in=at(org, dt.date(2026, 2, 4), 22, 0),
        last_out=at(org, dt.date(2026, 2, 5), 6, 30),
        work_minutes=510,
        status=RecordStatus.NORMAL,
        source=RecordSource.PUNCH,
    )
    AttendanceRecord.objects.create(  # someone else's day must not show
        organisation=org,
        employee=people["stranger"],
        work_date=dt.date(2026, 2, 6),
        status=RecordStatus.ABSENT,
        source=RecordSource.PUNCH,
    )

    response = browser(employee).get(HOME, {"month": "2026-02"})
    assert response.status_code == 200
    page = response.content.decode()
    days = response.context["days"]
    assert [day["date"] for day in days] == [month + dt.timedelta(days=n) for n in range(28)]
    assert page.count('<tr id="day-2026-02-') == 28
    assert "February 2026" in page
    assert "?month=2026-01" in page
    assert "?month=2026-03" in page

    late_day = days[2]
    assert (late_day["first_in"], late_day["last_out"], late_day["worked"]) == (
        "09:17",
        "18:02",
        "8:45",
    )
    assert 'data-status="late">Late</span>' in page
    assert days[3]["last_out"] == "06:30 +1"  # the night shift ends next morning
    assert days[5]["status"] == ""  # the stranger's absence is not mine

    summary = response.context["summary"]
    assert summary["days"] == 2
    assert summary["byStatus"]["late"] == 1
    assert summary["lateMinutes"] == 17

    chart = response.context["chart"]
    assert len(chart["bars"]) == 28
    assert chart["bars"][2]["height"] > 0
    assert chart["bars"][0]["height"] == 0
    assert '<svg class="chart"' in page
    assert 'class="bar st-late"' in page


def test_my_month_defaults_to_this_month_and_ignores_bad_month(browser, people):
    employee = people["employee"]
    today = local_today(employee.organisation)
    for query in ({}, {"month": "2026-13"}, {"month": "garbage"}):
        response = browser(employee).get(HOME, query)
        assert response.status_code == 200
        assert response.context["month_start"] == today.replace(day=1)
        assert response.context["days"][today.day - 1]["is_today"]


def test_correct_link_prefills_the_form(browser, people):
    employee = people["employee"]
    org = employee.organisation
    day = local_today(org) - dt.timedelta(days=2)
    AttendanceRecord.objects.create(
        organisation=org,
        employee=employee,
        work_date=day,
        first_in=at(org, day, 9, 40),
        status=RecordStatus.PARTIAL,
        source=RecordSource.PUNCH,
    )
    response = browser(employee).get(HOME, {"correct": day.isoformat()})
    assert response.context["month_start"] == day.replace(day=1)
    page = response.content.decode()
    assert f'name="work_date" value="{day.isoformat()}"' in page
    assert 'name="first_in" value="09:40"' in page
    assert f"correct={day.isoformat()}#correct" in page


# --- punches -----------------------------------------------------------------------------


def test_punch_creates_a_punch_and_redirects(browser, people):
    employee = people["employee"]
    client = browser(employee)
    response = client.post("/attendance/punch/", {"kind": "in", "client_id": uuid.uuid4().hex})
    assert response.status_code == 302
    assert response["Location"] == HOME
    punch = Punch.objects.get(employee=employee)
    assert punch.kind == PunchKind.IN
    assert AttendanceRecord.objects.filter(employee=employee, work_date=punch.work_date).exists()

    page = client.get(HOME)
    assert any(text.startswith("Punched in at ") for text in messages_of(page))


def test_double_submit_with_same_client_id_creates_one_punch(browser, people):
    employee = people["employee"]
    client = browser(employee)
    form = {"kind": "out", "client_id": uuid.uuid4().hex}
    assert client.post("/attendance/punch/", form).status_code == 302
    response = client.post("/attendance/punch/", form, follow=True)
    assert Punch.objects.filter(employee=employee).count() == 1
    assert any("already recorded" in text for text in messages_of(response))


def test_punch_rejects_an_unknown_kind(browser, people):
    response = browser(people["employee"]).post(
        "/attendance/punch/", {"kind": "sideways", "client_id": uuid.uuid4().hex}, follow=True
    )
    assert response.status_code == 200
    assert not Punch.objects.exists()
    assert any("'in' or 'out'" in text for text in messages_of(response))


def test_punch_is_rate_limited(browser, people, settings):
    settings.RATELIMIT_PUNCH = "2/m"
    client = browser(people["employee"])
    for kind in ("in", "out", "out"):
        response = client.post(
            "/attendance/punch/", {"kind": kind, "client_id": uuid.uuid4().hex}, follow=True
        )
    assert Punch.objects.count() == 2
    assert any("Too many punches" in text for text in messages_of(response))


def all_day_shift(organisation, **overrides) -> None:
    """Every day a workday with a shift ending just before midnight: now is in progress."""
    values = {"work_start": dt.time(0, 0), "work_end": dt.time(23, 59), "grace_minutes": 0}
    values.update(overrides)
    for field, value in values.items():
        setattr(organisation, field, value)
    organisation.workdays = list(range(7))
    organisation.save(update_fields=[*values, "workdays"])


def punch_at(employee, kind: str, occurred_at: dt.datetime):
    return services.punch_create(
        actor=employee.user, employee=employee, kind=kind, occurred_at=occurred_at
    )


def test_today_before_the_scheduled_end_is_in_progress_not_early_leave(browser, people):
    employee = people["employee"]
    org = employee.organisation
    all_day_shift(org)
    now = timezone.now()
    if timezone.localtime(now, org.tz).time() < dt.time(0, 3):
        pytest.skip("needs two punches earlier today")
    punch_at(employee, "in", now - dt.timedelta(minutes=2))
    _, record, _ = punch_at(employee, "out", now - dt.timedelta(minutes=1))
    # Stored as judged so far: left early (and late, the shift starting at midnight).
    assert record.status == RecordStatus.LATE_EARLY
    assert record.early_leave_minutes > 0

    response = browser(employee).get(HOME)
    today = next(day for day in response.context["days"] if day["is_today"])
    assert (today["status"], today["in_progress"], today["early_leave_minutes"]) == (
        "in_progress",
        True,
        0,
    )
    summary = response.context["summary"]
    assert summary["earlyLeaveMinutes"] == 0
    assert summary["byStatus"]["late_early"] == 0
    assert summary["byStatus"]["in_progress"] == 1
    assert summary["lateMinutes"] == record.late_minutes  # lateness is a fact already
    page = response.content.decode()
    assert 'data-status="in_progress">In progress</span>' in page
    assert 'data-status="late_early"' not in page
    assert response.context["punch_kind"] == "out"
    assert 'data-punch="out"' in page and 'data-punch="in"' not in page
    record.refresh_from_db()
    assert record.status == RecordStatus.LATE_EARLY  # the page changed nothing stored


def test_today_after_the_scheduled_end_is_judged(browser, people):
    employee = people["employee"]
    org = employee.organisation
    now = timezone.now()
    local = timezone.localtime(now, org.tz)
    if local.time() < dt.time(0, 10):
        pytest.skip("needs a shift over earlier today")
    all_day_shift(org, work_end=dt.time(0, 5))
    punch_at(employee, "in", now - dt.timedelta(minutes=2))
    punch_at(employee, "out", now - dt.timedelta(minutes=1))
    response = browser(employee).get(HOME)
    today = next(day for day in response.context["days"] if day["is_today"])
    assert today["in_progress"] is False
    assert today["status"] == today["stored_status"] == "late"  # judged as stored
    assert response.context["summary"]["byStatus"].get("in_progress", 0) == 0


def test_punch_offers_in_until_the_first_in(browser, people):
    employee = people["employee"]
    all_day_shift(employee.organisation)
    client = browser(employee)
    page = client.get(HOME)
    assert page.context["punch_kind"] == "in"
    assert 'data-punch="in"' in page.content.decode()
    assert 'data-punch="out"' not in page.content.decode()
    client.post("/attendance/punch/", {"kind": "in", "client_id": uuid.uuid4().hex})
    assert client.get(HOME).context["punch_kind"] == "out"


def test_a_second_in_punch_is_refused(browser, people):
    employee = people["employee"]
    client = browser(employee)
    client.post("/attendance/punch/", {"kind": "in", "client_id": uuid.uuid4().hex})
    first = Punch.objects.get(employee=employee)
    response = client.post(
        "/attendance/punch/", {"kind": "in", "client_id": uuid.uuid4().hex}, follow=True
    )
    assert list(Punch.objects.filter(employee=employee)) == [first]
    assert any("punched in at" in text and "already" in text for text in messages_of(response))
    # Out stays possible, more than once (it moves the last out).
    for _ in range(2):
        client.post("/attendance/punch/", {"kind": "out", "client_id": uuid.uuid4().hex})
    assert Punch.objects.filter(employee=employee, kind=PunchKind.OUT).count() == 2


def test_get_on_punch_is_not_allowed(browser, people):
    assert browser(people["employee"]).get("/attendance/punch/").status_code == 405


# --- corrections -------------------------------------------------------------------------


def test_correction_creates_a_pending_request(browser, people):
    employee = people["employee"]
    org = employee.organisation
    yesterday = local_today(org) - dt.timedelta(days=1)
    client = browser(employee)
    response = client.post(
        HOME,
        {
            "work_date": yesterday.isoformat(),
            "first_in": "09:00",
            "last_out": "18:00",
            "status": "",
            "reason": "Badge reader was down",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == f"{HOME}?month={yesterday:%Y-%m}#my-requests"
    request = AdjustmentRequest.objects.get(employee=employee)
    assert request.state == RequestState.PENDING
    assert request.work_date == yesterday
    assert request.requested_first_in == at(org, yesterday, 9)
    assert request.requested_last_out == at(org, yesterday, 18)
    assert request.requested_status == ""
    assert request.reason == "Badge reader was down"
    assert request.created_by == employee.user

    page = client.get(response["Location"])
    text = page.content.decode()
    assert 'id="my-requests"' in text
    assert f'data-request="{request.pk}"' in text
    assert 'data-state="pending">Pending</span>' in text
    assert "Badge reader was down" in text
    assert any("sent for approval" in message for message in messages_of(page))


def test_night_shift_correction_ends_next_morning(browser, people):
    employee = people["employee"]
    org = employee.organisation
    day = local_today(org) - dt.timedelta(days=2)
    response = browser(employee).post(
        HOME,
        {"work_date": day.isoformat(), "first_in": "22:00", "last_out": "06:00", "reason": "Night"},
    )
    assert response.status_code == 302
    request = AdjustmentRequest.objects.get(employee=employee)
    assert request.requested_last_out == at(org, day + dt.timedelta(days=1), 6)


def test_status_only_correction(browser, people):
    employee = people["employee"]
    day = local_today(employee.organisation) - dt.timedelta(days=3)
    response = browser(employee).post(
        HOME, {"work_date": day.isoformat(), "status": "leave", "reason": "Sick leave"}
    )
    assert response.status_code == 302
    request = AdjustmentRequest.objects.get(employee=employee)
    assert (request.requested_status, request.requested_first_in) == ("leave", None)


def test_future_correction_shows_the_error_and_creates_nothing(browser, people):
    employee = people["employee"]
    tomorrow = local_today(employee.organisation) + dt.timedelta(days=1)
    response = browser(employee).post(
        HOME,
        {
            "work_date": tomorrow.isoformat(),
            "first_in": "09:00",
            "last_out": "18:00",
            "reason": "Planning ahead",
        },
    )
    assert response.status_code == 200
    assert "Corrections cannot be requested for future dates." in response.content.decode()
    assert response.context["form"].errors["work_date"]
    assert not AdjustmentRequest.objects.exists()


def test_correction_without_reason_or_change_shows_errors(browser, people):
    employee = people["employee"]
    yesterday = yesterday_of(employee)
    response = browser(employee).post(HOME, {"work_date": yesterday.isoformat(), "reason": " "})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors["reason"] == ["A reason is required."]
    assert errors["__all__"] == ["Ask for a first in, a last out or a status."]
    page = response.content.decode()
    assert "A reason is required." in page
    assert not AdjustmentRequest.objects.exists()


def test_malformed_correction_is_a_form_error(browser, people):
    response = browser(people["employee"]).post(
        HOME, {"work_date": "not-a-date", "first_in": "25:99", "reason": "x"}
    )
    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"work_date", "first_in"}
    assert not AdjustmentRequest.objects.exists()


def test_second_pending_request_for_a_day_is_a_conflict(browser, people):
    employee = people["employee"]
    yesterday = yesterday_of(employee)
    ask(employee, yesterday)
    response = browser(employee).post(
        HOME, {"work_date": yesterday.isoformat(), "status": "leave", "reason": "Again"}
    )
    assert response.status_code == 200
    assert "A pending request for this day already exists." in response.content.decode()
    assert AdjustmentRequest.objects.filter(employee=employee).count() == 1


def test_cancel_a_pending_request(browser, people):
    employee = people["employee"]
    request = ask(employee, yesterday_of(employee))
    response = browser(employee).post(
        f"/attendance/requests/{request.pk}/cancel/", {"month": "2026-02"}, follow=True
    )
    assert response.redirect_chain[0][0] == f"{HOME}?month=2026-02#my-requests"
    request.refresh_from_db()
    assert request.state == RequestState.CANCELLED
    assert any("cancelled" in text for text in messages_of(response))


def test_cannot_cancel_someone_elses_request(browser, people):
    request = ask(people["employee"], yesterday_of(people["employee"]))
    response = browser(people["stranger"]).post(
        f"/attendance/requests/{request.pk}/cancel/", follow=True
    )
    assert any("not found" in text for text in messages_of(response))
    request.refresh_from_db()
    assert request.state == RequestState.PENDING


def test_cancelling_twice_reports_the_state(browser, people):
    employee = people["employee"]
    request = ask(employee, yesterday_of(employee))
    client = browser(employee)
    client.post(f"/attendance/requests/{request.pk}/cancel/")
    response = client.post(f"/attendance/requests/{request.pk}/cancel/", follow=True)
    assert any("cancelled, not pending" in text for text in messages_of(response))


# --- approvals ---------------------------------------------------------------------------


def test_approver_sees_their_reports_requests_only(browser, people):
    org = people["employee"].organisation
    yesterday = local_today(org) - dt.timedelta(days=1)
    mine = ask(people["employee"], yesterday, reason="Report's reason")
    other = ask(people["stranger"], yesterday, reason="Stranger's reason")
    response = browser(people["approver"]).get(APPROVALS)
    assert response.status_code == 200
    page = response.content.decode()
    assert f'data-request="{mine.pk}"' in page
    assert people["employee"].name in page
    assert "Report&#x27;s reason" in page
    assert "09:00 – 18:00" in page
    assert f'data-request="{other.pk}"' not in page
    assert "1 pending" in page

    admin_page = browser(people["admin"]).get(APPROVALS).content.decode()
    assert f'data-request="{mine.pk}"' in admin_page
    assert f'data-request="{other.pk}"' in admin_page


def test_approve_rewrites_the_day(browser, people):
    employee = people["employee"]
    org = employee.organisation
    yesterday = local_today(org) - dt.timedelta(days=1)
    request = ask(employee, yesterday)
    client = browser(people["approver"])
    response = client.post(
        f"/attendance/approvals/{request.pk}/decide/",
        {"decision": "approve", "comment": "Seen on camera"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == APPROVALS
    request.refresh_from_db()
    assert request.state == RequestState.APPROVED
    assert request.decided_by == people["approver"].user
    assert request.decision_comment == "Seen on camera"
    record = AttendanceRecord.objects.get(employee=employee, work_date=yesterday)
    assert record.status == RecordStatus.ADJUSTED
    assert record.work_minutes == 9 * 60
    page = response.content.decode()
    assert any(text.startswith("Approved:") for text in messages_of(response))
    assert "Recently decided" in page
    assert 'data-state="approved"' in page
    assert "Seen on camera" in page

    home = browser(employee).get(HOME, {"month": f"{yesterday:%Y-%m}"}).content.decode()
    assert 'data-state="approved">Approved</span>' in home
    assert "Seen on camera" in home
    assert 'data-status="adjusted">Adjusted</span>' in home


def test_reject_leaves_the_day_alone(browser, people):
    employee = people["employee"]
    yesterday = yesterday_of(employee)
    request = ask(employee, yesterday)
    response = browser(people["approver"]).post(
        f"/attendance/approvals/{request.pk}/decide/",
        {"decision": "reject", "comment": "No evidence"},
        follow=True,
    )
    request.refresh_from_db()
    assert (request.state, request.decision_comment) == (RequestState.REJECTED, "No evidence")
    assert not AttendanceRecord.objects.filter(employee=employee, work_date=yesterday).exists()
    assert any(text.startswith("Rejected:") for text in messages_of(response))


def test_approver_cannot_approve_a_strangers_request(browser, people):
    request = ask(people["stranger"], yesterday_of(people["stranger"]))
    response = browser(people["approver"]).post(
        f"/attendance/approvals/{request.pk}/decide/", {"decision": "approve"}, follow=True
    )
    assert response.status_code == 200
    assert "That request is not in your inbox." in messages_of(response)
    request.refresh_from_db()
    assert request.state == RequestState.PENDING
    assert request.decided_by is None


def test_admin_can_decide_anyones_request(browser, people):
    request = ask(people["stranger"], yesterday_of(people["stranger"]))
    browser(people["admin"]).post(
        f"/attendance/approvals/{request.pk}/decide/", {"decision": "reject"}
    )
    request.refresh_from_db()
    assert request.state == RequestState.REJECTED


def test_deciding_twice_is_a_conflict_message(browser, people):
    request = ask(people["employee"], yesterday_of(people["employee"]))
    client = browser(people["approver"])
    client.post(f"/attendance/approvals/{request.pk}/decide/", {"decision": "approve"})
    response = client.post(
        f"/attendance/approvals/{request.pk}/decide/", {"decision": "reject"}, follow=True
    )
    assert "The request is approved, not pending." in messages_of(response)
    request.refresh_from_db()
    assert request.state == RequestState.APPROVED


def test_bad_decision_value_changes_nothing(browser, people):
    request = ask(people["employee"], yesterday_of(people["employee"]))
    response = browser(people["approver"]).post(
        f"/attendance/approvals/{request.pk}/decide/", {"decision": "maybe"}, follow=True
    )
    assert any("Choose approve or reject" in text for text in messages_of(response))
    request.refresh_from_db()
    assert request.state == RequestState.PENDING


def test_pages_do_not_query_per_row(browser, people, make_person):
    """Inbox, recently decided and my requests cost the same with one row or six."""
    org = people["employee"].organisation
    approver, employee = people["approver"], people["employee"]
    today = local_today(org)

    def counts() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as home:
            assert browser(employee).get(HOME).status_code == 200
        with CaptureQueriesContext(connection) as inbox:
            assert browser(approver).get(APPROVALS).status_code == 200
        return len(home), len(inbox)

    decided = ask(employee, today - dt.timedelta(days=10))
    services.adjustment_request_approve(actor=approver.user, request=decided, comment="ok")
    ask(employee, today - dt.timedelta(days=1))
    before = counts()
    for number in range(2, 7):
        request = ask(employee, today - dt.timedelta(days=number))
        if number % 2:
            services.adjustment_request_reject(actor=approver.user, request=request)
        report = make_person(org, "employee", approver=approver)
        ask(report, today - dt.timedelta(days=number))
    assert counts() == before


def test_posts_need_a_csrf_token(people):
    client = Client(enforce_csrf_checks=True)
    client.force_login(people["employee"].user)
    response = client.post("/attendance/punch/", {"kind": "in", "client_id": uuid.uuid4().hex})
    assert response.status_code == 403
    assert not Punch.objects.exists()


# --- login / logout ----------------------------------------------------------------------


def test_login_page_logs_in_and_bad_password_does_not(people):
    client = Client()
    page = client.get(LOGIN)
    assert page.status_code == 200
    assert b'name="username"' in page.content
    assert b'name="password"' in page.content

    bad = client.post(LOGIN, {"username": "employee_user", "password": "wrong"})
    assert bad.status_code == 200
    assert b"Please enter a correct username and password" in bad.content
    assert "_auth_user_id" not in client.session
    assert client.get(HOME).status_code == 302

    good = client.post(LOGIN, {"username": "employee_user", "password": PASSWORD, "next": HOME})
    assert good.status_code == 302
    assert good["Location"] == HOME
    assert client.get(HOME).status_code == 200


def test_login_is_rate_limited(people, settings):
    settings.RATELIMIT_LOGIN = "2/m"
    client = Client()
    for _ in range(2):
        client.post(LOGIN, {"username": "employee_user", "password": "wrong"})
    response = client.post(LOGIN, {"username": "employee_user", "password": PASSWORD})
    assert response.status_code == 429
    assert b"Too many attempts" in response.content
    assert "_auth_user_id" not in client.session


def test_logout_is_a_post(browser, people):
    client = browser(people["employee"])
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get(HOME).status_code == 302
