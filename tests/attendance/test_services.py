"""Attendance write services against the real database: punches, requests, roles, tokens."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
import zoneinfo

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections, transaction
from django.utils import timezone

from attendance import services
from attendance.models import AdjustmentRequest, ApiToken, AttendanceRecord, Employee, Punch
from audit.models import AuditEvent
from common import roles
from common.exceptions import Forbidden, NotFound, RequestStateConflict, ValidationFailed

pytestmark = pytest.mark.django_db

User = get_user_model()
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
MONDAY = dt.date(2024, 3, 4)
TUESDAY = MONDAY + dt.timedelta(days=1)


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


def punch(employee, kind, moment, **kwargs):
    return services.punch_create(
        actor=employee.user, employee=employee, kind=kind, occurred_at=moment, **kwargs
    )


def fresh_user(employee):
    """A new user object: role lookups are cached per object."""
    return User.objects.get(pk=employee.user_id)


def record_values(record: AttendanceRecord) -> dict:
    record.refresh_from_db()
    return {
        "first_in": record.first_in,
        "last_out": record.last_out,
        "work_minutes": record.work_minutes,
        "late_minutes": record.late_minutes,
        "early_leave_minutes": record.early_leave_minutes,
        "status": record.status,
        "source": record.source,
    }


# --- punches ----------------------------------------------------------------------------


def test_punch_in_then_out_builds_the_day(people):
    employee = people["employee"]
    first, record, created = punch(employee, "in", at(MONDAY, 8, 58))
    assert created is True
    assert (first.work_date, first.kind, first.source) == (MONDAY, "in", "web")
    assert (record.status, record.first_in, record.last_out) == ("partial", first.occurred_at, None)

    second, record, created = punch(employee, "out", at(MONDAY, 18, 3))
    assert created is True
    assert AttendanceRecord.objects.filter(employee=employee).count() == 1
    assert record_values(record) == {
        "first_in": at(MONDAY, 8, 58),
        "last_out": at(MONDAY, 18, 3),
        "work_minutes": 545,
        "late_minutes": 0,
        "early_leave_minutes": 0,
        "status": "normal",
        "source": "punch",
    }
    events = AuditEvent.objects.filter(action="attendance.punch.created").order_by("id")
    assert [(e.target_type, e.target_id, e.data["status"]) for e in events] == [
        ("attendance.punch", str(first.pk), "partial"),
        ("attendance.punch", str(second.pk), "normal"),
    ]
    assert {e.actor_id for e in events} == {employee.user_id}
    assert {e.organisation_id for e in events} == {employee.organisation_id}


def test_punch_rejects_an_unknown_kind(people):
    with pytest.raises(ValidationFailed) as caught:
        punch(people["employee"], "sideways", at(MONDAY, 9))
    assert caught.value.details == {"fields": {"kind": ["Must be 'in' or 'out'."]}}
    assert not Punch.objects.exists()


def test_inactive_employee_cannot_punch(people):
    employee = people["employee"]
    Employee.objects.filter(pk=employee.pk).update(is_active=False)
    employee.refresh_from_db()
    with pytest.raises(Forbidden):
        punch(employee, "in", at(MONDAY, 9))
    assert not Punch.objects.exists()


def test_client_id_makes_a_resend_idempotent(people):
    employee = people["employee"]
    first, record, created = punch(employee, "in", at(MONDAY, 9), client_id="tap-1")
    again, record_again, created_again = punch(employee, "in", at(MONDAY, 9, 1), client_id="tap-1")
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert record_again.pk == record.pk
    assert Punch.objects.filter(employee=employee).count() == 1
    assert AuditEvent.objects.filter(action="attendance.punch.created").count() == 1


def test_the_same_client_id_from_two_employees_is_two_punches(people):
    one, _, _ = punch(people["employee"], "in", at(MONDAY, 9), client_id="same")
    two, _, created = punch(people["stranger"], "in", at(MONDAY, 9), client_id="same")
    assert created is True
    assert one.pk != two.pk


def test_night_shift_out_after_midnight_belongs_to_the_first_day(people):
    employee = people["employee"]
    punch_in, _, _ = punch(employee, "in", at(MONDAY, 22, 0))
    punch_out, record, _ = punch(employee, "out", at(TUESDAY, 6, 30))
    assert (punch_in.work_date, punch_out.work_date) == (MONDAY, MONDAY)
    assert record.work_date == MONDAY
    assert (record.first_in, record.last_out, record.work_minutes) == (
        at(MONDAY, 22, 0),
        at(TUESDAY, 6, 30),
        510,
    )
    assert list(AttendanceRecord.objects.filter(employee=employee).values_list("work_date")) == [
        (MONDAY,)
    ]


def test_night_shift_on_an_overnight_schedule_is_normal(people):
    employee = people["employee"]
    organisation = employee.organisation
    organisation.work_start, organisation.work_end = dt.time(19, 30), dt.time(7, 30)
    organisation.save(update_fields=["work_start", "work_end"])
    punch(employee, "in", at(MONDAY, 19, 25))
    _, record, _ = punch(employee, "out", at(TUESDAY, 7, 31))
    assert (record.work_date, record.status, record.work_minutes) == (MONDAY, "normal", 726)


def test_an_out_punch_long_after_the_last_in_starts_its_own_day(people):
    employee = people["employee"]
    punch(employee, "in", at(MONDAY, 9, 0))
    late_out, record, _ = punch(employee, "out", at(TUESDAY, 18, 0))
    assert late_out.work_date == TUESDAY
    assert (record.work_date, record.status, record.first_in) == (TUESDAY, "partial", None)


# --- adjustment requests ----------------------------------------------------------------


def ask(employee, work_date=MONDAY, **kwargs):
    kwargs.setdefault("reason", "Forgot to punch")
    if not any(k in kwargs for k in ("first_in", "last_out", "status")):
        kwargs["first_in"] = at(work_date, 9, 0)
        kwargs["last_out"] = at(work_date, 18, 0)
    return services.adjustment_request_create(
        actor=employee.user, employee=employee, work_date=work_date, **kwargs
    )


def test_request_create_stores_and_audits(people):
    employee = people["employee"]
    request = ask(employee)
    request.refresh_from_db()
    assert (request.state, request.created_by_id, request.reason) == (
        "pending",
        employee.user_id,
        "Forgot to punch",
    )
    assert (request.requested_first_in, request.requested_last_out) == (
        at(MONDAY, 9),
        at(MONDAY, 18),
    )
    event = AuditEvent.objects.get(action="attendance.request.created")
    assert (event.target_type, event.target_id, event.actor_id) == (
        "attendance.adjustmentrequest",
        str(request.pk),
        employee.user_id,
    )
    assert event.data["workDate"] == "2024-03-04"


def test_request_for_a_future_date_is_refused(people):
    employee = people["employee"]
    tomorrow = timezone.localtime(timezone.now(), SHANGHAI).date() + dt.timedelta(days=1)
    with pytest.raises(ValidationFailed) as caught:
        ask(employee, work_date=tomorrow, status="leave")
    assert list(caught.value.details["fields"]) == ["workDate"]
    assert not AdjustmentRequest.objects.exists()


def test_request_for_today_is_allowed(people):
    today = timezone.localtime(timezone.now(), SHANGHAI).date()
    assert ask(people["employee"], work_date=today, status="leave").state == "pending"


def test_one_pending_request_per_day(people):
    employee = people["employee"]
    ask(employee)
    with pytest.raises(RequestStateConflict):
        ask(employee, status="leave")
    assert AdjustmentRequest.objects.filter(employee=employee).count() == 1
    # Another day is fine.
    ask(employee, work_date=TUESDAY)


def test_times_off_the_work_date_are_refused(people):
    with pytest.raises(ValidationFailed) as caught:
        ask(people["employee"], first_in=at(MONDAY + dt.timedelta(days=3), 9))
    assert list(caught.value.details["fields"]) == ["firstIn"]


def test_last_out_the_next_morning_is_allowed_for_night_shifts(people):
    request = ask(people["employee"], first_in=at(MONDAY, 22), last_out=at(TUESDAY, 6))
    assert request.pk


def test_last_out_before_first_in_is_refused(people):
    with pytest.raises(ValidationFailed) as caught:
        ask(people["employee"], first_in=at(MONDAY, 18), last_out=at(MONDAY, 9))
    assert caught.value.details["fields"] == {"lastOut": ["Must not be before firstIn."]}


def test_a_request_is_held_to_the_correction_window_outside_the_api_too(people, settings):
    settings.CORRECTION_MAX_AGE_DAYS = 30
    today = timezone.localdate(timezone=people["employee"].organisation.tz)
    with pytest.raises(ValidationFailed) as caught:
        ask(people["employee"], work_date=today - dt.timedelta(days=31))
    assert list(caught.value.details["fields"]) == ["workDate"]
    assert ask(people["employee"], work_date=today - dt.timedelta(days=30)).state == "pending"


def test_a_request_must_ask_for_something_and_give_a_reason(people):
    with pytest.raises(ValidationFailed) as caught:
        services.adjustment_request_create(
            actor=people["employee"].user,
            employee=people["employee"],
            work_date=MONDAY,
            reason="  ",
        )
    assert set(caught.value.details["fields"]) == {"reason", "nonFieldErrors"}


def test_a_request_cannot_ask_for_the_adjusted_status(people):
    with pytest.raises(ValidationFailed) as caught:
        ask(people["employee"], status="adjusted")
    assert list(caught.value.details["fields"]) == ["status"]


@pytest.fixture
def monday_record(people):
    employee = people["employee"]
    punch(employee, "in", at(MONDAY, 9, 40))
    _, record, _ = punch(employee, "out", at(MONDAY, 17, 0))
    assert record.status == "late_early"
    return record


def test_approve_rewrites_the_record_and_audits(people, monday_record):
    request = ask(people["employee"], first_in=at(MONDAY, 8, 55), last_out=at(MONDAY, 18, 5))
    approver = fresh_user(people["approver"])
    decided = services.adjustment_request_approve(actor=approver, request=request, comment="ok")
    assert (decided.state, decided.decided_by_id, decided.decision_comment) == (
        "approved",
        approver.pk,
        "ok",
    )
    assert decided.decided_at is not None
    assert record_values(monday_record) == {
        "first_in": at(MONDAY, 8, 55),
        "last_out": at(MONDAY, 18, 5),
        "work_minutes": 550,
        "late_minutes": 0,
        "early_leave_minutes": 0,
        "status": "adjusted",
        "source": "adjustment",
    }
    event = AuditEvent.objects.get(action="attendance.request.approved")
    assert (event.actor_id, event.target_id, event.organisation_id) == (
        approver.pk,
        str(request.pk),
        people["employee"].organisation_id,
    )
    assert event.data["before"]["status"] == "late_early"
    assert event.data["after"]["status"] == "adjusted"
    assert event.data["record"] == monday_record.pk


def test_approve_keeps_the_recorded_time_it_was_not_asked_to_change(people, monday_record):
    request = ask(people["employee"], last_out=at(MONDAY, 18, 0))
    services.adjustment_request_approve(actor=fresh_user(people["admin"]), request=request)
    values = record_values(monday_record)
    assert (values["first_in"], values["last_out"], values["work_minutes"]) == (
        at(MONDAY, 9, 40),
        at(MONDAY, 18, 0),
        500,
    )


def test_approve_creates_the_record_when_the_day_had_none(people):
    request = ask(people["employee"], status="leave")
    services.adjustment_request_approve(actor=fresh_user(people["approver"]), request=request)
    record = AttendanceRecord.objects.get(employee=people["employee"], work_date=MONDAY)
    assert (record.status, record.source, record.first_in, record.work_minutes) == (
        "leave",
        "adjustment",
        None,
        0,
    )


def test_approve_is_atomic_with_its_audit_event(people, monday_record, monkeypatch):
    request = ask(people["employee"])
    before = record_values(monday_record)

    def broken_audit(**kwargs):
        raise RuntimeError("audit store down")

    monkeypatch.setattr(services, "audit_record", broken_audit)
    with pytest.raises(RuntimeError):
        services.adjustment_request_approve(actor=fresh_user(people["approver"]), request=request)
    request.refresh_from_db()
    assert (request.state, request.decided_by_id, request.decided_at) == ("pending", None, None)
    assert record_values(monday_record) == before
    assert not AuditEvent.objects.filter(action="attendance.request.approved").exists()


def test_approve_twice_is_a_state_conflict(people, monday_record):
    request = ask(people["employee"])
    services.adjustment_request_approve(actor=fresh_user(people["approver"]), request=request)
    with pytest.raises(RequestStateConflict):
        services.adjustment_request_approve(actor=fresh_user(people["admin"]), request=request)
    assert AuditEvent.objects.filter(action="attendance.request.approved").count() == 1


def test_an_approver_of_someone_else_cannot_decide(people, make_person, monday_record):
    other_approver = make_person(people["employee"].organisation, "employee", "approver")
    request = ask(people["employee"])
    before = record_values(monday_record)
    for service in (services.adjustment_request_approve, services.adjustment_request_reject):
        with pytest.raises(Forbidden):
            service(actor=fresh_user(other_approver), request=request)
    request.refresh_from_db()
    assert request.state == "pending"
    assert record_values(monday_record) == before


def test_a_plain_employee_cannot_decide(people):
    request = ask(people["employee"])
    with pytest.raises(Forbidden):
        services.adjustment_request_approve(actor=fresh_user(people["stranger"]), request=request)


def test_nobody_decides_their_own_request_not_even_an_admin(people):
    admin = people["admin"]
    request = ask(admin)
    with pytest.raises(Forbidden):
        services.adjustment_request_approve(actor=fresh_user(admin), request=request)
    request.refresh_from_db()
    assert request.state == "pending"


def test_an_admin_of_another_organisation_cannot_decide(people, other_organisation, make_person):
    foreign_admin = make_person(other_organisation, "employee", "admin")
    request = ask(people["employee"])
    with pytest.raises(Forbidden):
        services.adjustment_request_approve(actor=fresh_user(foreign_admin), request=request)


def test_reject_leaves_the_record_alone(people, monday_record):
    request = ask(people["employee"])
    before = record_values(monday_record)
    approver = fresh_user(people["approver"])
    decided = services.adjustment_request_reject(actor=approver, request=request, comment="no")
    assert (decided.state, decided.decision_comment, decided.decided_by_id) == (
        "rejected",
        "no",
        approver.pk,
    )
    assert record_values(monday_record) == before
    event = AuditEvent.objects.get(action="attendance.request.rejected")
    assert (event.target_id, event.data) == (str(request.pk), {"comment": "no"})
    with pytest.raises(RequestStateConflict):
        services.adjustment_request_approve(actor=approver, request=request)


def test_only_the_owner_cancels_and_only_while_pending(people):
    request = ask(people["employee"])
    with pytest.raises(Forbidden):
        services.adjustment_request_cancel(actor=fresh_user(people["approver"]), request=request)
    with pytest.raises(Forbidden):
        services.adjustment_request_cancel(actor=fresh_user(people["admin"]), request=request)
    cancelled = services.adjustment_request_cancel(actor=people["employee"].user, request=request)
    assert cancelled.state == "cancelled"
    assert AuditEvent.objects.filter(
        action="attendance.request.cancelled", target_id=str(request.pk)
    ).exists()
    with pytest.raises(RequestStateConflict):
        services.adjustment_request_cancel(actor=people["employee"].user, request=request)
    # Cancelled frees the day for a new request.
    assert ask(people["employee"]).state == "pending"


def test_deciding_a_request_of_another_organisation_is_not_found(people, other_organisation):
    request = ask(people["employee"])
    request.organisation_id = other_organisation.pk  # what a forged id would look like
    with pytest.raises(NotFound):
        services.adjustment_request_approve(actor=fresh_user(people["admin"]), request=request)


def test_a_later_punch_does_not_overwrite_an_adjusted_day(people, monday_record):
    request = ask(people["employee"])
    services.adjustment_request_approve(actor=fresh_user(people["approver"]), request=request)
    adjusted = record_values(monday_record)
    new_punch, record, created = punch(people["employee"], "out", at(MONDAY, 20, 0))
    assert created is True
    assert new_punch.work_date == MONDAY
    assert record.pk == monday_record.pk
    assert record_values(monday_record) == adjusted
    assert adjusted["status"] == "adjusted"


# --- roles and provisioning -------------------------------------------------------------


def group_members(role: str) -> set[int]:
    return set(User.objects.filter(groups__name=role).values_list("pk", flat=True))


def test_roles_batch_apply_answers_each_identifier(people, make_person, other_organisation):
    organisation = people["admin"].organisation
    inactive_user = make_person(organisation, "employee")
    User.objects.filter(pk=inactive_user.user_id).update(is_active=False)
    inactive_employee = make_person(organisation, "employee")
    Employee.objects.filter(pk=inactive_employee.pk).update(is_active=False)
    no_login = Employee.objects.create(organisation=organisation, employee_no="NL1", name="No")
    foreigner = make_person(other_organisation, "employee")
    employee, approver, stranger = people["employee"], people["approver"], people["stranger"]

    result = services.roles_batch_apply(
        actor=fresh_user(people["admin"]),
        organisation=organisation,
        role="approver",
        assign=True,
        user_ids=[
            employee.user_id,
            employee.user_id,  # duplicate: counted once
            approver.user_id,  # already an approver
            inactive_user.user_id,
            foreigner.user_id,  # another organisation: nobody here
        ],
        employee_nos=[
            "NOPE",
            stranger.employee_no,
            employee.employee_no,  # same person as a userId above
            inactive_employee.employee_no,
            no_login.employee_no,
        ],
    )
    assert result == {
        "role": roles.APPROVER,
        "requested": 9,
        "updated": [employee.user_id, stranger.employee_no],
        "unchanged": [approver.user_id, employee.employee_no],
        "missing": [foreigner.user_id, "NOPE", "NL1"],
        "inactive": [inactive_user.user_id, inactive_employee.employee_no],
    }
    assert group_members(roles.APPROVER) == {
        employee.user_id,
        approver.user_id,
        stranger.user_id,
    }
    events = AuditEvent.objects.filter(action__startswith="attendance.role")
    assert [e.action for e in events] == ["attendance.role.batch_assigned"]
    assert events[0].data == result
    assert events[0].organisation_id == organisation.pk


def test_roles_batch_unassign_never_removes_the_callers_admin(people):
    admin = fresh_user(people["admin"])
    other_admin = people["stranger"]
    services.role_assign(actor=admin, user=fresh_user(other_admin), role="admin")
    result = services.roles_batch_apply(
        actor=admin,
        organisation=people["admin"].organisation,
        role="admin",
        assign=False,
        user_ids=[admin.pk, other_admin.user_id],
    )
    assert (result["updated"], result["unchanged"]) == ([other_admin.user_id], [admin.pk])
    assert group_members(roles.ADMIN) == {admin.pk}


def test_roles_batch_apply_refuses_an_unknown_role(people):
    with pytest.raises(ValidationFailed):
        services.roles_batch_apply(
            actor=fresh_user(people["admin"]),
            organisation=people["admin"].organisation,
            role="overlord",
            assign=True,
            user_ids=[people["employee"].user_id],
        )
    assert not AuditEvent.objects.filter(action__startswith="attendance.role").exists()


def test_role_assign_admin_sets_staff_and_unassign_clears_it(people):
    actor = fresh_user(people["admin"])
    target = fresh_user(people["employee"])
    assert target.is_staff is False
    assert services.role_assign(actor=actor, user=target, role="admin") is True
    target.refresh_from_db()
    assert target.is_staff is True
    assert roles.ADMIN in set(target.groups.values_list("name", flat=True))
    assert services.role_assign(actor=actor, user=target, role="admin") is False

    assert services.role_unassign(actor=actor, user=target, role="attendance_admin") is True
    target.refresh_from_db()
    assert target.is_staff is False
    assert roles.ADMIN not in set(target.groups.values_list("name", flat=True))
    assert [e.action for e in AuditEvent.objects.filter(target_id=str(target.pk)).order_by("id")][
        -2:
    ] == ["attendance.role.assigned", "attendance.role.unassigned"]


def test_role_assign_of_a_non_admin_role_leaves_staff_alone(people):
    target = fresh_user(people["employee"])
    services.role_assign(actor=fresh_user(people["admin"]), user=target, role="importer")
    target.refresh_from_db()
    assert target.is_staff is False


def test_nobody_removes_their_own_admin_role(people):
    admin = fresh_user(people["admin"])
    with pytest.raises(Forbidden):
        services.role_unassign(actor=admin, user=admin, role="admin")
    assert admin.groups.filter(name=roles.ADMIN).exists()


def test_role_changes_stay_inside_the_organisation(people, other_organisation, make_person):
    foreigner = make_person(other_organisation, "employee")
    with pytest.raises(NotFound):
        services.role_assign(
            actor=fresh_user(people["admin"]), user=fresh_user(foreigner), role="admin"
        )
    assert not fresh_user(foreigner).groups.filter(name=roles.ADMIN).exists()


def test_user_provision_is_idempotent(organisation):
    kwargs = {
        "actor": None,
        "organisation": organisation,
        "username": "newbie",
        "employee_no": "0042",
        "name": "New Bie",
        "role_names": ["employee", "importer"],
    }
    employee, created = services.user_provision(**kwargs)
    again, created_again = services.user_provision(**kwargs)
    assert (created, created_again) == (True, False)
    assert again.pk == employee.pk
    assert User.objects.filter(username="newbie").count() == 1
    assert Employee.objects.filter(organisation=organisation, employee_no="0042").count() == 1
    user = User.objects.get(username="newbie")
    assert user.has_usable_password() is False
    assert set(user.groups.values_list("name", flat=True)) == {roles.EMPLOYEE, roles.IMPORTER}
    assert employee.employee_no == "0042"  # leading zeros kept


def test_api_token_issue_stores_only_the_hash(people):
    user = people["employee"].user
    token, raw = services.api_token_issue(actor=user, user=user, name="script")
    token.refresh_from_db()
    assert raw.startswith("att_")
    assert token.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert token.prefix == raw[:10]
    stored = ApiToken.objects.filter(pk=token.pk).values().get()
    assert raw not in {str(value) for value in stored.values()}
    event = AuditEvent.objects.get(action="attendance.token.issued")
    assert raw not in str(event.data)
    assert event.target_id == str(token.pk)


def test_api_token_revoke(people):
    user = people["employee"].user
    token, _ = services.api_token_issue(actor=user, user=user)
    services.api_token_revoke(actor=user, token=token)
    services.api_token_revoke(actor=user, token=token)
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(action="attendance.token.revoked").count() == 1


def test_settings_update_refuses_unknown_fields(people):
    with pytest.raises(ValidationFailed) as caught:
        services.organisation_settings_update(
            actor=fresh_user(people["admin"]), organisation=people["admin"].organisation, slug="x"
        )
    assert caught.value.details == {"fields": {"slug": ["Not a setting."]}}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"time_zone": "Mars/Olympus_Mons"}, "timeZone"),
        ({"ip_allowlist": ["10.0.0.0/8", "not-a-network"]}, "ipAllowlist"),
        ({"grace_minutes": 500}, "nonFieldErrors"),
    ],
)
def test_settings_update_refuses_invalid_values_without_a_500(people, changes, field):
    organisation = people["admin"].organisation
    with pytest.raises(ValidationFailed) as caught:
        services.organisation_settings_update(
            actor=fresh_user(people["admin"]), organisation=organisation, **changes
        )
    assert list(caught.value.details["fields"]) == [field]
    organisation.refresh_from_db()
    assert (organisation.time_zone, organisation.ip_allowlist, organisation.grace_minutes) == (
        "Asia/Shanghai",
        [],
        5,
    )
    assert not AuditEvent.objects.filter(action="attendance.settings.updated").exists()


def test_settings_update_persists_and_audits(people):
    organisation = people["admin"].organisation
    services.organisation_settings_update(
        actor=fresh_user(people["admin"]),
        organisation=organisation,
        grace_minutes=10,
        ip_allowlist=["10.0.0.0/8"],
    )
    organisation.refresh_from_db()
    assert (organisation.grace_minutes, organisation.ip_allowlist) == (10, ["10.0.0.0/8"])
    event = AuditEvent.objects.get(action="attendance.settings.updated")
    assert event.data == {
        "before": {"grace_minutes": "5", "ip_allowlist": "[]"},
        "after": {"grace_minutes": "10", "ip_allowlist": "['10.0.0.0/8']"},
    }


@pytest.mark.django_db(transaction=True)
def test_concurrent_resends_of_one_client_id_make_one_punch(organisation, make_person):
    """The second request waits for the first instead of failing on the unique source key."""
    employee = make_person(organisation, "employee")
    first_punched = threading.Event()
    results, errors = {}, []

    def first():
        try:
            with transaction.atomic():
                results["first"] = punch(employee, "in", at(MONDAY, 9), client_id="double-tap")
                first_punched.set()
                # Hold the transaction open until the resend is waiting on our lock.
                deadline = time.monotonic() + 5
                while not _someone_waits_for_a_lock() and time.monotonic() < deadline:
                    time.sleep(0.01)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
            first_punched.set()
        finally:
            connection.close()

    def resend():
        try:
            first_punched.wait(5)
            results["resend"] = punch(employee, "in", at(MONDAY, 9), client_id="double-tap")
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=resend)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert results["first"][2] is True
    assert results["resend"][2] is False
    assert results["resend"][0].pk == results["first"][0].pk
    assert Punch.objects.filter(employee=employee).count() == 1


def _someone_waits_for_a_lock() -> bool:
    with connections["default"].cursor() as cursor:
        # Activity is a snapshot per transaction unless cleared.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def test_resent_punch_rebuilds_a_day_that_was_removed(people):
    from attendance import services as attendance_services
    from attendance.models import AttendanceRecord

    employee = people["employee"]
    punch, _, _ = attendance_services.punch_create(
        actor=employee.user, employee=employee, kind="in", client_id="resend-1"
    )
    AttendanceRecord.objects.filter(employee=employee).delete()
    again, record, created = attendance_services.punch_create(
        actor=employee.user, employee=employee, kind="in", client_id="resend-1"
    )
    assert (again.pk, created) == (punch.pk, False)
    assert record.work_date == punch.work_date
    assert AttendanceRecord.objects.filter(employee=employee).count() == 1


def test_tokens_are_issued_only_within_the_organisation(people, other_organisation, make_person):
    from attendance import services as attendance_services
    from common.exceptions import Forbidden

    outsider = make_person(other_organisation, "employee")
    with pytest.raises(Forbidden):
        attendance_services.api_token_issue(actor=people["admin"].user, user=outsider.user)
    token, raw = attendance_services.api_token_issue(
        actor=people["admin"].user, user=people["employee"].user
    )
    assert raw.startswith("att_") and token.user == people["employee"].user
