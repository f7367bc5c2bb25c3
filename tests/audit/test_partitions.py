"""Partitions: TRUNCATE refused everywhere, months one transaction each, the DEFAULT trap
repaired, the health that /readyz and the preflight gate read. Real dates throughout."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_ensure_partitions, audit_partition_health
from audit.services.partitions import PartitionMaintenanceError, _add_months
from audit.services.verification import monthly_partitions
from tests.support import owner_connection

pytestmark = pytest.mark.django_db


def this_month() -> dt.date:
    return timezone.now().date().replace(day=1)


def partition_name(month: dt.date) -> str:
    return f"audit_auditevent_y{month:%Y}m{month:%m}"


def partition_names() -> set[str]:
    with connection.cursor() as cursor:
        return set(monthly_partitions(cursor))


def table_of(event: AuditEvent) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM audit_auditevent WHERE id = %s", [event.pk]
        )
        return cursor.fetchone()[0]


def truncate_triggers() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgrelid::regclass::text FROM pg_trigger"
            " WHERE tgname IN ('audit_auditevent_no_truncate', 'audit_auditdigest_no_truncate')"
        )
        return {row[0] for row in cursor.fetchall()}


# --- TRUNCATE --------------------------------------------------------------------------


def test_every_partition_and_the_digests_have_a_truncate_trigger():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'audit_auditevent'::regclass"
        )
        partitions = {row[0] for row in cursor.fetchall()}
    assert "audit_auditevent_default" in partitions
    assert truncate_triggers() == partitions | {"audit_auditevent", "audit_auditdigest"}


@pytest.mark.parametrize(
    "table",
    ["audit_auditevent", "audit_auditevent_default", "this_month", "audit_auditdigest"],
)
def test_truncate_is_refused_even_to_the_owner(table):
    table = partition_name(this_month()) if table == "this_month" else table
    with owner_connection() as owner, pytest.raises(psycopg.Error, match="append-only"):
        owner.execute(f'TRUNCATE "{table}"')


def test_the_application_cannot_truncate_either():
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("TRUNCATE audit_auditevent")


def test_a_new_partition_gets_its_truncate_trigger():
    month = _add_months(this_month(), 20)
    created = audit_ensure_partitions(months_ahead=0, today=month)
    assert partition_name(month) in created
    assert partition_name(month) in truncate_triggers()


# --- DEFAULT ---------------------------------------------------------------------------


def test_an_event_beyond_the_window_lands_in_default_and_readyz_warns(client):
    month = _add_months(this_month(), 20)  # twelve months are kept ahead, not twenty
    event = AuditEvent.objects.create(
        action="test.future", occurred_at=dt.datetime(month.year, month.month, 5, tzinfo=dt.UTC)
    )
    assert table_of(event) == "audit_auditevent_default"

    health = audit_partition_health()
    assert (health["defaultRows"], health["ok"]) == (1, False)
    assert "DEFAULT" in health["detail"]

    response = client.get("/readyz")
    assert response.status_code == 200  # a warning: the instance still serves
    body = response.json()
    assert (body["status"], body["failing"], body["warnings"]) == (
        "ok",
        [],
        ["audit_partitions"],
    )
    assert body["advisories"]["audit_partitions"]["defaultRows"] == 1


def test_readyz_has_no_warning_when_partitions_are_in_shape(client):
    assert audit_partition_health()["ok"]
    body = client.get("/readyz").json()
    assert body["warnings"] == []
    assert body["advisories"]["audit_partitions"]["ok"] is True


def test_fewer_than_two_future_months_is_a_warning():
    # Seen from a month whose successors have no partitions yet.
    far = _add_months(this_month(), 40)
    health = audit_partition_health(today=far)
    assert (health["monthsAhead"], health["ok"]) == (0, False)
    assert "future month" in health["detail"]
    audit_ensure_partitions(months_ahead=1, today=far)
    assert audit_partition_health(today=far)["monthsAhead"] == 1
    audit_ensure_partitions(months_ahead=2, today=far)
    assert audit_partition_health(today=far) == {
        "defaultRows": 0,
        "monthsAhead": 2,
        "ok": True,
        "detail": "ok",
    }


def test_a_month_in_default_is_repaired_when_its_partition_is_made():
    inside = _add_months(this_month(), 5)  # in the window, not made by the migration
    beyond = _add_months(this_month(), 20)  # outside it: repaired all the same
    stranded = [
        AuditEvent.objects.create(
            action="test.stranded",
            occurred_at=dt.datetime(month.year, month.month, day, 12, tzinfo=dt.UTC),
            data={"day": day},
        )
        for month in (inside, beyond)
        for day in (1, 28)
    ]
    assert {table_of(event) for event in stranded} == {"audit_auditevent_default"}
    # Creating the month the plain way is what failed before, for every later month too.
    with (
        pytest.raises(DatabaseError, match=r"default partition|must be owner"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            f'CREATE TABLE "{partition_name(inside)}_plain" PARTITION OF audit_auditevent'
            " FOR VALUES FROM (%s) TO (%s)",
            [inside, _add_months(inside, 1)],
        )

    created = audit_ensure_partitions()

    assert {partition_name(inside), partition_name(beyond)} <= set(created)
    assert partition_name(_add_months(this_month(), 12)) in created
    assert [table_of(event) for event in stranded] == [
        partition_name(inside),
        partition_name(inside),
        partition_name(beyond),
        partition_name(beyond),
    ]
    assert audit_partition_health()["defaultRows"] == 0
    repaired = AuditEvent.objects.filter(action="audit.partitions.repaired").order_by("id")
    assert [(e.target_id, e.data["movedRows"]) for e in repaired] == [
        (partition_name(inside), 2),
        (partition_name(beyond), 2),
    ]
    # The moved rows are as protected as any: row triggers cloned, TRUNCATE trigger made.
    with (
        pytest.raises(DatabaseError, match=r"append-only|permission denied"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE audit_auditevent SET action = 'x' WHERE id = %s", [stranded[0].pk])
    assert partition_name(inside) in truncate_triggers()
    stored = AuditEvent.objects.get(pk=stranded[1].pk)
    assert (stored.action, stored.data) == ("test.stranded", {"day": 28})


def test_a_month_that_fails_does_not_stop_the_others():
    blocked = _add_months(this_month(), 6)
    # A table squatting the month's name (not a partition) is refused, not taken as done.
    with owner_connection() as owner:
        owner.execute(f'CREATE TABLE "{partition_name(blocked)}" (id bigint)')
    try:
        with pytest.raises(PartitionMaintenanceError, match=blocked.isoformat()):
            audit_ensure_partitions(months_ahead=9)
        names = partition_names()
        assert partition_name(blocked) not in names
        assert {partition_name(_add_months(this_month(), n)) for n in (5, 7, 8, 9)} <= names
        event = AuditEvent.objects.get(action="audit.partitions.created")
        assert list(event.data["failed"]) == [blocked.isoformat()]
        assert partition_name(_add_months(this_month(), 9)) in event.data["partitions"]
    finally:
        with owner_connection() as owner:
            owner.execute(f'DROP TABLE "{partition_name(blocked)}"')


def test_run_time_ddl_functions_are_security_definer_with_a_fixed_search_path():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT proname, prosecdef, proconfig FROM pg_proc WHERE proname IN"
            " ('audit_ensure_partition', 'audit_drop_partition', 'audit_default_rows',"
            " 'audit_default_months') ORDER BY proname"
        )
        rows = cursor.fetchall()
    assert [row[0] for row in rows] == [
        "audit_default_months",
        "audit_default_rows",
        "audit_drop_partition",
        "audit_ensure_partition",
    ]
    for _name, definer, config in rows:
        assert definer
        assert "search_path=pg_catalog, public, pg_temp" in config
