"""manage.py commands: seed_demo, provision_user, issue_token, audit_partitions."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from attendance.models import AdjustmentRequest, AttendanceRecord, Employee, Organisation
from audit.models import AuditEvent
from common import roles
from events.models import Event

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue()


def test_seed_demo_is_idempotent(settings):
    output = run("seed_demo", "--employees", "12", "--days", "20")
    assert "Demo password:" in output
    organisation = Organisation.objects.get(slug="demo")
    records = AttendanceRecord.objects.filter(organisation=organisation).count()
    assert Employee.objects.filter(organisation=organisation).count() == 12
    assert records == 12 * 20
    assert AdjustmentRequest.objects.filter(employee__user__username="employee").count() == 1
    events = {event.title: event for event in Event.objects.filter(organisation=organisation)}
    assert len(events) == 3
    running = events["Fire safety training"]
    assert running.status == "in_progress" and running.participants.count() == 12
    past = events["Volunteer shift: book fair"]
    assert past.status == "completed"
    assert past.participants.filter(attendance="present").count() == 10
    assert past.participants.filter(attendance="excused").count() == 1
    run("seed_demo", "--employees", "12", "--days", "20")
    assert Event.objects.filter(organisation=organisation).count() == 3
    assert AttendanceRecord.objects.filter(organisation=organisation).count() == records
    assert Employee.objects.filter(organisation=organisation).count() == 12
    admin = Employee.objects.get(organisation=organisation, user__username="admin").user
    assert admin.check_password(settings.DEMO_PASSWORD)
    assert admin.is_staff
    assert roles.user_roles(admin) == {roles.EMPLOYEE, roles.ADMIN}
    employee = Employee.objects.get(user__username="employee")
    assert employee.approver.user.username == "approver"


def test_seed_demo_is_refused_in_production(settings):
    settings.IS_PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        run("seed_demo")


def test_provision_user_assigns_and_unassigns_roles(organisation):
    run(
        "provision_user",
        "carol",
        "--org",
        organisation.slug,
        "--employee-no",
        "0042",
        "--name",
        "Carol",
        "--role",
        "approver",
        "--role",
        "importer",
        "--password",
        "s3cret-pass!",
    )
    employee = Employee.objects.get(organisation=organisation, employee_no="0042")
    assert employee.user.username == "carol"
    assert roles.user_roles(employee.user) == {roles.APPROVER, roles.IMPORTER}
    output = run("provision_user", "carol", "--org", organisation.slug, "--unassign", "importer")
    employee.user.__dict__.pop("_attendance_roles", None)
    assert roles.user_roles(employee.user) == {roles.APPROVER}
    assert "roles: attendance_approver" in output
    assert AuditEvent.objects.filter(action="attendance.role.unassigned").count() == 1


def test_provision_user_rejects_bad_input(organisation):
    with pytest.raises(CommandError, match="Unknown role"):
        run(
            "provision_user",
            "dan",
            "--org",
            organisation.slug,
            "--employee-no",
            "1",
            "--role",
            "boss",
        )
    with pytest.raises(CommandError, match="No organisation"):
        run("provision_user", "dan", "--org", "nope", "--employee-no", "1")
    with pytest.raises(CommandError, match="employee-no"):
        run("provision_user", "dan", "--org", organisation.slug)


def test_issue_token_prints_a_working_token_alone_on_the_last_line(people):
    output = run("issue_token", people["employee"].user.username, "--name", "script")
    token = output.strip().splitlines()[-1]
    assert token.startswith("att_") and " " not in token
    client = APIClient()
    response = client.get("/api/attendance/me", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert response.json()["data"]["username"] == people["employee"].user.username
    assert AuditEvent.objects.filter(action="attendance.token.issued").count() == 1


def test_issue_token_for_unknown_user_fails():
    with pytest.raises(CommandError, match="No user"):
        run("issue_token", "ghost")


def test_audit_partitions_command_lists_partitions():
    output = run("audit_partitions")
    assert "audit_auditevent_default" in output
    assert "FOR VALUES FROM" in output
