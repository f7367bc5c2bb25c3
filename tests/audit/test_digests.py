"""Digests: sealing closed hours into a chain, and verification naming each kind of tamper,
done for real as the owner (a superuser) with the database's own tools."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from audit import tasks
from audit.models import AuditDigest, AuditEvent
from audit.services import audit_seal, audit_verify
from audit.services.digests import GENESIS, HASHED_COLUMNS, HOUR, ROW_TEXT_SQL, chain_hash
from audit.services.partitions import _add_months
from tests.support import app_connection, owner_connection


def this_hour() -> dt.datetime:
    return timezone.now().astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def add_event(when: dt.datetime, action: str = "test.sealed", **data) -> AuditEvent:
    return AuditEvent.objects.create(occurred_at=when, action=action, data=data)


def problems(report) -> list[tuple]:
    return sorted((p.kind, p.hour, p.event_id) for p in report.problems)


# --- format ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_column_of_the_table_is_hashed():
    # A column added to the table must join the row text under a new format number.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'audit_auditevent' ORDER BY ordinal_position"
        )
        assert tuple(row[0] for row in cursor.fetchall()) == HASHED_COLUMNS


@pytest.mark.django_db
def test_the_row_text_is_canonical_jsonb_with_utc_microseconds():
    event = AuditEvent.objects.create(
        occurred_at=dt.datetime(2026, 3, 4, 13, 5, 6, 7, tzinfo=dt.timezone(dt.timedelta(hours=8))),
        action="test.format",
        actor_label="système",
        ip="192.0.2.7",
        data={"z": 1.50, "a": [True, None], "bb": {"y": "x", "x": "y"}},
    )
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL TimeZone = 'America/New_York'")  # must not matter
        cursor.execute(
            f"SELECT {ROW_TEXT_SQL} FROM audit_auditevent e WHERE e.id = %s",
            [event.pk],
        )
        text = cursor.fetchone()[0]
    assert text == (
        f'{{"id": {event.pk}, "ip": "192.0.2.7/32", "data": {{"a": [true, null], "z": 1.5,'
        ' "bb": {"x": "y", "y": "x"}}, "action": "test.format", "actor_id": null,'
        ' "target_id": "", "request_id": "", "user_agent": "", "actor_label": "système",'
        ' "occurred_at": "2026-03-04T05:05:06.000007Z", "target_type": "",'
        ' "organisation_id": null}'
    )


# --- sealing ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_seal_chains_every_closed_hour_empty_ones_included():
    hour = this_hour()
    first = [add_event(hour - 3 * HOUR + dt.timedelta(minutes=m)) for m in (5, 30)]
    last = add_event(hour - HOUR + dt.timedelta(minutes=59, seconds=59))
    add_event(hour + dt.timedelta(seconds=1))  # the open hour: not sealed

    result = audit_seal(until=hour)

    assert (result.hours, result.events, result.first_hour, result.sealed_until) == (
        3,
        3,
        hour - 3 * HOUR,
        hour,
    )
    digests = list(AuditDigest.objects.order_by("hour_start"))
    assert [(d.hour_start, d.event_count, d.event_ids) for d in digests] == [
        (hour - 3 * HOUR, 2, [first[0].pk, first[1].pk]),
        (hour - 2 * HOUR, 0, []),
        (hour - HOUR, 1, [last.pk]),
    ]
    previous = GENESIS
    for digest in digests:
        assert bytes(digest.prev_hash) == previous
        assert bytes(digest.events_hash) == hashlib.sha256(bytes(digest.event_hashes)).digest()
        previous = chain_hash(previous, digest.hour_start, digest.event_count, digest.events_hash)
        assert bytes(digest.chain_hash) == previous
    assert result.chain_head == previous.hex()
    summary = AuditEvent.objects.get(action="audit.digests.sealed")
    assert (summary.data["hours"], summary.data["events"], summary.data["chainHead"]) == (
        3,
        3,
        previous.hex(),
    )

    again = audit_seal(until=hour)
    assert (again.hours, again.sealed_until, again.chain_head) == (0, hour, previous.hex())
    assert AuditEvent.objects.filter(action="audit.digests.sealed").count() == 1


@pytest.mark.django_db
def test_seal_by_default_leaves_the_grace_period_open():
    hour = this_hour()
    add_event(hour - 2 * HOUR)
    with override_settings(AUDIT_SEAL_GRACE_SECONDS=2 * 60 * 60):
        result = audit_seal()
    # now - 2 h falls inside the hour that started two hours ago: that hour stays open.
    assert result.sealed_until is None or result.sealed_until <= hour - HOUR
    assert not AuditDigest.objects.filter(hour_start__gte=hour - 2 * HOUR).exists()


@pytest.mark.django_db
def test_an_open_transaction_holds_the_seal_back():
    hour = this_hour()
    add_event(hour - 2 * HOUR)
    with app_connection(autocommit=False) as other:
        other.execute("SELECT 1")  # its transaction is now open
        pid, began = other.execute("SELECT pg_backend_pid(), now()").fetchone()
        result = audit_seal(until=timezone.now())
        other.rollback()
    assert result.held_back_by["pid"] == pid
    assert dt.datetime.fromisoformat(result.held_back_by["since"]) == began
    assert result.sealed_until <= began


@pytest.mark.django_db
def test_verify_passes_untouched_and_ignores_hours_not_sealed_yet():
    hour = this_hour()
    add_event(hour - 2 * HOUR)
    audit_seal(until=hour - HOUR)
    add_event(hour - HOUR + dt.timedelta(minutes=1))  # after the last sealed hour: fine
    report = audit_verify()
    assert report.ok, report.as_dict()
    assert (report.digests, report.checked_hours, report.checked_events) == (1, 1, 1)


@pytest.mark.django_db(transaction=True)
def test_two_seals_at_once_seal_each_hour_once():
    hour = this_hour()
    for offset in range(1, 7):
        add_event(hour - offset * HOUR)
    barrier, results, errors = threading.Barrier(2), [], []

    def seal():
        try:
            barrier.wait()
            results.append(audit_seal(until=hour))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=seal) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(result.hours for result in results) == [0, 6]
    assert AuditDigest.objects.count() == 6
    assert audit_verify().ok


@pytest.mark.django_db
def test_the_commands_seal_and_verify(capsys):
    hour = this_hour()
    add_event(hour - 2 * HOUR)
    call_command("audit_seal", "--until", hour.isoformat())
    assert "Sealed 2 hour(s), 1 event(s)" in capsys.readouterr().out
    call_command("audit_verify", "--json")
    body = json.loads(capsys.readouterr().out)
    assert (body["ok"], body["digests"], body["problems"]) == (True, 2, [])
    call_command("audit_verify", "--from", (hour - HOUR).isoformat())
    assert "OK" in capsys.readouterr().out


# --- tampering, as the owner -----------------------------------------------------------
# A month of its own, fourteen months back, so nothing else in the database is touched:
# its partition is made for the test and dropped after it (the events and digests the test
# committed are emptied after every transactional test, tests/conftest.py).


@pytest.fixture
def sealed_month(transactional_db):
    month = _add_months(timezone.now().date().replace(day=1), -14)
    partition = f"audit_auditevent_y{month:%Y}m{month:%m}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM audit_ensure_partition(%s)", [month])
    assert not AuditDigest.objects.exists()
    base = dt.datetime(month.year, month.month, 10, 8, tzinfo=dt.UTC)
    events = {
        0: [add_event(base + dt.timedelta(minutes=m), n=m) for m in (5, 20, 40)],
        1: [add_event(base + HOUR + dt.timedelta(minutes=m), n=m) for m in (1, 2)],
        2: [],
        3: [add_event(base + 3 * HOUR + dt.timedelta(minutes=m), n=m) for m in (10, 50)],
    }
    result = audit_seal(until=base + 4 * HOUR)
    assert (result.first_hour, result.hours, result.events) == (base, 4, 7)
    assert audit_verify().ok
    yield {"partition": partition, "base": base, "events": events}
    with owner_connection() as owner:
        owner.execute(f'DROP TABLE IF EXISTS "{partition}"')


def test_an_edit_with_the_triggers_disabled_is_named(sealed_month):
    target = sealed_month["events"][1][0]
    with owner_connection() as owner:
        owner.execute(f'ALTER TABLE "{sealed_month["partition"]}" DISABLE TRIGGER ALL')
        owner.execute("UPDATE audit_auditevent SET data = '{\"n\": 99}' WHERE id = %s", [target.pk])
        owner.execute(f'ALTER TABLE "{sealed_month["partition"]}" ENABLE TRIGGER ALL')
    assert problems(audit_verify()) == [("edited", sealed_month["base"] + HOUR, target.pk)]


def test_an_edit_under_replica_role_is_named(sealed_month):
    target = sealed_month["events"][3][1]
    with owner_connection() as owner:
        owner.execute("SET session_replication_role = replica")
        owner.execute(
            "UPDATE audit_auditevent SET actor_label = 'someone else' WHERE id = %s", [target.pk]
        )
    assert problems(audit_verify()) == [("edited", sealed_month["base"] + 3 * HOUR, target.pk)]


def test_a_delete_with_the_triggers_disabled_is_named(sealed_month):
    target = sealed_month["events"][0][1]
    with owner_connection() as owner:
        owner.execute(f'ALTER TABLE "{sealed_month["partition"]}" DISABLE TRIGGER ALL')
        owner.execute("DELETE FROM audit_auditevent WHERE id = %s", [target.pk])
        owner.execute(f'ALTER TABLE "{sealed_month["partition"]}" ENABLE TRIGGER ALL')
    assert problems(audit_verify()) == [("deleted", sealed_month["base"], target.pk)]


def test_a_re_dated_event_is_named_moved(sealed_month):
    target = sealed_month["events"][0][0]
    with owner_connection() as owner:
        owner.execute("SET session_replication_role = replica")
        owner.execute(
            "UPDATE audit_auditevent SET occurred_at = occurred_at + interval '2 hours'"
            " WHERE id = %s",
            [target.pk],
        )
    report = audit_verify()
    assert problems(report) == [("moved", sealed_month["base"], target.pk)]


def test_a_truncated_partition_is_named_missing_hours(sealed_month):
    with owner_connection() as owner:
        with pytest.raises(psycopg.Error, match="append-only"):
            owner.execute(f'TRUNCATE "{sealed_month["partition"]}"')
        owner.execute("SET session_replication_role = replica")
        owner.execute(f'TRUNCATE "{sealed_month["partition"]}"')
    report = audit_verify()
    base = sealed_month["base"]
    assert problems(report) == [
        ("missing_hour", base, None),
        ("missing_hour", base + HOUR, None),
        ("missing_hour", base + 3 * HOUR, None),
    ]
    assert "truncated" in report.problems[0].detail


def test_a_detached_and_dropped_partition_is_named_missing_hours(sealed_month):
    partition = sealed_month["partition"]
    with owner_connection() as owner:
        owner.execute(f'ALTER TABLE audit_auditevent DETACH PARTITION "{partition}"')
        owner.execute(f'DROP TABLE "{partition}"')
    report = audit_verify()
    assert [p.kind for p in report.problems] == ["missing_hour"] * 3
    assert f"partition {partition} does not exist" in report.problems[0].detail
    assert report.counts == {"missing_hour": 3}


def test_a_forged_back_dated_insert_is_named(sealed_month):
    forged_at = sealed_month["base"] + 2 * HOUR + dt.timedelta(minutes=30)
    with owner_connection() as owner:
        forged = owner.execute(
            "INSERT INTO audit_auditevent (occurred_at, action) VALUES (%s, 'test.forged')"
            " RETURNING id",
            [forged_at],
        ).fetchone()[0]
    assert problems(audit_verify()) == [("inserted", sealed_month["base"] + 2 * HOUR, forged)]
    # Before the first sealed hour too.
    add_event(sealed_month["base"] - dt.timedelta(days=3), action="test.older")
    assert [p.kind for p in audit_verify().problems] == ["inserted", "inserted"]


def test_an_edited_digest_is_named(sealed_month):
    hour = sealed_month["base"] + 2 * HOUR
    with owner_connection() as owner:
        owner.execute("SET session_replication_role = replica")
        owner.execute(
            "UPDATE audit_auditdigest SET sealed_at = sealed_at WHERE hour_start = %s", [hour]
        )
        assert audit_verify().ok  # when it was sealed is not evidence
        with pytest.raises(psycopg.Error, match="append-only"):
            owner.execute("SET session_replication_role = origin")
            owner.execute("UPDATE audit_auditdigest SET event_count = 0")
        owner.execute("SET session_replication_role = replica")
        # Rewritten so that it is consistent in itself: the next link breaks instead.
        digest = AuditDigest.objects.get(hour_start=hour)
        forged_chain = chain_hash(digest.prev_hash, hour, 0, hashlib.sha256(b"x").digest())
        owner.execute(
            "UPDATE audit_auditdigest SET events_hash = sha256('x'), chain_hash = %s"
            " WHERE hour_start = %s",
            [forged_chain, hour],
        )
    report = audit_verify()
    assert ("chain_broken", hour + HOUR, None) in problems(report)
    assert ("digest_edited", hour, None) in problems(report)  # its events hash lies


def test_a_removed_digest_is_named(sealed_month):
    hour = sealed_month["base"] + HOUR
    with owner_connection() as owner:
        owner.execute("SET session_replication_role = replica")
        owner.execute("DELETE FROM audit_auditdigest WHERE hour_start = %s", [hour])
    assert problems(audit_verify()) == [
        ("chain_broken", hour + HOUR, None),
        ("missing_digest", hour, None),
    ]


def test_the_verify_command_exits_non_zero_and_reports(sealed_month, capsys):
    target = sealed_month["events"][1][1]
    with owner_connection() as owner:
        owner.execute("SET session_replication_role = replica")
        owner.execute("DELETE FROM audit_auditevent WHERE id = %s", [target.pk])
    with pytest.raises(CommandError) as caught:
        call_command("audit_verify")
    assert caught.value.returncode == 1
    out = capsys.readouterr().out
    assert "deleted: 1" in out
    assert f"event {target.pk}" in out
    with pytest.raises(CommandError):
        call_command("audit_verify", "--json")
    body = json.loads(capsys.readouterr().out)
    assert body["ok"] is False
    assert body["problems"][0]["kind"] == "deleted"
    assert body["problems"][0]["eventId"] == target.pk
    # A range without the tampered hour verifies clean (the chain is checked in full).
    call_command("audit_verify", "--from", (sealed_month["base"] + 2 * HOUR).isoformat())


@pytest.mark.django_db
def test_the_beat_task_seals():
    add_event(this_hour() - 3 * HOUR)
    result = tasks.seal_audit_digests()
    assert result["hours"] >= 2 and result["events"] == 1
