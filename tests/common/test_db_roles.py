"""The role split: the application's role owns nothing and may only read and append the
audit log; migrations run as the owner, who grants it that (common/db_roles.py)."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from django.db import connection

from common import db_roles
from tests.support import PYTHON, ROOT, child_env, owner_connection

FORBIDDEN_TO_THE_APP = [
    "TRUNCATE audit_auditevent",
    "DROP TABLE audit_auditevent",
    "ALTER TABLE audit_auditevent DISABLE TRIGGER ALL",
    "ALTER TABLE audit_auditevent DETACH PARTITION audit_auditevent_default",
    "UPDATE audit_auditevent SET action = 'x'",
    "DELETE FROM audit_auditevent",
    "DROP TABLE audit_auditevent_default",
    "TRUNCATE audit_auditevent_default",
    "DELETE FROM audit_auditevent_default",
    "SET session_replication_role = replica",
    "CREATE TABLE public.shadow (id int)",
]


@pytest.fixture
def app_role(django_db_setup):
    """The application's role. In a split set-up it is the tests' own; with one role, a
    role given exactly the application's grants (the test connection acts as it). Asked for
    before ``db``, so that it is dropped after the test's transaction has rolled back."""
    if db_roles.split_configured():
        yield db_roles.app_role()
        return
    role = f"app_{uuid.uuid4().hex[:12]}"
    with owner_connection() as owner:
        owner.execute(f"CREATE ROLE {role} NOLOGIN")
        with owner.cursor() as cursor:
            db_roles.grant_app_privileges(cursor, role)
        owner.execute(f"GRANT {role} TO {connection.settings_dict['USER']}")
    yield role
    with owner_connection() as owner:
        owner.execute(f"DROP OWNED BY {role}")
        owner.execute(f"DROP ROLE {role}")


def _as(role: str):
    if not db_roles.split_configured():
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL ROLE {role}")


@pytest.mark.parametrize("statement", FORBIDDEN_TO_THE_APP)
def test_the_application_role_cannot_change_or_remove_the_audit_log(app_role, db, statement):
    from django.db import DatabaseError, transaction

    with transaction.atomic():
        _as(app_role)
        with pytest.raises(DatabaseError) as caught, transaction.atomic(), connection.cursor() as c:
            c.execute(statement)
    message = str(caught.value)
    assert "permission denied" in message or "must be owner" in message, message


def test_the_application_role_reads_and_appends_the_audit_log(app_role, people):
    from django.db import transaction

    from audit.models import AuditEvent
    from audit.services import audit_record

    with transaction.atomic():
        _as(app_role)
        event = audit_record(actor=people["admin"].user, action="test.appended")
        assert AuditEvent.objects.get(pk=event.pk).action == "test.appended"


def test_the_application_role_creates_its_stage_tables_in_its_own_schema(app_role, db):
    from django.db import transaction

    with transaction.atomic():
        _as(app_role)
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {db_roles.SCRATCH_SCHEMA}.scratch_probe (id int)")
            cursor.execute("SELECT to_regclass('attendance_scratch.scratch_probe') IS NOT NULL")
            assert cursor.fetchone()[0]


def test_the_application_role_has_no_problem_left(app_role, db):
    from django.db import transaction

    with transaction.atomic():
        _as(app_role)
        with connection.cursor() as cursor:
            assert db_roles.app_role_problems(cursor) == []


def test_a_role_that_owns_the_schema_is_named_a_problem(db):
    with owner_connection() as owner, owner.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        superuser = cursor.fetchone()[0]
        problems = db_roles.app_role_problems(cursor)
    assert any("owns" in problem for problem in problems), problems
    assert any("superuser" in problem for problem in problems) == superuser


@pytest.mark.integration
def test_check_deploy_with_the_database_names_what_the_role_may_do(db):
    result = subprocess.run(
        [PYTHON, "manage.py", "check", "--deploy", "--database", "default"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if db_roles.split_configured():
        assert "common.W002" not in result.stdout + result.stderr, result.stderr
    else:
        assert "common.W002" in result.stderr, result.stdout + result.stderr
