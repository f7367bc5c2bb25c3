"""What is audited besides writes: logins, failed logins, logouts, access denials (with
their flood bound) and exports, each through real requests on the real database."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client

from attendance.models import AttendanceRecord
from audit import middleware
from audit.models import AuditEvent
from imports import services as import_services
from imports.services import ImportOptions
from tests.conftest import PASSWORD
from tests.support import client_for, error, owner_connection

User = get_user_model()
USERS_API = "/api/attendance-admin/users"
DENIED = middleware.ACTION


def events(action: str, **filters):
    return list(AuditEvent.objects.filter(action=action, **filters).order_by("id"))


def only_event(action: str, **filters) -> AuditEvent:
    found = events(action, **filters)
    assert len(found) == 1, [(e.action, e.data) for e in found]
    return found[0]


# --- logins -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "who", "via"),
    [("/accounts/login/", "employee", "pages"), ("/admin/login/", "admin", "admin")],
)
def test_a_real_login_is_audited_on_both_login_pages(people, url, who, via):
    person = people[who]
    response = Client().post(url, {"username": person.user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content
    event = only_event("security.login.succeeded")
    assert (event.actor_id, event.organisation_id, event.target_id) == (
        person.user_id,
        person.organisation_id,
        str(person.user_id),
    )
    assert event.data == {"username": person.user.username, "via": via, "path": url}
    assert event.ip == "127.0.0.1"


@pytest.mark.parametrize(
    ("url", "via"), [("/accounts/login/", "pages"), ("/admin/login/", "admin")]
)
def test_a_wrong_password_is_audited_without_the_password(people, url, via):
    person = people["employee"]
    wrong = "not-the-password-9"
    response = Client().post(url, {"username": person.user.username, "password": wrong})
    assert response.status_code == 200  # the form again, with its error
    event = only_event("security.login.failed")
    assert event.data == {
        "username": person.user.username,
        "knownUser": True,
        "via": via,
        "path": url,
    }
    assert (event.actor_id, event.actor_label) == (None, "anonymous")
    # The organisation's admins see attempts on their people.
    assert (event.organisation_id, event.target_id) == (person.organisation_id, str(person.user_id))
    assert wrong not in str(event.data) and PASSWORD not in str(event.data)
    assert not events("security.login.succeeded")


def test_a_failed_login_for_an_unknown_name_has_no_organisation(db):
    Client().post("/accounts/login/", {"username": "nobody-here", "password": "x"})
    event = only_event("security.login.failed")
    assert (event.organisation_id, event.target_id) == (None, "")
    assert event.data["username"] == "nobody-here"
    assert event.data["knownUser"] is False


def test_a_logout_is_audited(people):
    person = people["employee"]
    client = Client()
    client.force_login(person.user)
    assert client.post("/accounts/logout/").status_code == 302
    event = only_event("security.logout")
    assert (event.actor_id, event.data["username"]) == (person.user_id, person.user.username)


def test_a_logout_of_nobody_writes_nothing(db):
    Client().post("/accounts/logout/")
    assert not events("security.logout")


# --- access denials ---------------------------------------------------------------------


def test_an_employee_calling_an_admin_endpoint_is_audited(people):
    employee = people["employee"]
    error(client_for(employee).get(USERS_API), 403, "FORBIDDEN")
    event = only_event(DENIED)
    assert (event.actor_id, event.organisation_id) == (employee.user_id, employee.organisation_id)
    assert event.data == {
        "path": USERS_API,
        "method": "GET",
        "code": "FORBIDDEN",
        "status": 403,
        "username": employee.user.username,
    }


def test_a_denial_by_api_token_names_the_tokens_owner(people):
    from attendance import services

    employee = people["employee"]
    _, raw = services.api_token_issue(actor=people["admin"].user, user=employee.user)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get(USERS_API).status_code == 403
    assert only_event(DENIED).actor_id == employee.user_id


def test_the_ip_allowlist_refusal_keeps_its_code(people):
    employee = people["employee"]
    organisation = employee.organisation
    organisation.ip_allowlist = ["10.9.9.0/24"]
    organisation.save(update_fields=["ip_allowlist"])
    response = client_for(employee).get("/api/attendance/me")
    error(response, 403, "IP_RESTRICTED")
    assert only_event(DENIED).data["code"] == "IP_RESTRICTED"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/attendance/"),
        ("post", "/attendance/punch/"),  # refused before the view: still not a CSRF failure
        ("get", "/admin/attendance/organisation/"),
    ],
)
def test_the_allowlist_refusing_pages_and_the_admin_centre_is_audited(people, method, path):
    admin = people["admin"]
    organisation = admin.organisation
    organisation.ip_allowlist = ["10.9.9.0/24"]
    organisation.save(update_fields=["ip_allowlist"])
    client = Client()
    client.force_login(admin.user)
    response = getattr(client, method)(path, REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 403
    event = only_event(DENIED)
    assert (event.data["code"], event.data["path"], event.actor_id) == (
        "IP_RESTRICTED",
        path,
        admin.user_id,
    )


def test_a_page_denial_is_audited(people):
    client = Client()
    client.force_login(people["employee"].user)
    response = client.get("/attendance/approvals/")
    assert response.status_code == 403
    event = only_event(DENIED)
    assert (event.actor_id, event.data["path"], event.data["code"]) == (
        people["employee"].user_id,
        "/attendance/approvals/",
        "FORBIDDEN",
    )


def test_an_admin_centre_permission_denial_is_audited(people):
    # The organisation admin is staff, but the admin role has no rights on groups.
    admin = people["admin"]
    client = Client()
    client.force_login(admin.user)
    assert client.get("/admin/auth/group/").status_code == 403
    event = only_event(DENIED)
    assert (event.actor_id, event.organisation_id) == (admin.user_id, admin.organisation_id)
    assert event.data["path"] == "/admin/auth/group/"


def test_a_csrf_failure_is_audited(people):
    client = Client(enforce_csrf_checks=True)
    client.force_login(people["employee"].user)
    assert client.post("/attendance/punch/", {"kind": "in"}).status_code == 403
    event = only_event(DENIED)
    assert (event.data["code"], event.data["method"]) == (middleware.CSRF_FAILED, "POST")
    assert not AuditEvent.objects.filter(action="attendance.punch.created").exists()


def test_an_api_csrf_failure_of_a_session_is_audited_as_one(people):
    client = Client(enforce_csrf_checks=True)
    client.force_login(people["employee"].user)
    response = client.post("/api/attendance/punch", {"kind": "in"}, content_type="application/json")
    error(response, 403, "FORBIDDEN")
    assert only_event(DENIED).data["code"] == middleware.CSRF_FAILED


def test_an_anonymous_denial_is_recorded_by_address(db):
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR="198.51.100.7")
    assert client.post("/accounts/login/", {"username": "x", "password": "y"}).status_code == 403
    event = only_event(DENIED)
    assert (event.actor_id, event.actor_label, event.ip) == (None, "anonymous", "198.51.100.7")
    assert event.data["username"] == ""


def test_a_401_is_not_a_denial(db):
    error(Client().get(USERS_API), 401, "UNAUTHENTICATED")
    error(Client(HTTP_AUTHORIZATION="Bearer att_wrong").get(USERS_API), 401, "UNAUTHENTICATED")
    assert not events(DENIED)


def test_denials_are_bounded_to_one_per_user_path_and_code_a_minute(people):
    employee, stranger = people["employee"], people["stranger"]
    client = client_for(employee)
    for _ in range(5):
        error(client.get(USERS_API), 403, "FORBIDDEN")
    assert len(events(DENIED)) == 1
    # Another path, or another person, is another event.
    error(client.get(f"{USERS_API}/{stranger.user_id}/access"), 403, "FORBIDDEN")
    error(client_for(stranger).get(USERS_API), 403, "FORBIDDEN")
    assert [(e.actor_id, e.data["path"]) for e in events(DENIED)] == [
        (employee.user_id, USERS_API),
        (employee.user_id, f"{USERS_API}/{stranger.user_id}/access"),
        (stranger.user_id, USERS_API),
    ]
    # Once the window's entry is gone from the cache, the next refusal is recorded again.
    cache.clear()
    error(client.get(USERS_API), 403, "FORBIDDEN")
    assert len(events(DENIED)) == 4


def test_anonymous_denials_are_bounded_per_address(db):
    def refused(address):
        client = Client(enforce_csrf_checks=True, REMOTE_ADDR=address)
        assert client.post("/accounts/login/", {}).status_code == 403

    for _ in range(3):
        refused("198.51.100.7")
    refused("198.51.100.8")
    assert [e.ip for e in events(DENIED)] == ["198.51.100.7", "198.51.100.8"]


@pytest.mark.django_db(transaction=True)
def test_a_failed_audit_write_never_fails_the_refusal(people, caplog):
    """The audit store refuses the insert for real (a trigger the owner adds, as a full disk
    or a revoked grant would): the 403 is still answered, and the failure logged."""
    employee = people["employee"]
    with owner_connection() as owner:
        owner.execute(
            "CREATE FUNCTION test_refuse_denials_fn() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN IF NEW.action = 'security.access.denied' THEN"
            " RAISE EXCEPTION 'audit store unavailable'; END IF; RETURN NEW; END $$"
        )
        owner.execute(
            "CREATE TRIGGER test_refuse_denials BEFORE INSERT ON audit_auditevent"
            " FOR EACH ROW EXECUTE FUNCTION test_refuse_denials_fn()"
        )
        try:
            with caplog.at_level(logging.ERROR, logger="audit.middleware"):
                error(client_for(employee).get(USERS_API), 403, "FORBIDDEN")
        finally:
            owner.execute("DROP TRIGGER test_refuse_denials ON audit_auditevent")
            owner.execute("DROP FUNCTION test_refuse_denials_fn()")
    assert not events(DENIED)
    assert "Could not audit the access denial" in caplog.text
    # A lost event does not spend the minute: once the store is back, the same refusal
    # is recorded at once.
    error(client_for(employee).get(USERS_API), 403, "FORBIDDEN")
    assert len(events(DENIED)) == 1


# --- exports ----------------------------------------------------------------------------


def test_a_record_export_is_audited_with_its_filters_and_scope(people):
    admin = people["admin"]
    response = client_for(admin).get(
        "/api/attendance/export.csv",
        {"from": "2026-05-01", "to": "2026-05-31", "status": "late"},
    )
    assert response.status_code == 200
    b"".join(response.streaming_content)
    event = only_event("attendance.records.exported")
    assert (event.actor_id, event.organisation_id) == (admin.user_id, admin.organisation_id)
    assert event.data == {
        "filters": {"from": "2026-05-01", "to": "2026-05-31", "status": "late"},
        "scope": "organisation",
    }


@pytest.mark.parametrize(("who", "scope"), [("employee", "self"), ("approver", "self_and_reports")])
def test_the_export_scope_follows_what_the_exporter_may_see(people, who, scope):
    person = people[who]
    response = client_for(person).get("/api/attendance/export.csv", {"employee": person.pk})
    assert response.status_code == 200
    event = only_event("attendance.records.exported")
    assert event.data == {"filters": {"employee": person.pk}, "scope": scope}


def test_a_refused_export_is_not_an_export(people):
    response = client_for(people["admin"]).get(
        "/api/attendance/export.csv", {"from": "2026-05-31", "to": "2026-05-01"}
    )
    error(response, 400, "VALIDATION_ERROR")
    assert not events("attendance.records.exported")


def test_a_batch_export_is_audited_with_its_type(people):
    importer = people["importer"]
    employee = people["employee"]
    answer = import_services.import_commit(
        actor=importer.user,
        organisation=importer.organisation,
        options=ImportOptions(
            csv_text="employee_no,name,work_date,first_in,last_out,status\n"
            f"{employee.employee_no},{employee.name},2026-05-04,09:00,18:00,normal\n"
        ),
        commit_token=None,
        trusted_operator=True,
    )
    assert AttendanceRecord.objects.filter(
        employee=employee, work_date=dt.date(2026, 5, 4)
    ).exists()
    batch_id = answer["batchId"]
    response = client_for(importer).get(
        f"/api/attendance/import/batches/{batch_id}/export.csv", {"type": "imported"}
    )
    assert response.status_code == 200
    b"".join(response.streaming_content)
    event = only_event("imports.batch.exported")
    assert (event.actor_id, event.target_type, event.target_id) == (
        importer.user_id,
        "imports.importbatch",
        str(batch_id),
    )
    assert event.data["filters"] == {"type": "imported"}
    assert (event.data["scope"], event.data["rowCount"]) == ("batch", 1)


# --- admin centre writes and exports that had no event --------------------------------


@pytest.fixture
def root(db):
    return User.objects.create_superuser("root", "root@example.com", "x-very-secret-1")


def test_admin_user_creation_and_password_change_are_audited(root):
    client = Client()
    client.force_login(root)
    new_password = "a-Brand-new-pass-42"
    response = client.post(
        "/admin/auth/user/add/",
        {
            "username": "newcomer",
            "usable_password": "true",
            "password1": new_password,
            "password2": new_password,
        },
    )
    assert response.status_code == 302, response.content[:2000]
    user = User.objects.get(username="newcomer")
    created = only_event("attendance.user.created", target_id=str(user.pk))
    assert created.actor_id == root.pk
    assert created.data["username"] == "newcomer"
    assert new_password not in str(created.data)

    changed = "another-Pass-word-77"
    response = client.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"usable_password": "true", "password1": changed, "password2": changed},
    )
    assert response.status_code == 302, response.content[:2000]
    event = only_event("attendance.user.password_changed", target_id=str(user.pk))
    assert event.data == {"username": "newcomer"}
    user.refresh_from_db()
    assert user.check_password(changed)


def test_a_failed_password_change_writes_nothing(root):
    client = Client()
    client.force_login(root)
    response = client.post(
        f"/admin/auth/user/{root.pk}/password/",
        {"usable_password": "true", "password1": "one-Pass-1234", "password2": "two-Pass-1234"},
    )
    assert response.status_code == 200  # the form again, with its error
    assert not events("attendance.user.password_changed")


def test_an_admin_user_deletion_is_audited(root, people):
    stranger = people["stranger"].user
    lonely = User.objects.create_user("lonely", password="x-Pass-12345")
    client = Client()
    client.force_login(root)
    response = client.post(f"/admin/auth/user/{lonely.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    event = only_event("attendance.user.deleted")
    assert (event.target_id, event.data) == (str(lonely.pk), {"username": "lonely"})
    assert User.objects.filter(pk=stranger.pk).exists()


def test_an_employee_export_from_the_admin_centre_is_audited(people):
    admin = people["admin"]
    client = Client()
    client.force_login(admin.user)
    form = client.get("/admin/attendance/employee/export/").context["form"]
    data = {"resource": "0", "format": "0"}
    data.update({name: "on" for name in form.fields if name.startswith("employeeresource_")})
    response = client.post("/admin/attendance/employee/export/", data)
    assert response.status_code == 200
    event = only_event("attendance.employees.exported")
    assert (event.actor_id, event.organisation_id) == (admin.user_id, admin.organisation_id)
    assert (event.data["format"], event.data["rows"]) == ("csv", 5)
