"""Imports while the organisation keeps working: real concurrency on two (or three) database
connections, interleaved with barriers at a chosen point of the apply, never with sleeps.

The commit applies one source row per chunk here (``IMPORT_CHUNK_ROWS=1``) and stops after the
first data row (``ImportEngine.after_chunk``) until the test has done its other write.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import queue
import threading
import time
import zoneinfo

import pytest
from django.db import OperationalError, connection, connections

from attendance import services as attendance_services
from attendance.models import AttendanceRecord, Punch
from common.exceptions import Busy, as_application_error, render_application_error
from common.locking import LockSpace, lock_key
from imports import services
from imports.models import ImportBatch, ImportItem, ImportJob
from imports.staging import ImportEngine
from tests.imports.conftest import prepare, record_snapshot
from tests.support import data, error

pytestmark = pytest.mark.django_db(transaction=True)

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
DAY = dt.date(2026, 5, 4)
HEADER = "employee_no,name,work_date,first_in,last_out,status\n"
FIRST_DATA_ROW = 2  # the header is row 1
WAIT = 30  # seconds: a barrier or a thread that takes longer than this is a failure


def csv(*rows: str) -> str:
    return HEADER + "".join(f"{row}\n" for row in rows)


def at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(DAY, dt.time(hour, minute), SHANGHAI)


class InThread(threading.Thread):
    """Runs ``work`` on its own thread, hence its own database connection."""

    def __init__(self, work):
        super().__init__(daemon=True)
        self.work = work
        self.result = None
        self.error: BaseException | None = None

    def run(self):
        try:
            self.result = self.work()
        except BaseException as exc:
            self.error = exc
        finally:
            connection.close()

    def outcome(self):
        self.join(WAIT)
        assert not self.is_alive(), "the thread did not finish"
        if self.error is not None:
            raise self.error
        return self.result


@pytest.fixture(autouse=True)
def _one_row_per_chunk(settings):
    settings.IMPORT_CHUNK_ROWS = 1


@contextlib.contextmanager
def paused_after_first_row(monkeypatch):
    """The commit stops after applying the first data row: ``reached`` is passed when it
    has, and it goes on once the test passes ``resume``."""
    reached = threading.Barrier(2, timeout=WAIT)
    resume = threading.Barrier(2, timeout=WAIT)
    fired = []

    def hook(next_row: int) -> None:
        if not fired and next_row > FIRST_DATA_ROW:
            fired.append(next_row)
            reached.wait()
            resume.wait()

    monkeypatch.setattr(ImportEngine, "after_chunk", staticmethod(hook))
    yield reached, resume


def start_import(actor, organisation, text: str) -> InThread:
    thread = InThread(
        lambda: services.import_commit(
            actor=actor,
            organisation=organisation,
            options=services.ImportOptions(csv_text=text),
            commit_token=None,
            trusted_operator=True,
        )
    )
    thread.start()
    return thread


def day(employee) -> AttendanceRecord | None:
    return AttendanceRecord.objects.filter(employee=employee, work_date=DAY).first()


def item(batch_id: int, row: int) -> ImportItem:
    return ImportItem.objects.get(batch_id=batch_id, row=row)


@pytest.mark.parametrize("day_exists", [False, True], ids=["new-day", "known-day"])
def test_a_correction_approved_mid_import_survives_and_the_row_says_so(
    organisation, people, monkeypatch, day_exists
):
    employee, approver, other = people["employee"], people["approver"], people["stranger"]
    if day_exists:
        attendance_services.punch_create(
            actor=employee.user, employee=employee, kind="in", occurred_at=at(9, 30)
        )
    request = attendance_services.adjustment_request_create(
        actor=employee.user, employee=employee, work_date=DAY, reason="Sick", status="leave"
    )
    text = csv(
        f"{other.employee_no},O,{DAY},09:00,18:00,normal",
        f"{employee.employee_no},E,{DAY},09:00,18:00,normal",
    )
    with paused_after_first_row(monkeypatch) as (reached, resume):
        commit = start_import(people["importer"].user, organisation, text)
        reached.wait()
        attendance_services.adjustment_request_approve(actor=approver.user, request=request)
        resume.wait()
        answer = commit.outcome()

    corrected = day(employee)
    assert (corrected.status, corrected.source) == ("leave", "adjustment")
    row = item(answer["batchId"], FIRST_DATA_ROW + 1)
    assert (row.action, row.code) == ("skipped", "CHANGED_DURING_IMPORT")
    assert answer["changedDuringImport"] == 1
    assert answer["stats"]["skip"] == 1
    assert answer["stats"]["insert"] + answer["stats"]["update"] == 1
    assert ImportBatch.objects.get(pk=answer["batchId"]).stats["changedDuringImport"] == 1
    # The batch did not write that day: its rollback leaves the correction alone.
    kept = record_snapshot(organisation)
    services.import_rollback(
        actor=people["importer"].user, organisation=organisation, batch_id=answer["batchId"]
    )
    assert day(other) is None
    assert [r for r in record_snapshot(organisation) if r[1] == employee.pk] == [
        r for r in kept if r[1] == employee.pk
    ]


def test_a_punch_mid_import_lands_and_rollback_leaves_its_day(organisation, people, monkeypatch):
    employee, other = people["employee"], people["stranger"]
    text = csv(
        f"{other.employee_no},O,{DAY},09:00,18:00,normal",
        f"{employee.employee_no},E,{DAY},09:00,18:00,normal",
    )
    with paused_after_first_row(monkeypatch) as (reached, resume):
        commit = start_import(people["importer"].user, organisation, text)
        reached.wait()
        attendance_services.punch_create(
            actor=employee.user, employee=employee, kind="in", occurred_at=at(8, 55)
        )
        punched = record_snapshot(organisation)
        resume.wait()
        answer = commit.outcome()

    assert day(employee).source == "punch"
    assert item(answer["batchId"], FIRST_DATA_ROW + 1).code == "CHANGED_DURING_IMPORT"
    assert day(other).batch_id == answer["batchId"]
    result = services.import_rollback(
        actor=people["importer"].user, organisation=organisation, batch_id=answer["batchId"]
    )
    assert (result["deleted"], result["restored"]) == (1, 0)
    # Exactly as before the import for the imported day, exactly the punch's for the other.
    assert day(other) is None
    assert record_snapshot(organisation) == punched


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _wait_until_waiting_for_a_lock(pid: int) -> None:
    """Polls what PostgreSQL says of that backend: the observable state, not a guess."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
            row = cursor.fetchone()
        if row and row[0] == "Lock":
            return
        time.sleep(0.02)
    raise AssertionError("the punch never waited for the import's lock")


