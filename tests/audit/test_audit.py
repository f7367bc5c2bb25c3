"""The audit core: append-only table, monthly partitions, masking, one event per write."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction
from django.test import override_settings
from django.utils import timezone

from attendance import services
from audit import selectors, tasks
from audit.models import AuditEvent
from audit.services import MASK, audit_ensure_partitions, audit_record, mask_secrets
from audit.services.partitions import _add_months
from common import context, db_roles
from tests.support import owner_connection

pytestmark = pytest.mark.django_db


def partition_name(month: dt.date) -> str:
    return f"audit_auditevent_y{month:%Y}m{month:%m}"


def partition_names() -> set[str]:
    return {partition["name"] for partition in selectors.audit_partitions()}


@pytest.fixture
def event(people):
    return audit_record(
        actor=people["admin"].user,
        action="test.original",
        organisation=people["admin"].organisation,
        target_type="test.thing",
        target_id=7,
        data={"n": 1},
    )


# --- append-only ------------------------------------------------------------------------


CHANGES = [
    "UPDATE audit_auditevent SET action = 'x'",
    "UPDATE audit_auditevent SET data = '{}'::jsonb WHERE id = %s",
    "DELETE FROM audit_auditevent",
    "DELETE FROM audit_auditevent WHERE id = %s",
]


@pytest.mark.parametrize("sql", CHANGES)
def test_the_table_refuses_update_and_delete(event, sql):
    params = [event.pk] if "%s" in sql else []
    with pytest.raises(DatabaseError) as caught, transaction.atomic(), connection.cursor() as cur:
        cur.execute(sql, params)
    # The application's role has no right to change the table; a single role meets the
    # triggers instead (as the owner does, below).
    expected = "permission denied" if db_roles.split_configured() else "append-only"
    assert expected in str(caught.value)
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.action, stored.data, stored.target_id) == ("test.original", {"n": 1}, "7")


@pytest.mark.parametrize("sql", CHANGES)
def test_even_the_owner_meets_the_triggers(db, sql):
    with owner_connection(autocommit=False) as owner:
        inserted = owner.execute(
            "INSERT INTO audit_auditevent (action) VALUES ('test.owner') RETURNING id"
        ).fetchone()[0]
        with pytest.raises(psycopg.Error) as caught:
            owner.execute(sql, [inserted] if "%s" in sql else [])
        owner.rollback()
    assert "append-only" in str(caught.value)


def test_the_orm_cannot_edit_or_delete_either(event):
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "test.original"


def test_every_partition_refuses_changes(event):
    # A row reached through its partition, not the parent, is still protected.
    month = timezone.now().date().replace(day=1)
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {partition_name(month)}")
    assert AuditEvent.objects.filter(pk=event.pk).exists()


# --- partitions -------------------------------------------------------------------------


def test_the_table_is_partitioned_by_month():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT partstrat FROM pg_partitioned_table "
            "WHERE partrelid = 'audit_auditevent'::regclass"
        )
        assert cursor.fetchall() == [("r",)]
    names = partition_names()
    this_month = timezone.now().date().replace(day=1)
    assert partition_name(this_month) in names
    assert partition_name(_add_months(this_month, -1)) in names
    assert "audit_auditevent_default" in names


def test_a_new_event_lands_in_the_current_month_partition(event):
    table = partition_name(timezone.now().date().replace(day=1))
    # Through the parent: the application's role has no rights on the partitions themselves.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM audit_auditevent WHERE id = %s", [event.pk]
        )
        assert cursor.fetchall() == [(table,)]


def test_ensure_partitions_creates_the_missing_months_once():
    this_month = timezone.now().date().replace(day=1)
    wanted = {partition_name(_add_months(this_month, offset)) for offset in range(-1, 7)}
    missing = wanted - partition_names()
    assert missing  # the migration made three months ahead, not six

    created = audit_ensure_partitions(months_ahead=6)
    assert set(created) == missing
    assert wanted <= partition_names()
    bounds = {p["name"]: p["bound"] for p in selectors.audit_partitions()}
    last = _add_months(this_month, 6)
    assert bounds[partition_name(last)].startswith(f"FOR VALUES FROM ('{last.isoformat()} ")
    event = AuditEvent.objects.get(action="audit.partitions.created")
    assert (event.actor_id, event.actor_label, sorted(event.data["partitions"])) == (
        None,
        "system",
        sorted(missing),
    )

    assert audit_ensure_partitions(months_ahead=6) == []
    assert AuditEvent.objects.filter(action="audit.partitions.created").count() == 1


def test_ensure_partitions_across_a_year_end():
    created = audit_ensure_partitions(months_ahead=1, today=dt.date(2031, 12, 15))
    assert created == [
        "audit_auditevent_y2031m11",
        "audit_auditevent_y2031m12",
        "audit_auditevent_y2032m01",
    ]


# DEFAULT (an event for a month without a partition, and its repair): test_partitions.py.


def test_the_celery_task_ensures_partitions():
    this_month = timezone.now().date().replace(day=1)
    wanted = {partition_name(_add_months(this_month, offset)) for offset in range(-1, 6)}
    missing = wanted - partition_names()
    with override_settings(AUDIT_PARTITION_MONTHS_AHEAD=5):
        created = tasks.ensure_audit_partitions()
        assert set(created) == missing
        assert wanted <= partition_names()
        assert tasks.ensure_audit_partitions() == []


# --- masking and context ----------------------------------------------------------------


def test_secrets_are_masked_at_any_depth():
    event = audit_record(
        actor=None,
        action="test.secrets",
        data={
            "password": "x",
            "nested": {"apiToken": "y", "keep": "z"},
            "list": [{"client_secret": "s", "n": 1}],
            "Authorization": "Bearer abc",
            "api_key": "k",
            "sessionCookie": "c",
            "name": "visible",
        },
    )
    event.refresh_from_db()
    assert event.data == {
        "password": MASK,
        "nested": {"apiToken": MASK, "keep": "z"},
        "list": [{"client_secret": MASK, "n": 1}],
        "Authorization": MASK,
        "api_key": MASK,
        "sessionCookie": MASK,
        "name": "visible",
    }


def test_mask_secrets_leaves_plain_values_alone():
    assert mask_secrets({"a": [1, "two", None], "b": {"c": True}}) == {
        "a": [1, "two", None],
        "b": {"c": True},
    }
    assert mask_secrets("password") == "password"


def test_audit_record_takes_the_request_context():
    token = context.bind(
        context.RequestContext(request_id="req-9", ip="192.0.2.7", user_agent="agent/2")
    )
    try:
        event = audit_record(actor=None, action="test.context")
    finally:
        context.reset(token)
    event.refresh_from_db()
    assert (event.request_id, event.ip, event.user_agent, event.actor_label) == (
        "req-9",
        "192.0.2.7",
        "agent/2",
        "system",
    )
    outside = audit_record(actor=None, action="test.context")
    assert (outside.request_id, outside.ip, outside.user_agent) == ("", None, "")


def test_a_write_service_writes_exactly_one_event(people):
    admin, employee = people["admin"], people["employee"]
    before = set(AuditEvent.objects.values_list("pk", flat=True))
    services.role_assign(actor=admin.user, user=employee.user, role="importer")
    new = AuditEvent.objects.exclude(pk__in=before)
    assert new.count() == 1
    event = new.get()
    assert (
        event.action,
        event.actor_id,
        event.actor_label,
        event.organisation_id,
        event.target_type,
        event.target_id,
    ) == (
        "attendance.role.assigned",
        admin.user_id,
        f"admin_user ({admin.name})",
        admin.organisation_id,
        "auth.user",
        str(employee.user_id),
    )
    assert event.data == {"role": "attendance_importer", "username": "employee_user"}
    assert timezone.now() - event.occurred_at < dt.timedelta(minutes=1)
