"""Auto-absence on the real database: batches, reruns, the delay, dry runs, the JSON log
lines, and the races (an organiser's mark at the same moment; two runs at once), each with
two connections and a barrier."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from events import selectors, services, tasks
from events.models import EventParticipant
from tests.events.conftest import completed, run_in_threads
from tests.support import app_connection

LONG_AGO = dt.timedelta(hours=3)


def attendance_of(ids) -> dict[int, str]:
    return dict(EventParticipant.objects.filter(pk__in=ids).values_list("pk", "attendance"))


def auto_absent_ids(event) -> list[int]:
    ids = []
    for audit in AuditEvent.objects.filter(
        action="events.attendance.auto_absent", target_id=str(event.pk)
    ):
        ids.extend(audit.data["participants"])
    return ids


def log_lines(caplog) -> list[dict]:
    return [
        json.loads(record.getMessage())
        for record in caplog.records
        if record.name == "events.auto_absence"
    ]


def wait_until_waiting_on_a_lock(pid: int, *, unless: threading.Event) -> bool:
    """True once the backend ``pid`` waits for a lock; False if ``unless`` is set first
    (the other side finished without waiting). Asked on a connection of its own: a
    transaction sees one snapshot of pg_stat_activity."""
    deadline = time.monotonic() + 20
    with app_connection() as watcher:
        while time.monotonic() < deadline:
            if unless.is_set():
                return False
            row = watcher.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]
            ).fetchone()
            if row and row[0] == "Lock":
                return True
            unless.wait(0.005)
    raise AssertionError("neither a lock wait nor the end came")


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


# --- the rules ------------------------------------------------------------------------


@pytest.mark.django_db
def test_marks_unknown_registered_in_batches_with_json_log_lines(
    make_event, register_many, people, register, caplog
):
    caplog.set_level(logging.INFO, logger="events.auto_absence")
    event = completed(make_event(), ago=LONG_AGO, by=people["admin"].user)
    unknown = register_many(event, 25)
    present = register_many(event, 1, attendance="present")
    organiser_left_unknown = register_many(event, 1, marked_by_organiser=True)
    waitlisted = register_many(event, 1, registration="waitlisted")
    not_backfilled = register_many(event, 1, attendance=None)

    result = services.auto_absence_run(batch_size=10)

    assert result["events"] == [event.pk]
    assert (result["marked"], result["batches"]) == (25, 3)
    assert set(attendance_of(unknown).values()) == {"absent"}
    assert attendance_of(present + organiser_left_unknown + waitlisted + not_backfilled) == {
        present[0]: "present",
        organiser_left_unknown[0]: "unknown",
        waitlisted[0]: "unknown",
        not_backfilled[0]: None,
    }
    batch_lines = [line for line in log_lines(caplog) if line["op"] == "events.auto_absence.batch"]
    assert [(line["event"], line["batch"], line["marked"]) for line in batch_lines] == [
        (event.pk, 1, 10),
        (event.pk, 2, 10),
        (event.pk, 3, 5),
    ]
    [summary] = [line for line in log_lines(caplog) if line["op"] == "events.auto_absence.summary"]
    assert (summary["event"], summary["marked"], summary["batches"]) == (event.pk, 25, 3)
    assert isinstance(summary["elapsedMs"], int)

    batches = AuditEvent.objects.filter(action="events.attendance.auto_absent").order_by("id")
    assert [len(audit.data["participants"]) for audit in batches] == [10, 10, 5]
    assert batches[0].data["from"] == "unknown" and batches[0].data["to"] == "absent"
    assert sorted(auto_absent_ids(event)) == sorted(unknown)
    [run] = AuditEvent.objects.filter(action="events.auto_absence.completed")
    assert run.data["marked"] == 25 and run.data["finished"] is True
    event.refresh_from_db()
    assert event.absences_marked_at is not None

    [entry] = selectors.participant_history(EventParticipant.objects.get(pk=unknown[17]))
    assert (entry["action"], entry["from"], entry["to"], entry["actor"]) == (
        "events.attendance.auto_absent",
        "unknown",
        "absent",
        "system",
    )
    # The counts the pages show agree.
    assert selectors.event_counts([event.pk])[event.pk]["absent"] == 25


@pytest.mark.django_db
def test_running_twice_marks_nothing_new(make_event, register_many, people):
    event = completed(make_event(), ago=LONG_AGO, by=people["admin"].user)
    register_many(event, 7)
    assert services.auto_absence_run(batch_size=3)["marked"] == 7
    # The scan skips finished events; asking for the event explicitly reruns it harmlessly.
    assert services.auto_absence_run(batch_size=3) == {
        "events": [],
        "marked": 0,
        "batches": 0,
        "skipped": [],
        "elapsedMs": pytest.approx(0, abs=1000),
    }
    again = services.auto_absence_run(event=event, batch_size=3)
    assert (again["events"], again["marked"], again["batches"]) == ([event.pk], 0, 0)
    assert len(auto_absent_ids(event)) == 7
    assert AuditEvent.objects.filter(action="events.attendance.auto_absent").count() == 3
    # One summary audit event per run of the event.
    assert AuditEvent.objects.filter(action="events.auto_absence.completed").count() == 2


@pytest.mark.django_db
def test_the_delay_is_respected(make_event, register_many, people, organisation):
    organisation.auto_absence_delay_minutes = 60
    organisation.save(update_fields=["auto_absence_delay_minutes"])
    now = timezone.now()
    admin = people["admin"].user
    recent = completed(make_event(), ago=dt.timedelta(minutes=59), by=admin)
    due = completed(make_event(), ago=dt.timedelta(minutes=61), by=admin)
    # Completed by the beat a minute ago, but it ended two hours ago: the end counts.
    beat_completed = make_event(
        starts_at=now - dt.timedelta(hours=3), ends_at=now - dt.timedelta(hours=2)
    )
    completed(beat_completed, ago=dt.timedelta(minutes=1), by=None)
    still_running = make_event(
        starts_at=now - dt.timedelta(hours=3), ends_at=now - dt.timedelta(hours=2)
    )
    for event in (recent, due, beat_completed, still_running):
        register_many(event, 2)

    assert services.auto_absence_due_at(recent) > now
    assert services.auto_absence_due_at(still_running) is None
    result = services.auto_absence_run(now=now)
    assert result["events"] == sorted([due.pk, beat_completed.pk]) and result["marked"] == 4
    asked = services.auto_absence_run(event=recent, now=now)
    assert asked["events"] == [] and asked["skipped"] == [recent.pk] and asked["marked"] == 0
    assert set(recent.participants.values_list("attendance", flat=True)) == {"unknown"}
    assert set(still_running.participants.values_list("attendance", flat=True)) == {"unknown"}
    later = services.auto_absence_run(now=now + dt.timedelta(minutes=2))
    assert later["events"] == [recent.pk] and later["marked"] == 2


@pytest.mark.django_db
def test_dry_run_changes_nothing_and_reports_would_mark(make_event, register_many, people, caplog):
    caplog.set_level(logging.INFO, logger="events.auto_absence")
    event = completed(make_event(), ago=LONG_AGO, by=people["admin"].user)
    ids = register_many(event, 5)
    result = services.auto_absence_run(event=event, dry_run=True)
    assert result["wouldMark"] == 5 and result["marked"] == 0
    assert set(attendance_of(ids).values()) == {"unknown"}
    assert not AuditEvent.objects.filter(action__startswith="events.").exists()
    assert not log_lines(caplog)
    event.refresh_from_db()
    assert event.absences_marked_at is None


@pytest.mark.django_db
def test_the_command_prints_what_it_would_mark_and_what_it_marked(
    make_event, register_many, people, capsys
):
    event = completed(make_event(), ago=LONG_AGO, by=people["admin"].user)
    register_many(event, 4)
    call_command("auto_absence", "run", "--event", str(event.pk), "--dry-run")
    out = capsys.readouterr().out
    assert f"Event {event.pk}: would mark 4" in out and "Dry run: would mark 4" in out
    assert set(event.participants.values_list("attendance", flat=True)) == {"unknown"}
    call_command("auto_absence", "run", "--batch-size", "3")
    out = capsys.readouterr().out
    assert "Marked 4 participant(s) absent in 1 event(s), 2 batch(es)" in out
    call_command("auto_absence", "run", "--event", str(event.pk), "--json")
    assert json.loads(capsys.readouterr().out)["marked"] == 0


@pytest.mark.django_db
def test_beat_tasks_complete_ended_events_then_mark_absences(
    make_event, register_many, organisation
):
    organisation.auto_absence_delay_minutes = 0
    organisation.save(update_fields=["auto_absence_delay_minutes"])
    now = timezone.now()
    event = make_event(starts_at=now - dt.timedelta(hours=2), ends_at=now - dt.timedelta(hours=1))
    register_many(event, 3)
    assert tasks.complete_due_events() == {"started": [], "completed": [event.pk]}
    assert tasks.run_auto_absence()["marked"] == 3


# --- the races ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_organisers_mark_in_progress_wins_over_the_batch(make_event, register_many, people):
    """The organiser's transaction holds the row when the batch comes: the batch must not
    overwrite the mark once it commits (without SKIP LOCKED and the guard it does)."""
    event = completed(make_event(), ago=LONG_AGO, by=people["admin"].user)
    target, *others = register_many(event, 3)
    participant = EventParticipant.objects.get(pk=target)
    barrier, auto_done, pids = threading.Barrier(2), threading.Event(), {}

    def organiser():
        with transaction.atomic():
            services.participant_mark(
                actor=people["admin"].user, participant=participant, status="excused"
            )
            barrier.wait(timeout=10)
            # Commit only once the run either waits for this row or has finished.
            wait_until_waiting_on_a_lock(pids["auto"], unless=auto_done)

    def auto_absence():
        pids["auto"] = backend_pid()
        barrier.wait(timeout=10)
        try:
            return services.auto_absence_run(event=event, batch_size=2)
        finally:
            auto_done.set()

    _, result = run_in_threads(organiser, auto_absence)

    assert attendance_of([target]) == {target: "excused"}
    assert set(attendance_of(others).values()) == {"absent"}
    assert result["marked"] == 2 and target not in auto_absent_ids(event)
    # The row it skipped was still pending when it looked: the event is not finished yet;
    # the next run finds nothing left and finishes it.
    event.refresh_from_db()
    assert event.absences_marked_at is None
    assert services.auto_absence_run(event=event)["marked"] == 0
    event.refresh_from_db()
    assert event.absences_marked_at is not None
    assert attendance_of([target]) == {target: "excused"}


@pytest.mark.django_db(transaction=True)
def test_a_mark_that_waits_for_the_batch_overwrites_its_absent(make_event, register_many, people):
    """The batch holds the row when the organiser marks: the mark waits, then wins."""
    event = completed(make_event(), ago=LONG_AGO, by=people["admin"].user)
    [target] = register_many(event, 1)
    participant = EventParticipant.objects.get(pk=target)
    barrier, mark_done, pids = threading.Barrier(2), threading.Event(), {}

    def auto_absence():
        with transaction.atomic():  # keeps the batch's row locks until the mark waits
            result = services.auto_absence_run(event=event)
            barrier.wait(timeout=10)
            assert wait_until_waiting_on_a_lock(pids["organiser"], unless=mark_done)
        return result

    def organiser():
        pids["organiser"] = backend_pid()
        barrier.wait(timeout=10)
        try:
            return services.participant_mark(
                actor=people["admin"].user, participant=participant, status="excused"
            )
        finally:
            mark_done.set()

    result, marked = run_in_threads(auto_absence, organiser)
    assert result["marked"] == 1 and marked.attendance == "excused"
    assert attendance_of([target]) == {target: "excused"}
    history = selectors.participant_history(participant)
    assert [(h["action"], h["from"], h["to"]) for h in history] == [
        ("events.attendance.auto_absent", "unknown", "absent"),
        ("events.attendance.marked", "absent", "excused"),
    ]


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_mark_each_participant_once(make_event, register_many, people):
    event = completed(make_event(), ago=LONG_AGO, by=people["admin"].user)
    ids = register_many(event, 60)
    barrier = threading.Barrier(2)

    def run():
        barrier.wait(timeout=10)
        return services.auto_absence_run(event=event, batch_size=5)

    first, second = run_in_threads(run, run)
    assert first["marked"] + second["marked"] == 60
    marked = auto_absent_ids(event)
    assert sorted(marked) == sorted(ids)  # each once
    assert set(attendance_of(ids).values()) == {"absent"}
    assert AuditEvent.objects.filter(action="events.auto_absence.completed").count() == 2


@pytest.mark.django_db
def test_beat_marks_started_events_in_progress_once(make_event):
    from audit.models import AuditEvent

    now = timezone.now()
    running = make_event(
        starts_at=now - dt.timedelta(minutes=5), ends_at=now + dt.timedelta(hours=1)
    )
    later = make_event(starts_at=now + dt.timedelta(hours=1), ends_at=now + dt.timedelta(hours=2))
    assert tasks.complete_due_events() == {"started": [running.pk], "completed": []}
    running.refresh_from_db()
    later.refresh_from_db()
    assert (running.status, later.status) == ("in_progress", "scheduled")
    started = AuditEvent.objects.get(action="events.events.started")
    assert started.data["events"] == [running.pk]
    assert tasks.complete_due_events() == {"started": [], "completed": []}