def test_a_punch_waiting_for_a_day_the_import_holds_does_not_deadlock_it(
    organisation, people, monkeypatch
):
    """The punch holds its employee and waits for the day the import wrote; the import's
    foreign-key checks at COMMIT need a key-share lock on that employee. With the punch's
    lock FOR UPDATE PostgreSQL killed the import; FOR NO KEY UPDATE lets both finish."""
    employee, other = people["employee"], people["stranger"]
    text = csv(
        f"{employee.employee_no},E,{DAY},09:00,18:00,normal",
        f"{other.employee_no},O,{DAY},09:00,18:00,normal",
    )
    pids: queue.Queue[int] = queue.Queue()

    def punch():
        pids.put(_backend_pid())
        return attendance_services.punch_create(
            actor=employee.user, employee=employee, kind="in", occurred_at=at(8, 55)
        )

    with paused_after_first_row(monkeypatch) as (reached, resume):
        commit = start_import(people["importer"].user, organisation, text)
        reached.wait()
        puncher = InThread(punch)
        puncher.start()
        _wait_until_waiting_for_a_lock(pids.get(timeout=WAIT))
        resume.wait()
        answer = commit.outcome()
        punch_result, record, created = puncher.outcome()

    assert created and Punch.objects.filter(pk=punch_result.pk).exists()
    assert ImportBatch.objects.filter(pk=answer["batchId"]).exists()
    assert answer["stats"]["insert"] == 2
    # The punch came after the import's day: the day is the punch's now, and rolling the
    # batch back would undo it, so the rollback refuses and changes nothing.
    assert (record.source, day(employee).source) == ("punch", "punch")
    before = record_snapshot(organisation)
    with pytest.raises(services.RollbackConflict) as refused:
        services.import_rollback(
            actor=people["importer"].user, organisation=organisation, batch_id=answer["batchId"]
        )
    assert refused.value.details["conflicts"][0]["employeeNo"] == employee.employee_no
    assert refused.value.details["laterBatches"] == []
    assert record_snapshot(organisation) == before


def test_a_punch_behind_a_long_import_gets_busy_with_retry_after(organisation, people, monkeypatch):
    employee = people["employee"]
    text = csv(f"{employee.employee_no},E,{DAY},09:00,18:00,normal")

    def punch():
        with connection.cursor() as cursor:  # the setting's 3 s, shortened for the test
            cursor.execute("SET lock_timeout = '200ms'")
        return attendance_services.punch_create(
            actor=employee.user, employee=employee, kind="in", occurred_at=at(8, 55)
        )

    with paused_after_first_row(monkeypatch) as (reached, resume):
        commit = start_import(people["importer"].user, organisation, text)
        reached.wait()
        puncher = InThread(punch)
        puncher.start()
        with pytest.raises(OperationalError) as waited:
            puncher.outcome()
        resume.wait()
        answer = commit.outcome()

    busy = as_application_error(waited.value)
    assert isinstance(busy, Busy) and busy.code == "BUSY"
    response = render_application_error(busy)
    assert response.status_code == 409 and int(response["Retry-After"]) >= 1
    assert not Punch.objects.filter(employee=employee).exists()
    assert day(employee).batch_id == answer["batchId"]


