"""The admin API: users, access, role changes (single and batch) and organisation settings."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from attendance import services
from attendance.models import Employee, Organisation
from audit.models import AuditEvent
from common import roles
from tests.support import client_for, data, error

pytestmark = pytest.mark.django_db

User = get_user_model()
BASE = "/api/attendance-admin"
DEFAULT_SETTINGS = {
    "timeZone": "Asia/Shanghai",
    "workStart": "09:00",
    "workEnd": "18:00",
    "graceMinutes": 5,
    "workdays": [0, 1, 2, 3, 4],
    "ipAllowlist": [],
    "autoAbsenceDelayMinutes": 60,
    "auditRetentionDays": 365,
}


def role_names(user_id) -> set[str]:
    return set(Group.objects.filter(user__pk=user_id).values_list("name", flat=True))


def admin_endpoints(user_id):
    return [
        ("get", f"{BASE}/users", None),
        ("get", f"{BASE}/users?q=employee", None),
        ("get", f"{BASE}/users/{user_id}/access", None),
        ("post", f"{BASE}/users/{user_id}/roles/assign", {"role": "importer"}),
        ("post", f"{BASE}/users/{user_id}/roles/unassign", {"role": "importer"}),
        ("post", f"{BASE}/users/batch/roles/assign", {"userIds": [user_id], "role": "importer"}),
        ("post", f"{BASE}/users/batch/roles/unassign", {"userIds": [user_id], "role": "importer"}),
        ("get", f"{BASE}/settings", None),
        ("put", f"{BASE}/settings", {"graceMinutes": 7}),
    ]


def call(client, method, url, body):
    if method == "get":
        return client.get(url)
    return getattr(client, method)(url, body, format="json")


def test_every_admin_endpoint_refuses_anonymous(api, people):
    for method, url, body in admin_endpoints(people["employee"].user_id):
        error(call(api(), method, url, body), 401, "UNAUTHENTICATED")


@pytest.mark.parametrize("role", ["employee", "approver", "importer"])
def test_every_admin_endpoint_refuses_other_roles(people, role):
    target = people["stranger"].user_id
    # A refusal writes nothing but its own security.access.denied event (audit/middleware.py).
    writes = AuditEvent.objects.exclude(action="security.access.denied")
    before = writes.count()
    for method, url, body in admin_endpoints(target):
        error(call(client_for(people[role]), method, url, body), 403, "FORBIDDEN")
    assert role_names(target) == {roles.EMPLOYEE}
    assert writes.count() == before
    assert Organisation.objects.get(pk=people["admin"].organisation_id).grace_minutes == 5


def test_every_admin_endpoint_answers_an_admin(people):
    for method, url, body in admin_endpoints(people["stranger"].user_id):
        response = call(client_for(people["admin"]), method, url, body)
        assert response.status_code == 200, (url, response.content)
        assert response.json()["ok"] is True


# --- users ------------------------------------------------------------------------------


def user_json(employee, role_list):
    return {
        "id": employee.user_id,
        "username": employee.user.username,
        "email": "",
        "isActive": True,
        "lastLogin": None,
        "employee": {
            "id": employee.pk,
            "employeeNo": employee.employee_no,
            "name": employee.name,
            "department": "",
            "isActive": True,
        },
        "roles": role_list,
    }


def test_users_list_and_search(people, other_organisation, make_person):
    make_person(other_organisation, "employee", username="employee_elsewhere")
    admin = client_for(people["admin"])
    body = data(admin.get(f"{BASE}/users"))
    assert body["total"] == 5
    assert [item["username"] for item in body["items"]] == sorted(
        p.user.username for p in people.values()
    )
    body = data(admin.get(f"{BASE}/users?q=employee_us"))
    assert body == {
        "items": [user_json(people["employee"], ["attendance_employee"])],
        "page": 1,
        "pageSize": 50,
        "total": 1,
    }
    by_number = data(admin.get(f"{BASE}/users?q={people['approver'].employee_no}"))["items"]
    assert [item["username"] for item in by_number] == ["approver_user"]
    by_name = data(admin.get(f"{BASE}/users?q={people['importer'].name.upper()}"))["items"]
    assert [item["roles"] for item in by_name] == [["attendance_employee", "attendance_importer"]]
    assert data(admin.get(f"{BASE}/users?q=elsewhere"))["total"] == 0


@pytest.mark.parametrize("query", ["q=a%00b", "q=" + "x" * 201])
def test_users_search_is_validated(people, query):
    response = client_for(people["admin"]).get(f"{BASE}/users?{query}")
    assert list(error(response, 400, "VALIDATION_ERROR")["details"]["fields"]) == ["q"]


def test_users_list_query_count_does_not_grow_with_the_page(people):
    organisation = people["admin"].organisation
    users = User.objects.bulk_create(User(username=f"bulk{n:03d}") for n in range(60))
    Employee.objects.bulk_create(
        Employee(organisation=organisation, employee_no=f"B{n:03d}", name=f"Bulk {n}", user=user)
        for n, user in enumerate(users)
    )
    employee_group = Group.objects.get(name=roles.EMPLOYEE)
    User.groups.through.objects.bulk_create(
        User.groups.through(user_id=user.pk, group_id=employee_group.pk) for user in users
    )
    counts = []
    for size in (5, 50):
        client = client_for(people["admin"])
        with CaptureQueriesContext(connection) as queries:
            body = data(client.get(f"{BASE}/users?q=bulk&pageSize={size}"))
        assert (len(body["items"]), body["total"]) == (size, 60)
        assert body["items"][0]["roles"] == ["attendance_employee"]
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_user_access(people):
    approver = people["approver"]
    services.api_token_issue(actor=approver.user, user=approver.user)
    body = data(client_for(people["admin"]).get(f"{BASE}/users/{approver.user_id}/access"))
    assert body == {
        **user_json(approver, ["attendance_approver", "attendance_employee"]),
        "isStaff": False,
        "isSuperuser": False,
        "canUseAdminCentre": False,
        "reportsCount": 1,
        "activeTokens": 1,
    }
    admin_access = data(
        client_for(people["admin"]).get(f"{BASE}/users/{people['admin'].user_id}/access")
    )
    assert (admin_access["isStaff"], admin_access["canUseAdminCentre"]) == (True, True)


def test_user_access_of_another_organisation_is_not_found(people, other_organisation, make_person):
    foreigner = make_person(other_organisation, "employee")
    admin = client_for(people["admin"])
    error(admin.get(f"{BASE}/users/{foreigner.user_id}/access"), 404, "NOT_FOUND")
    error(admin.get(f"{BASE}/users/987654/access"), 404, "NOT_FOUND")


# --- single role changes ----------------------------------------------------------------


def test_assign_and_unassign_a_role(people):
    target = people["employee"].user_id
    admin = client_for(people["admin"])
    body = data(admin.post(f"{BASE}/users/{target}/roles/assign", {"role": "admin"}, format="json"))
    assert body == {
        "userId": target,
        "role": "attendance_admin",
        "changed": True,
        "roles": ["attendance_admin", "attendance_employee"],
    }
    assert User.objects.get(pk=target).is_staff is True
    again = data(
        admin.post(f"{BASE}/users/{target}/roles/assign", {"role": "admin"}, format="json")
    )
    assert again["changed"] is False

    body = data(
        admin.post(
            f"{BASE}/users/{target}/roles/unassign", {"role": "attendance_admin"}, format="json"
        )
    )
    assert (body["changed"], body["roles"]) == (True, ["attendance_employee"])
    assert User.objects.get(pk=target).is_staff is False
    actions = list(
        AuditEvent.objects.filter(target_id=str(target), action__startswith="attendance.role")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["attendance.role.assigned", "attendance.role.unassigned"]


def test_an_unknown_role_is_a_validation_error(people):
    target = people["employee"].user_id
    response = client_for(people["admin"]).post(
        f"{BASE}/users/{target}/roles/assign", {"role": "overlord"}, format="json"
    )
    assert list(error(response, 400, "VALIDATION_ERROR")["details"]["fields"]) == ["role"]
    assert role_names(target) == {roles.EMPLOYEE}


def test_an_unknown_action_is_not_found(people):
    target = people["employee"].user_id
    response = client_for(people["admin"]).post(
        f"{BASE}/users/{target}/roles/promote", {"role": "admin"}, format="json"
    )
    error(response, 404, "NOT_FOUND")


def test_role_change_for_another_organisation_is_not_found(people, other_organisation, make_person):
    foreigner = make_person(other_organisation, "employee")
    response = client_for(people["admin"]).post(
        f"{BASE}/users/{foreigner.user_id}/roles/assign", {"role": "admin"}, format="json"
    )
    error(response, 404, "NOT_FOUND")
    assert role_names(foreigner.user_id) == {roles.EMPLOYEE}


def test_removing_ones_own_admin_role_is_forbidden(people):
    me = people["admin"].user_id
    response = client_for(people["admin"]).post(
        f"{BASE}/users/{me}/roles/unassign", {"role": "admin"}, format="json"
    )
    error(response, 403, "FORBIDDEN")
    assert roles.ADMIN in role_names(me)


# --- batch role changes -----------------------------------------------------------------


def test_batch_assign_answers_the_counts(people, make_person, other_organisation):
    organisation = people["admin"].organisation
    inactive = make_person(organisation, "employee")
    User.objects.filter(pk=inactive.user_id).update(is_active=False)
    foreigner = make_person(other_organisation, "employee")
    employee, stranger, importer = people["employee"], people["stranger"], people["importer"]
    response = client_for(people["admin"]).post(
        f"{BASE}/users/batch/roles/assign",
        {
            "role": "importer",
            "userIds": [employee.user_id, employee.user_id, inactive.user_id, foreigner.user_id],
            "employeeNos": [stranger.employee_no, importer.employee_no, "NOBODY"],
        },
        format="json",
    )
    assert data(response) == {
        "role": "attendance_importer",
        "requested": 6,
        "updated": [employee.user_id, stranger.employee_no],
        "unchanged": [importer.employee_no],
        "missing": [foreigner.user_id, "NOBODY"],
        "inactive": [inactive.user_id],
    }
    assert roles.IMPORTER in role_names(employee.user_id)
    assert roles.IMPORTER in role_names(stranger.user_id)
    assert roles.IMPORTER not in role_names(inactive.user_id)
    assert roles.IMPORTER not in role_names(foreigner.user_id)
    events = AuditEvent.objects.filter(action__startswith="attendance.role")
    assert [event.action for event in events] == ["attendance.role.batch_assigned"]


def test_batch_unassign(people):
    approver = people["approver"]
    response = client_for(people["admin"]).post(
        f"{BASE}/users/batch/roles/unassign",
        {"role": "approver", "employeeNos": [approver.employee_no]},
        format="json",
    )
    body = data(response)
    assert (body["requested"], body["updated"], body["unchanged"]) == (
        1,
        [approver.employee_no],
        [],
    )
    assert role_names(approver.user_id) == {roles.EMPLOYEE}
    assert AuditEvent.objects.filter(action="attendance.role.batch_unassigned").count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "importer"}, "userIds"),
        ({"role": "importer", "userIds": [], "employeeNos": []}, "userIds"),
        ({"role": "emperor", "userIds": [1]}, "role"),
        ({"role": "importer", "userIds": ["x"]}, "userIds.0"),
        ({"role": "importer", "userIds": [0]}, "userIds.0"),
    ],
)
def test_batch_validates(people, body, field):
    response = client_for(people["admin"]).post(
        f"{BASE}/users/batch/roles/assign", body, format="json"
    )
    assert list(error(response, 400, "VALIDATION_ERROR")["details"]["fields"]) == [field]
    assert not AuditEvent.objects.filter(action__startswith="attendance.role").exists()


# --- settings ---------------------------------------------------------------------------


def test_settings_get(people):
    body = data(client_for(people["admin"]).get(f"{BASE}/settings"))
    assert body == {"name": people["admin"].organisation.name, **DEFAULT_SETTINGS}


def test_settings_put_persists_and_audits(people):
    organisation = people["admin"].organisation
    changes = {
        "timeZone": "Europe/Berlin",
        "workStart": "19:30",
        "workEnd": "07:30",
        "graceMinutes": 10,
        "workdays": [5, 0, 0, 1],
        "ipAllowlist": ["127.0.0.1/32", "10.0.0.0/8"],
        "auditRetentionDays": 400,
    }
    body = data(client_for(people["admin"]).put(f"{BASE}/settings", changes, format="json"))
    assert body == {
        "name": organisation.name,
        **DEFAULT_SETTINGS,
        **changes,
        "workdays": [0, 1, 5],
    }
    organisation.refresh_from_db()
    assert (
        organisation.time_zone,
        str(organisation.work_start),
        str(organisation.work_end),
        organisation.grace_minutes,
        organisation.workdays,
        organisation.ip_allowlist,
        organisation.audit_retention_days,
    ) == (
        "Europe/Berlin",
        "19:30:00",
        "07:30:00",
        10,
        [0, 1, 5],
        ["127.0.0.1/32", "10.0.0.0/8"],
        400,
    )
    event = AuditEvent.objects.get(action="attendance.settings.updated")
    assert (event.actor_id, event.organisation_id, event.target_id) == (
        people["admin"].user_id,
        organisation.pk,
        str(organisation.pk),
    )
    assert event.data["before"]["time_zone"] == "Asia/Shanghai"
    assert event.data["after"]["time_zone"] == "Europe/Berlin"


def test_settings_put_is_partial(people):
    body = data(
        client_for(people["admin"]).put(f"{BASE}/settings", {"graceMinutes": 0}, format="json")
    )
    assert body["graceMinutes"] == 0
    assert body["timeZone"] == "Asia/Shanghai"


def test_an_organisation_may_only_lengthen_the_audit_retention(people, settings):
    settings.AUDIT_RETENTION_DAYS = 400
    admin = client_for(people["admin"])
    refused = admin.put(f"{BASE}/settings", {"auditRetentionDays": 365}, format="json")
    body = error(refused, 400, "VALIDATION_ERROR")
    assert body["details"]["fields"]["auditRetentionDays"]
    accepted = admin.put(f"{BASE}/settings", {"auditRetentionDays": 500}, format="json")
    assert data(accepted)["auditRetentionDays"] == 500


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"timeZone": "Mars/Olympus_Mons"}, "timeZone"),
        ({"timeZone": "Asia/Shanghai", "ipAllowlist": ["10.0.0.0/33"]}, "ipAllowlist"),
        ({"ipAllowlist": ["localhost"]}, "ipAllowlist"),
        ({"graceMinutes": 241}, "graceMinutes"),
        ({"auditRetentionDays": 7}, "auditRetentionDays"),
        ({"workdays": [7]}, "workdays.0"),
        ({"workStart": "25:00"}, "workStart"),
    ],
)
def test_settings_put_refuses_bad_values(people, changes, field):
    response = client_for(people["admin"]).put(f"{BASE}/settings", changes, format="json")
    assert list(error(response, 400, "VALIDATION_ERROR")["details"]["fields"]) == [field]
    organisation = Organisation.objects.get(pk=people["admin"].organisation_id)
    assert (organisation.time_zone, organisation.ip_allowlist, organisation.grace_minutes) == (
        "Asia/Shanghai",
        [],
        5,
    )
    assert not AuditEvent.objects.filter(action="attendance.settings.updated").exists()


def test_settings_are_per_organisation(people, other_organisation, make_person):
    foreign_admin = make_person(other_organisation, "employee", "admin")
    data(client_for(foreign_admin).put(f"{BASE}/settings", {"graceMinutes": 30}, format="json"))
    assert data(client_for(people["admin"]).get(f"{BASE}/settings"))["graceMinutes"] == 5
