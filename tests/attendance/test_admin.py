"""The admin centre: who gets in, organisation scoping, and that actions go through the
services (and so are audited)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from attendance import services
from attendance.choices import RecordStatus, RequestState
from attendance.models import AdjustmentRequest, ApiToken, AttendanceRecord, Employee
from audit.models import AuditEvent
from audit.services import audit_record
from common import roles

pytestmark = pytest.mark.django_db

User = get_user_model()

CHANGELISTS = [
    "/admin/attendance/organisation/",
    "/admin/attendance/employee/",
    "/admin/attendance/attendancerecord/",
    "/admin/attendance/adjustmentrequest/",
    "/admin/attendance/punch/",
    "/admin/attendance/apitoken/",
    "/admin/audit/auditevent/",
    "/admin/imports/importbatch/",
    "/admin/auth/user/",
]
EMPLOYEES = "/admin/attendance/employee/"
USERS = "/admin/auth/user/"
TOKENS = "/admin/attendance/apitoken/"
REQUESTS = "/admin/attendance/adjustmentrequest/"


def client_for(employee=None, user=None) -> Client:
    client = Client()
    if employee is not None:
        client.force_login(employee.user)
    elif user is not None:
        client.force_login(user)
    return client


def assert_sent_to_login(response):
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def role_names(user) -> set[str]:
    return set(user.groups.filter(name__in=roles.ALL).values_list("name", flat=True))


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("root", "root@example.com", "x-very-secret-1")


# --- who gets in ------------------------------------------------------------------------


@pytest.mark.parametrize("url", CHANGELISTS)
def test_anonymous_is_sent_to_the_admin_login(url):
    assert_sent_to_login(Client().get(url))


@pytest.mark.parametrize("url", CHANGELISTS)
@pytest.mark.parametrize("who", ["employee", "approver", "importer"])
def test_people_without_the_admin_role_get_the_apps_403_page(people, url, who):
    # Signed in already: the admin's sign-in form would suggest signing in again helps.
    assert not people[who].user.is_staff
    response = client_for(people[who]).get(url)
    assert response.status_code == 403
    assert b"You are not allowed to open this page" in response.content


@pytest.mark.parametrize("url", CHANGELISTS)
def test_admin_opens_every_changelist(people, url):
    response = client_for(people["admin"]).get(url)
    assert response.status_code == 200


@pytest.mark.parametrize("url", CHANGELISTS)
def test_superuser_opens_every_changelist(superuser, people, url):
    assert client_for(user=superuser).get(url).status_code == 200


def test_admin_index_lists_the_admin_centre(people):
    response = client_for(people["admin"]).get("/admin/")
    assert response.status_code == 200
    for name in (b"Employees", b"Audit events", b"API tokens", b"Import batches", b"Users"):
        assert name in response.content


# --- organisation scoping ---------------------------------------------------------------


def test_admin_sees_only_their_organisation(people, other_organisation, make_person):
    outsider = make_person(other_organisation, "employee", employee_no="X-OUTSIDE")
    client = client_for(people["admin"])

    employees = client.get(EMPLOYEES)
    assert people["stranger"].employee_no.encode() in employees.content
    assert b"X-OUTSIDE" not in employees.content
    assert client.get(f"{EMPLOYEES}{outsider.pk}/change/").status_code in (302, 404)

    users = client.get(USERS)
    assert people["stranger"].user.username.encode() in users.content
    assert outsider.user.username.encode() not in users.content
    assert client.get(f"{USERS}{outsider.user.pk}/change/").status_code in (302, 404)

    organisations = client.get("/admin/attendance/organisation/")
    assert other_organisation.name.encode() not in organisations.content
    assert client.get(
        f"/admin/attendance/organisation/{other_organisation.pk}/change/"
    ).status_code in (302, 404)


def test_superuser_sees_every_organisation(superuser, people, other_organisation, make_person):
    make_person(other_organisation, "employee", employee_no="X-OUTSIDE")
    response = client_for(user=superuser).get(EMPLOYEES)
    assert b"X-OUTSIDE" in response.content
    assert people["admin"].employee_no.encode() in response.content


def test_audit_viewer_is_scoped(people, other_organisation):
    audit_record(
        actor=None, action="attendance.test.mine", organisation=people["admin"].organisation
    )
    audit_record(actor=None, action="attendance.test.theirs", organisation=other_organisation)
    response = client_for(people["admin"]).get("/admin/audit/auditevent/")
    assert b"attendance.test.mine" in response.content
    assert b"attendance.test.theirs" not in response.content


def test_non_superuser_cannot_add_organisations(people):
    response = client_for(people["admin"]).get("/admin/attendance/organisation/add/")
    assert response.status_code == 403


# --- organisations ----------------------------------------------------------------------


def organisation_form(organisation, **changes) -> dict:
    data = {
        "time_zone": organisation.time_zone,
        "work_start": organisation.work_start.strftime("%H:%M:%S"),
        "work_end": organisation.work_end.strftime("%H:%M:%S"),
        "grace_minutes": organisation.grace_minutes,
        "workdays": ["0", "1", "2", "3", "4"],
        "ip_allowlist": "",
        "auto_absence_delay_minutes": organisation.auto_absence_delay_minutes,
        "audit_retention_days": organisation.audit_retention_days,
    }
    data.update(changes)
    return data


def test_settings_change_goes_through_the_service(people):
    organisation = people["admin"].organisation
    url = f"/admin/attendance/organisation/{organisation.pk}/change/"
    response = client_for(people["admin"]).post(
        url, organisation_form(organisation, grace_minutes=15, name="Renamed")
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    organisation.refresh_from_db()
    assert organisation.grace_minutes == 15
    assert organisation.name != "Renamed"  # read-only for non-superusers
    event = AuditEvent.objects.get(action="attendance.settings.updated")
    assert event.organisation_id == organisation.pk
    assert event.data == {"before": {"grace_minutes": "5"}, "after": {"grace_minutes": "15"}}
    assert event.actor_id == people["admin"].user.pk


def test_superuser_creates_an_organisation_with_an_audit_event(superuser):
    data = {"name": "New Co", "slug": "new-co", **organisation_form_defaults()}
    response = client_for(user=superuser).post("/admin/attendance/organisation/add/", data)
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="attendance.organisation.created")
    assert event.organisation.slug == "new-co"


def organisation_form_defaults() -> dict:
    return {
        "time_zone": "Asia/Shanghai",
        "work_start": "09:00:00",
        "work_end": "18:00:00",
        "grace_minutes": 5,
        "workdays": ["0", "1", "2", "3", "4"],
        "ip_allowlist": "",
        "auto_absence_delay_minutes": 60,
        "audit_retention_days": 365,
    }


# --- employees --------------------------------------------------------------------------


def employee_form(**changes) -> dict:
    data = {
        "employee_no": "N-001",
        "name": "New Person",
        "department": "Ops",
        "user": "",
        "approver": "",
        "dingtalk_user_id": "",
        "device_pin": "",
        "is_active": "on",
    }
    data.update(changes)
    return data


def test_admin_creates_an_employee_in_their_organisation(people):
    client = client_for(people["admin"])
    response = client.post(
        f"{EMPLOYEES}add/", employee_form(approver=people["approver"].pk, device_pin="77")
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    employee = Employee.objects.get(employee_no="N-001")
    assert employee.organisation_id == people["admin"].organisation_id
    event = AuditEvent.objects.get(action="attendance.employee.created")
    assert event.target_id == str(employee.pk)
    assert "employee_no" in event.data["changed"]

    response = client.post(
        f"{EMPLOYEES}{employee.pk}/change/", employee_form(name="Renamed", device_pin="77")
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="attendance.employee.updated")
    assert "name" in event.data["changed"]


def test_duplicate_numbers_in_the_organisation_are_form_errors(people):
    response = client_for(people["admin"]).post(
        f"{EMPLOYEES}add/", employee_form(employee_no=people["stranger"].employee_no)
    )
    assert response.status_code == 200
    assert "employee_no" in response.context["adminform"].form.errors
    assert not AuditEvent.objects.filter(action="attendance.employee.created").exists()


def test_approver_from_another_organisation_is_refused(people, other_organisation, make_person):
    outsider = make_person(other_organisation, "approver")
    response = client_for(people["admin"]).post(
        f"{EMPLOYEES}add/", employee_form(approver=outsider.pk)
    )
    assert response.status_code == 200
    assert "approver" in response.context["adminform"].form.errors
    assert not Employee.objects.filter(employee_no="N-001").exists()


@pytest.mark.parametrize("url", [EMPLOYEES, USERS])
def test_people_changelists_do_not_query_per_row(people, make_person, url):
    organisation = people["admin"].organisation
    client = client_for(people["admin"])
    client.get(url)  # warm the session and content types

    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        return len(queries)

    few = count_queries()
    for _ in range(9):
        make_person(organisation, "employee", "approver", approver=people["approver"])
    assert Employee.objects.filter(organisation=organisation).count() == 14
    assert count_queries() == few
    assert few <= 15


# --- roles ------------------------------------------------------------------------------


def test_assign_role_through_the_intermediate_page(people):
    client = client_for(people["admin"])
    target = people["stranger"]
    selection = {"action": "assign_role", "_selected_action": [target.pk]}

    page = client.post(EMPLOYEES, selection)
    assert page.status_code == 200
    assert b"Assign role" in page.content
    assert target.name.encode() in page.content
    assert roles.APPROVER not in role_names(target.user)

    response = client.post(EMPLOYEES, {**selection, "role": roles.APPROVER, "apply": "yes"})
    assert response.status_code == 302
    assert roles.APPROVER in role_names(target.user)
    event = AuditEvent.objects.get(action="attendance.role.batch_assigned")
    assert event.organisation_id == target.organisation_id
    assert event.data["updated"] == [target.user.pk]
    assert event.actor_id == people["admin"].user.pk

    followed = client.get(EMPLOYEES)
    assert any("1 updated" in message for message in messages_of(followed))


def test_unassign_role_and_admin_flag_follows(people):
    client = client_for(people["admin"])
    target = people["approver"]
    response = client.post(
        EMPLOYEES,
        {
            "action": "unassign_role",
            "_selected_action": [target.pk],
            "role": roles.APPROVER,
            "apply": "yes",
        },
    )
    assert response.status_code == 302
    assert roles.APPROVER not in role_names(target.user)
    assert AuditEvent.objects.filter(action="attendance.role.batch_unassigned").exists()

    client.post(
        USERS,
        {
            "action": "assign_role",
            "_selected_action": [target.user.pk],
            "role": roles.ADMIN,
            "apply": "yes",
        },
    )
    target.user.refresh_from_db()
    assert roles.ADMIN in role_names(target.user)
    assert target.user.is_staff


def test_role_page_without_a_role_shows_the_page_again(people):
    response = client_for(people["admin"]).post(
        EMPLOYEES,
        {"action": "assign_role", "_selected_action": [people["stranger"].pk], "apply": "yes"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not AuditEvent.objects.filter(action__startswith="attendance.role.").exists()


def test_user_admin_role_actions_cover_many_and_count(people, make_person):
    nobody = make_person(people["admin"].organisation, "employee", is_active=False)
    client = client_for(people["admin"])
    selected = [people["stranger"].user.pk, people["employee"].user.pk, nobody.user.pk]
    response = client.post(
        USERS,
        {
            "action": "assign_role",
            "_selected_action": selected,
            "role": roles.IMPORTER,
            "apply": "yes",
        },
        follow=True,
    )
    text = " ".join(messages_of(response))
    assert "2 updated" in text
    assert "1 inactive" in text
    assert roles.IMPORTER in role_names(people["employee"].user)
    assert roles.IMPORTER not in role_names(nobody.user)


def test_cannot_remove_own_admin_role(people):
    client = client_for(people["admin"])
    client.post(
        USERS,
        {
            "action": "unassign_role",
            "_selected_action": [people["admin"].user.pk],
            "role": roles.ADMIN,
            "apply": "yes",
        },
    )
    assert roles.ADMIN in role_names(people["admin"].user)


def test_non_superuser_cannot_grant_superuser_or_groups(people):
    target = people["stranger"].user
    admin_group = Group.objects.get(name=roles.ADMIN)
    response = client_for(people["admin"]).post(
        f"{USERS}{target.pk}/change/",
        {
            "username": target.username,
            "first_name": "",
            "last_name": "",
            "email": "",
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "groups": [admin_group.pk],
        },
    )
    assert response.status_code == 302
    target.refresh_from_db()
    assert not target.is_superuser
    assert not target.is_staff
    assert roles.ADMIN not in role_names(target)


def test_superusers_are_hidden_from_organisation_admins(people, superuser):
    people["stranger"].user = superuser
    people["stranger"].save(update_fields=["user"])
    response = client_for(people["admin"]).get(USERS)
    assert b">root<" not in response.content
    assert client_for(people["admin"]).get(f"{USERS}{superuser.pk}/change/").status_code in (
        302,
        404,
    )


# --- adjustment requests ----------------------------------------------------------------


def make_request(employee) -> AdjustmentRequest:
    organisation = employee.organisation
    day = timezone.localtime(timezone.now(), organisation.tz).date() - dt.timedelta(days=3)
    start = dt.datetime.combine(day, dt.time(9, 0), tzinfo=organisation.tz)
    return services.adjustment_request_create(
        actor=employee.user,
        employee=employee,
        work_date=day,
        reason="Forgot to punch",
        first_in=start,
        last_out=start + dt.timedelta(hours=9),
    )


def test_approve_action_adjusts_the_day(people):
    request = make_request(people["employee"])
    response = client_for(people["admin"]).post(
        REQUESTS, {"action": "approve_selected", "_selected_action": [request.pk]}, follow=True
    )
    assert response.status_code == 200
    request.refresh_from_db()
    assert request.state == RequestState.APPROVED
    assert request.decided_by_id == people["admin"].user.pk
    assert request.decision_comment == "Decided in the admin centre"
    record = AttendanceRecord.objects.get(employee=people["employee"], work_date=request.work_date)
    assert record.status == RecordStatus.ADJUSTED
    assert record.work_minutes == 9 * 60
    assert AuditEvent.objects.filter(action="attendance.request.approved").exists()
    assert any("Approved 1" in message for message in messages_of(response))


def test_reject_action_and_failures_are_reported_per_row(people):
    theirs = make_request(people["employee"])
    own = make_request(people["admin"])
    response = client_for(people["admin"]).post(
        REQUESTS,
        {"action": "reject_selected", "_selected_action": [theirs.pk, own.pk]},
        follow=True,
    )
    theirs.refresh_from_db()
    own.refresh_from_db()
    assert theirs.state == RequestState.REJECTED
    assert own.state == RequestState.PENDING  # nobody decides their own request
    text = " ".join(messages_of(response))
    assert "Rejected 1" in text
    assert f"#{own.pk}" in text


def test_requests_are_not_edited_in_the_admin(people):
    request = make_request(people["employee"])
    client = client_for(people["admin"])
    assert client.get(f"{REQUESTS}add/").status_code == 403
    page = client.get(f"{REQUESTS}{request.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert client.post(f"{REQUESTS}{request.pk}/delete/").status_code == 403


def test_day_records_are_read_only(people):
    services.punch_create(actor=people["employee"].user, employee=people["employee"], kind="in")
    record = AttendanceRecord.objects.get(employee=people["employee"])
    client = client_for(people["admin"])
    assert client.get("/admin/attendance/attendancerecord/add/").status_code == 403
    page = client.get(f"/admin/attendance/attendancerecord/{record.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert client.get("/admin/attendance/punch/add/").status_code == 403


# --- API tokens -------------------------------------------------------------------------


def test_token_is_shown_once_and_works_until_revoked(people):
    client = client_for(people["admin"])
    assert client.get(f"{TOKENS}add/").status_code == 200
    response = client.post(f"{TOKENS}add/", {"user": people["employee"].user.pk, "name": "cli"})
    assert response.status_code == 200
    raw = re.search(rb"att_[A-Za-z0-9_-]{20,}", response.content).group().decode()
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get(user=people["employee"].user)
    assert token.key_hash == services.hash_token(raw)
    assert AuditEvent.objects.filter(action="attendance.token.issued").exists()

    assert raw.encode() not in client.get(TOKENS).content
    assert raw.encode() not in client.get(f"{TOKENS}{token.pk}/change/").content

    api = Client()
    me = api.get("/api/attendance/me", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert me.status_code == 200
    assert me.json()["data"]["employee"]["employeeNo"] == people["employee"].employee_no

    response = client.post(TOKENS, {"action": "revoke_selected", "_selected_action": [token.pk]})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(action="attendance.token.revoked").exists()
    assert api.get("/api/attendance/me", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401


def test_token_only_for_people_of_the_organisation(
    people, other_organisation, make_person, superuser
):
    outsider = make_person(other_organisation, "employee")
    client = client_for(people["admin"])
    for user in (outsider.user, superuser):
        response = client.post(f"{TOKENS}add/", {"user": user.pk, "name": "x"})
        assert response.status_code == 200
        assert "user" in response.context["form"].errors
    assert not ApiToken.objects.exists()


def test_token_delete_is_audited(people):
    token, _ = services.api_token_issue(actor=None, user=people["employee"].user, name="old")
    client = client_for(people["admin"])
    response = client.post(f"{TOKENS}{token.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not ApiToken.objects.filter(pk=token.pk).exists()
    event = AuditEvent.objects.get(action="attendance.token.deleted")
    assert event.organisation_id == people["employee"].organisation_id


# --- audit viewer -----------------------------------------------------------------------


def test_audit_viewer_is_read_only(people):
    event = audit_record(
        actor=people["admin"].user,
        action="attendance.test.event",
        organisation=people["admin"].organisation,
        data={"note": "<script>alert(1)</script>", "名字": "张三"},
    )
    client = client_for(people["admin"])
    base = "/admin/audit/auditevent/"

    changelist = client.get(base)
    assert b'name="action"' not in changelist.content  # no actions, not even delete

    page = client.get(f"{base}{event.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert b"<script>alert(1)</script>" not in page.content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.content.decode()
    assert "张三" in page.content.decode()

    assert client.get(f"{base}add/").status_code == 403
    assert client.post(f"{base}add/", {"action": "x"}).status_code == 403
    assert client.post(f"{base}{event.pk}/change/", {"action": "x"}).status_code == 403
    assert client.post(f"{base}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk, action="attendance.test.event").exists()


def test_audit_area_filter(people):
    organisation = people["admin"].organisation
    audit_record(actor=None, action="imports.batch.committed", organisation=organisation)
    audit_record(actor=None, action="attendance.test.other", organisation=organisation)
    response = client_for(people["admin"]).get("/admin/audit/auditevent/?area=imports")
    assert b"imports.batch.committed" in response.content
    assert b"attendance.test.other" not in response.content


# --- smaller things ---------------------------------------------------------------------


@pytest.mark.parametrize("url", CHANGELISTS)
def test_search_answers_on_every_changelist(people, url):
    response = client_for(people["admin"]).get(url, {"q": "abc 12"})
    assert response.status_code == 200


def test_approver_autocomplete_is_scoped(people, other_organisation, make_person):
    outsider = make_person(other_organisation, "approver", name="Outside Approver")
    response = client_for(people["admin"]).get(
        "/admin/autocomplete/",
        {"app_label": "attendance", "model_name": "employee", "field_name": "approver"},
    )
    assert response.status_code == 200
    ids = {int(row["id"]) for row in response.json()["results"]}
    assert people["approver"].pk in ids
    assert outsider.pk not in ids


def test_new_login_can_be_opened_and_linked(people):
    client = client_for(people["admin"])
    response = client.post(
        f"{USERS}add/",
        {
            "username": "newbie",
            "usable_password": "true",
            "password1": "a-long-enough-password-42",
            "password2": "a-long-enough-password-42",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    newbie = User.objects.get(username="newbie")
    assert client.get(f"{USERS}{newbie.pk}/change/").status_code == 200
    response = client.post(f"{EMPLOYEES}add/", employee_form(user=newbie.pk))
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Employee.objects.get(user=newbie).organisation_id == people["admin"].organisation_id


def test_superuser_role_action_spans_organisations(
    superuser, people, other_organisation, make_person
):
    outsider = make_person(other_organisation, "employee")
    response = client_for(user=superuser).post(
        EMPLOYEES,
        {
            "action": "assign_role",
            "_selected_action": [outsider.pk, people["stranger"].pk],
            "role": roles.IMPORTER,
            "apply": "yes",
        },
    )
    assert response.status_code == 302
    assert roles.IMPORTER in role_names(outsider.user)
    assert roles.IMPORTER in role_names(people["stranger"].user)
    events = AuditEvent.objects.filter(action="attendance.role.batch_assigned")
    assert {event.organisation_id for event in events} == {
        other_organisation.pk,
        people["stranger"].organisation_id,
    }


def test_superuser_renames_an_organisation_with_an_audit_event(superuser, people):
    organisation = people["admin"].organisation
    data = {
        "name": "Renamed",
        "slug": organisation.slug,
        **organisation_form(organisation),
    }
    response = client_for(user=superuser).post(
        f"/admin/attendance/organisation/{organisation.pk}/change/", data
    )
    assert response.status_code == 302
    organisation.refresh_from_db()
    assert organisation.name == "Renamed"
    event = AuditEvent.objects.get(action="attendance.organisation.updated")
    assert event.data["after"] == {"name": "Renamed"}
    assert not AuditEvent.objects.filter(action="attendance.settings.updated").exists()


def test_organisation_admin_refuses_a_bad_ip_allowlist_as_a_form_error(people):
    from django.test import Client

    organisation = people["admin"].organisation
    client = Client()
    client.force_login(people["admin"].user)
    url = f"/admin/attendance/organisation/{organisation.pk}/change/"
    page = client.get(url)
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {k: ("" if v is None else v) for k, v in data.items()}
    data["ip_allowlist"] = "not-a-network"
    response = client.post(url, data)
    assert response.status_code == 200
    assert "is not an IP network" in response.content.decode()
    organisation.refresh_from_db()
    assert organisation.ip_allowlist == []