def test_rollback_during_a_commit_is_busy_and_then_both_roll_back_exactly_in_order(
    organisation, people, monkeypatch
):
    employee, other = people["employee"], people["stranger"]
    before = record_snapshot(organisation)
    first = services.import_commit(
        actor=people["importer"].user,
        organisation=organisation,
        options=services.ImportOptions(
            csv_text=csv(
                f"{other.employee_no},O,{DAY},09:00,18:00,normal",
                f"{employee.employee_no},E,{DAY},09:00,18:00,normal",
            )
        ),
        commit_token=None,
        trusted_operator=True,
    )
    after_first = record_snapshot(organisation)
    later = csv(
        f"{other.employee_no},O,{DAY},09:20,18:00,late",
        f"{employee.employee_no},E,{DAY},09:30,18:00,late",
    )
    with paused_after_first_row(monkeypatch) as (reached, resume):
        commit = start_import(people["importer"].user, organisation, later)
        reached.wait()
        with connection.cursor() as cursor:  # the setting's 3 s, shortened for the test
            cursor.execute("SET lock_timeout = '200ms'")
        try:
            with pytest.raises(Busy):
                services.import_rollback(
                    actor=people["importer"].user,
                    organisation=organisation,
                    batch_id=first["batchId"],
                )
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
            resume.wait()
        second = commit.outcome()

    assert ImportBatch.objects.get(pk=first["batchId"]).status == "committed"
    assert second["stats"]["update"] == 2
    with pytest.raises(services.RollbackConflict) as refused:
        services.import_rollback(
            actor=people["importer"].user, organisation=organisation, batch_id=first["batchId"]
        )
    assert [b["id"] for b in refused.value.details["laterBatches"]] == [second["batchId"]]
    assert refused.value.details["laterBatches"][0]["url"].endswith(f"/{second['batchId']}/")
    services.import_rollback(
        actor=people["importer"].user, organisation=organisation, batch_id=second["batchId"]
    )
    assert record_snapshot(organisation) == after_first
    services.import_rollback(
        actor=people["importer"].user, organisation=organisation, batch_id=first["batchId"]
    )
    assert record_snapshot(organisation) == before


def test_two_commit_async_with_one_key_at_once_make_one_job_both_get(organisation, people):
    importer = people["importer"].user
    text = csv(f"{people['employee'].employee_no},E,{DAY},09:00,18:00,normal")
    for round_number in range(4):
        start = threading.Barrier(2, timeout=WAIT)

        def queue_it(start=start, key=f"twice-{round_number}"):
            token = services.commit_token_issue(actor=importer, organisation=organisation)[0]
            start.wait()
            return services.import_commit_async(
                actor=importer,
                organisation=organisation,
                options=services.ImportOptions(csv_text=text, idempotency_key=key),
                commit_token=token,
            )

        threads = [InThread(queue_it), InThread(queue_it)]
        for thread in threads:
            thread.start()
        answers = [thread.outcome() for thread in threads]
        jobs = ImportJob.objects.filter(
            organisation=organisation, idempotencykey__key=f"twice-{round_number}"
        )
        assert jobs.count() == 1
        assert {answer.job.pk for answer in answers} == {jobs.get().pk}
        assert sorted(answer.idempotent for answer in answers) == [False, True]


@contextlib.contextmanager
def import_running(organisation):
    """Another connection holds the organisation's import lock, as a running job does."""
    holder = connections.create_connection("default")
    try:
        with holder.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", lock_key(LockSpace.IMPORT, organisation.pk)
            )
            yield
            cursor.execute("ROLLBACK")
    finally:
        holder.close()


def test_a_web_commit_or_rollback_while_an_import_runs_is_busy_at_once(organisation, people, api):
    client = api(people["importer"])
    text = csv(f"{people['employee'].employee_no},E,{DAY},09:00,18:00,normal")
    first = data(
        client.post(
            "/api/attendance/import/commit",
            {"csvText": text, "commitToken": prepare(client)},
            format="json",
        )
    )
    with import_running(organisation):
        started = time.monotonic()
        response = client.post(
            "/api/attendance/import/commit",
            {"csvText": text, "commitToken": prepare(client)},
            format="json",
        )
        body = error(response, 409, "BUSY")
        assert body["details"]["retryAfterMs"] == 5000 and response["Retry-After"] == "5"
        assert "Another import or rollback" in body["message"]
        rollback = client.post(f"/api/attendance/import/rollback/{first['batchId']}")
        error(rollback, 409, "BUSY")
        # Told at once: no wait for the lock_timeout, let alone for the other import.
        assert time.monotonic() - started < 2
    assert ImportBatch.objects.count() == 1
    # Once it has finished, the same requests go through.
    data(client.post(f"/api/attendance/import/rollback/{first['batchId']}"))
