"""Retention: expired months really dropped, kept events intact, digests kept and the chain
still verified; the drop function's limits hold against the application's own role."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test import override_settings
from django.utils import timezone

from attendance.models import Organisation
from audit import tasks
from audit.models import AuditDigest, AuditEvent
from audit.services import audit_prune, audit_seal, audit_verify, effective_retention_days
from audit.services.digests import HOUR
from audit.services.partitions import _add_months

pytestmark = pytest.mark.django_db


def month_ago(months: int) -> dt.date:
    return _add_months(timezone.now().date().replace(day=1), -months)


def name(month: dt.date) -> str:
    return f"audit_auditevent_y{month:%Y}m{month:%m}"


def exists(table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        return cursor.fetchone()[0]


def at(month: dt.date, day: int = 1, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(month.year, month.month, day, hour, minute, tzinfo=dt.UTC)


@pytest.fixture
def history(organisation):
    """Months four and three back (to expire), two back (to keep), each with events, and a
    retention that lands between them: the floor is the day after the kept month starts."""
    Organisation.objects.update(audit_retention_days=30)  # the organisations' minimum
    old, older, kept = month_ago(3), month_ago(4), month_ago(2)
    with connection.cursor() as cursor:
        for month in (older, old, kept):
            cursor.execute("SELECT * FROM audit_ensure_partition(%s)", [month])
    last_day_of_older = _add_months(older, 1) - dt.timedelta(days=1)
    events = {
        "older": [
            AuditEvent.objects.create(
                action="test.older", occurred_at=at(older, last_day_of_older.day, 23, 30)
            )
        ],
        "old": [
            AuditEvent.objects.create(action="test.old", occurred_at=at(old, 1, 0, 30)),
            AuditEvent.objects.create(action="test.old", occurred_at=at(old, 15, 12)),
        ],
        "kept": [
            AuditEvent.objects.create(
                action="test.kept", occurred_at=at(kept, 1, 0, 10), data={"n": 1}
            ),
            AuditEvent.objects.create(
                action="test.kept", occurred_at=at(kept, 1, 1, 50), data={"n": 2}
            ),
        ],
    }
    retention = (timezone.now().date() - kept).days - 1
    with override_settings(AUDIT_RETENTION_DAYS=retention):
        yield {"older": older, "old": old, "kept": kept, "events": events, "days": retention}


def test_the_organisations_may_only_raise_the_retention(organisation, other_organisation):
    Organisation.objects.update(audit_retention_days=30)
    with override_settings(AUDIT_RETENTION_DAYS=365):
        assert effective_retention_days() == 365
        Organisation.objects.filter(pk=other_organisation.pk).update(audit_retention_days=400)
        assert effective_retention_days() == 400


def test_prune_drops_expired_months_and_the_chain_still_verifies(history):
    audit_seal(until=at(history["kept"], 1, 2))

    result = audit_prune()

    assert result.retention_days == history["days"]
    dropped = {p.name: p for p in result.partitions}
    assert set(dropped) == {name(history["older"]), name(history["old"])}
    assert all(p.dropped for p in dropped.values())
    assert (dropped[name(history["older"])].events, dropped[name(history["old"])].events) == (1, 2)
    assert not exists(name(history["older"])) and not exists(name(history["old"]))
    assert exists(name(history["kept"])) and exists(name(month_ago(1)))

    kept = AuditEvent.objects.filter(action="test.kept").order_by("id")
    assert [(e.pk, e.data) for e in kept] == [(e.pk, e.data) for e in history["events"]["kept"]]
    assert not AuditEvent.objects.filter(action__in=["test.old", "test.older"]).exists()

    # The digests stay: the chain runs from the first sealed hour, through the pruned months.
    first_hour = history["events"]["older"][0].occurred_at.replace(minute=0)
    assert AuditDigest.objects.order_by("hour_start").first().hour_start == first_hour
    records = AuditEvent.objects.filter(action="audit.partitions.dropped").order_by("id")
    assert [r.target_id for r in records] == [name(history["older"]), name(history["old"])]
    assert records[1].data["events"] == 2
    assert (
        records[1].data["digestsKept"]
        == AuditDigest.objects.filter(
            hour_start__gte=at(history["old"]), hour_start__lt=at(history["kept"])
        ).count()
    )

    report = audit_verify()
    assert report.ok, report.as_dict()
    pruned_hours = int((at(history["kept"]) - first_hour) / HOUR)
    assert (report.pruned_hours, report.checked_hours, report.checked_events) == (
        pruned_hours,
        2,
        2,
    )


def test_a_drop_nobody_recorded_is_a_missing_month(history):
    audit_seal(until=at(history["kept"], 1, 2))
    # The function itself, as the application's role may call it, without the record.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT audit_drop_partition(%s, %s)", [name(history["old"]), at(history["kept"])]
        )
    report = audit_verify()
    assert report.counts == {"missing_hour": 2}
    assert "no drop of it is recorded" in report.problems[0].detail


def test_dry_run_drops_nothing(history, capsys):
    audit_seal(until=at(history["kept"], 1, 2))
    result = audit_prune(dry_run=True)
    assert [(p.name, p.events, p.dropped) for p in result.partitions] == [
        (name(history["older"]), 1, False),
        (name(history["old"]), 2, False),
    ]
    assert exists(name(history["older"])) and exists(name(history["old"]))
    call_command("audit_prune", "--dry-run")
    out = capsys.readouterr().out
    assert f"{name(history['old'])}" in out and "would drop" in out
    assert not AuditEvent.objects.filter(action="audit.partitions.dropped").exists()


def test_a_month_not_sealed_yet_is_refused_and_the_others_dropped(history):
    audit_seal(until=at(history["old"], 1))  # the older month only
    result = audit_prune()
    outcome = {p.name: (p.dropped, p.refused) for p in result.partitions}
    assert outcome[name(history["older"])] == (True, "")
    assert outcome[name(history["old"])][0] is False
    assert "not sealed" in outcome[name(history["old"])][1]
    assert exists(name(history["old"]))


def test_the_daily_task_seals_then_prunes(history):
    result = tasks.prune_audit_partitions()
    assert {p["partition"] for p in result["partitions"] if p["dropped"]} == {
        name(history["older"]),
        name(history["old"]),
    }
    assert audit_verify().ok


@pytest.mark.parametrize(
    ("partition", "floor", "message"),
    [
        ("audit_auditevent_default", "far", "not a monthly audit partition"),
        ("audit_attendance_x", "far", "not a monthly audit partition"),
        ("audit_auditevent_y1990m01", "far", "not a partition of audit_auditevent"),
        # A floor in the future does not let it through: never a month that ended within
        # the last 30 days, whatever the caller says.
        ("last_month", "far", "never less than 30 days ago"),
        ("four_months_ago", "year_ago", "after the retention floor"),
    ],
)
def test_the_drop_function_refuses(history, partition, floor, message):
    partition = {
        "last_month": name(month_ago(1)),
        "four_months_ago": name(history["older"]),
    }.get(partition, partition)
    floor = {
        "far": timezone.now() + dt.timedelta(days=3650),
        "year_ago": timezone.now() - dt.timedelta(days=365),
    }[floor]
    existed = exists(partition)
    with (
        pytest.raises(DatabaseError, match=message),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT audit_drop_partition(%s, %s)", [partition, floor])
    assert exists(partition) == existed


def test_an_event_forged_into_a_pruned_month_is_named_inserted(history):
    audit_seal(until=at(history["kept"], 1, 2))
    audit_prune()
    forged = AuditEvent.objects.create(action="test.forged", occurred_at=at(history["old"], 15, 12))
    report = audit_verify()
    assert [(p.kind, p.event_id) for p in report.problems] == [("inserted", forged.pk)]
