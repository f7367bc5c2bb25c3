"""The attendance backfill (migration 0002) and ``events_backfill``: participants written
before the migration (attendance NULL) are counted by ``--check`` (exit 1) and fixed by
migrating forward; the migration executor moves the events app back and forth."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from common import db_roles
from events.models import EventParticipant

pytestmark = pytest.mark.django_db(transaction=True)


def migrate(targets) -> None:
    # Migrations run as the owner, as in production (the application's role owns nothing).
    with db_roles.as_owner():
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(targets)


def latest_targets() -> list[tuple[str, str]]:
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


def check(capsys) -> tuple[int, str]:
    try:
        call_command("events_backfill", "--check")
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().out


def insert_without_attendance(event, employees, registration="registered") -> None:
    with connection.cursor() as cursor:
        for employee in employees:
            cursor.execute(
                "INSERT INTO events_eventparticipant (event_id, employee_id, registration,"
                " attendance, marked_by_organiser, notes, created_at)"
                " VALUES (%s, %s, %s, NULL, false, '', now())",
                [event.pk, employee.pk, registration],
            )


def test_check_counts_rows_from_before_the_migration_and_migrating_fixes_them(
    make_event, people, capsys
):
    event = make_event()
    latest = latest_targets()
    try:
        migrate([("events", "0001_initial")])
        insert_without_attendance(event, [people["employee"], people["stranger"]])
        insert_without_attendance(event, [people["approver"]], registration="waitlisted")

        code, out = check(capsys)
        assert code == 1 and out.startswith("2 registered participant(s)")

        migrate([("events", "0002_backfill_unknown_attendance")])
        code, out = check(capsys)
        assert code == 0 and out.startswith("0 registered participant(s)")
        assert dict(
            EventParticipant.objects.filter(event=event).values_list("registration", "attendance")
        ) == {"registered": "unknown", "waitlisted": None}
    finally:
        migrate(latest)


def test_the_command_without_check_runs_the_same_backfill(make_event, people, capsys):
    event = make_event()
    insert_without_attendance(event, [people["employee"], people["stranger"], people["admin"]])
    assert check(capsys)[0] == 1
    call_command("events_backfill", "--batch-size", "2")
    assert "Set 'unknown' on 3 participant(s)." in capsys.readouterr().out
    assert check(capsys)[0] == 0
    assert set(event.participants.values_list("attendance", flat=True)) == {"unknown"}
