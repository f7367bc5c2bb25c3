"""Database errors map to what happened, checked with real errors from a real PostgreSQL.

Every error here is produced by the database itself: a deadlock between two connections, a
lock timeout and a NOWAIT against a row another connection holds, a serialisation failure
of two REPEATABLE READ transactions, NOT NULL, CHECK and unique violations, a missing
table, a port nothing listens on and a connection the server terminated. Concurrency is
sequenced with barriers and events, never with sleeps: each thread has its own Django
connection, and ``transaction=True`` lets the threads see the rows the test committed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from django.conf import settings
from django.db import (
    Error,
    IntegrityError,
    OperationalError,
    ProgrammingError,
    connection,
    connections,
    transaction,
)
from django.db.models import F
from django.utils import timezone

from attendance import selectors, services
from attendance.models import AdjustmentRequest, Employee, Organisation
from common import db_errors
from common.db_errors import classify, is_retryable, retry_transient
from common.exceptions import (
    Busy,
    DatabaseNotReady,
    RequestStateConflict,
    envelope_exception_handler,
    render_application_error,
)
from tests.support import client_for

# Generous bounds: a wait only ends by timeout when the test is already failing.
WAIT = 30
# Keep a connection-start lock_timeout (if settings set one) from turning the deadlocks
# below into lock timeouts: the deadlock detector must fire first (deadlock_timeout, 1 s).
WAIT_FOR_LOCKS = "SET LOCAL lock_timeout = '30s'"

pytestmark = pytest.mark.django_db
concurrent = pytest.mark.django_db(transaction=True)


# --- threads with their own connections ------------------------------------------------


def _closing_connections(fn):
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            # The thread's connection would otherwise outlive the test and keep the test
            # database from being flushed or dropped.
            connections.close_all()

    return run


@contextlib.contextmanager
def threads(count: int = 2):
    """``run(fn, *args)`` → a future of ``fn`` running on a thread with its own connection."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        yield lambda fn, *args, **kwargs: pool.submit(_closing_connections(fn), *args, **kwargs)


def _execute(sql: str, params=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _bump(pk: int) -> None:
    Organisation.objects.filter(pk=pk).update(audit_retention_days=F("audit_retention_days") + 1)


def _retention_days(pk: int) -> int:
    return Organisation.objects.values_list("audit_retention_days", flat=True).get(pk=pk)


def _bump_in_order(first: int, second: int, both_hold_their_first: threading.Barrier) -> None:
    with transaction.atomic():
        _execute(WAIT_FOR_LOCKS)
        _bump(first)
        both_hold_their_first.wait(timeout=WAIT)
        _bump(second)


def _hold_row_lock(pk: int, locked: threading.Barrier, release: threading.Event) -> None:
    with transaction.atomic():
        list(Organisation.objects.select_for_update().filter(pk=pk))
        locked.wait(timeout=WAIT)
        release.wait(timeout=WAIT)


# --- real errors ------------------------------------------------------------------------


def _two_organisations() -> tuple[int, int]:
    return tuple(
        Organisation.objects.create(name=f"Deadlock {n}", slug=f"deadlock-{n}").pk for n in (1, 2)
    )


def real_deadlock() -> Error:
    """Two transactions each holding the row the other one wants next."""
    a, b = _two_organisations()
    barrier = threading.Barrier(2)
    with threads() as run:
        futures = [run(_bump_in_order, a, b, barrier), run(_bump_in_order, b, a, barrier)]
        outcomes = [future.exception(timeout=WAIT) for future in futures]
    failures = [outcome for outcome in outcomes if outcome is not None]
    assert len(failures) == 1, outcomes  # the detector aborts one victim; the other commits
    return failures[0]


def real_lock_timeout(*, nowait: bool = False) -> Error:
    """A row another connection holds: past ``lock_timeout``, or at once with NOWAIT."""
    pk = Organisation.objects.create(name="Locked", slug="locked").pk
    locked, release = threading.Barrier(2), threading.Event()
    with threads() as run:
        holder = run(_hold_row_lock, pk, locked, release)
        locked.wait(timeout=WAIT)
        try:
            with pytest.raises(OperationalError) as caught, transaction.atomic():
                _execute("SET LOCAL lock_timeout = '100ms'")
                list(Organisation.objects.select_for_update(nowait=nowait).filter(pk=pk))
        finally:
            release.set()
        holder.result(timeout=WAIT)
    return caught.value


def real_serialization_failure() -> Error:
    """A REPEATABLE READ transaction updating a row another transaction changed and
    committed after this one's snapshot."""
    pk = Organisation.objects.create(name="Raced", slug="raced").pk
    with (
        threads() as run,
        pytest.raises(OperationalError) as caught,
        transaction.atomic(),
    ):
        _execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        Organisation.objects.get(pk=pk)  # takes the snapshot
        run(_bump, pk).result(timeout=WAIT)
        _bump(pk)
    return caught.value


def real_not_null_violation() -> Error:
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        Organisation.objects.create(name=None, slug="no-name")
    return caught.value


def real_check_violation() -> Error:
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        Organisation.objects.create(name="Lenient", slug="lenient", grace_minutes=500)
    return caught.value


def _pending_request(employee: Employee) -> AdjustmentRequest:
    return AdjustmentRequest.objects.create(
        organisation_id=employee.organisation_id,
        employee=employee,
        work_date=dt.date(2024, 3, 4),
        requested_status="leave",
        reason="ill",
        created_by_id=employee.user_id,
    )


def real_registered_unique_violation(employee: Employee) -> Error:
    _pending_request(employee)
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        _pending_request(employee)
    return caught.value


def real_unregistered_unique_violation(employee: Employee) -> Error:
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        Employee.objects.create(
            organisation_id=employee.organisation_id, employee_no=employee.employee_no, name="Twin"
        )
    return caught.value


def real_undefined_table() -> Error:
    with pytest.raises(ProgrammingError) as caught, transaction.atomic():
        _execute("SELECT 1 FROM attendance_not_migrated_yet")
    return caught.value


def real_undefined_function() -> Error:
    """Its message also says "does not exist", but it is a bug, not a missing migration."""
    with pytest.raises(ProgrammingError) as caught, transaction.atomic():
        _execute("SELECT attendance_no_such_function()")
    return caught.value


def _port_nobody_listens_on() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def real_refused_connection() -> Error:
    settings_dict = {
        **connection.settings_dict,
        "HOST": "127.0.0.1",
        "PORT": str(_port_nobody_listens_on()),
    }
    unreachable = type(connections["default"])(settings_dict, alias="unreachable")
    try:
        with pytest.raises(OperationalError) as caught:
            unreachable.ensure_connection()
    finally:
        unreachable.close()
    return caught.value


def real_terminated_connections() -> tuple[Error, Error]:
    """A session the server terminated (SQLSTATE 57P01 or the socket simply gone), then
    the same connection used again once it is closed."""
    doomed = type(connections["default"])({**connection.settings_dict}, alias="doomed")
    try:
        doomed.ensure_connection()
        pid = doomed.connection.info.backend_pid
        # With a timeout, it returns once the backend has gone.
        _execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
        errors = []
        for _ in range(2):
            with pytest.raises(Error) as caught, doomed.cursor() as cursor:
                cursor.execute("SELECT 1")
            errors.append(caught.value)
    finally:
        doomed.close()
    return errors[0], errors[1]


# --- what each one maps to -------------------------------------------------------------


def _records_raising(monkeypatch, exc: BaseException) -> None:
    def failing(**kwargs):
        raise exc

    monkeypatch.setattr(selectors, "record_list", failing)


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["ok"] is False
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    text = response.content.decode()
    assert "Traceback" not in text
    assert 'File "' not in text
    assert "SELECT" not in text and "psycopg" not in text
    return body["error"]


def assert_busy(exc: BaseException, reason: str, retry_after: int, people, monkeypatch) -> None:
    error = classify(exc)
    assert isinstance(error, Busy)
    assert (error.code, error.status_code) == ("BUSY", 409)
    assert error.details == {"retryAfterMs": retry_after * 1000, "reason": reason}
    response = render_application_error(error)
    assert response.status_code == 409
    assert response["Retry-After"] == str(retry_after)
    assert response.data["error"]["details"]["retryAfterMs"] == retry_after * 1000

    # The same error through the API: BUSY, never DB_NOT_READY.
    _records_raising(monkeypatch, exc)
    response = client_for(people["employee"]).get("/api/attendance/records")
    body = assert_envelope(response, 409, "BUSY")
    assert response["Retry-After"] == str(retry_after)
    assert body["details"]["retryAfterMs"] == retry_after * 1000


@concurrent
def test_a_deadlock_is_busy_and_retryable(people, monkeypatch):
    exc = real_deadlock()
    assert isinstance(exc, OperationalError)
    assert db_errors.sqlstate_of(exc) == db_errors.DEADLOCK_DETECTED
    assert is_retryable(exc)
    assert_busy(exc, "deadlock", 1, people, monkeypatch)
    assert "deadlock" in classify(exc).message


@concurrent
def test_a_serialization_failure_is_busy_and_retryable(people, monkeypatch):
    exc = real_serialization_failure()
    assert db_errors.sqlstate_of(exc) == db_errors.SERIALIZATION_FAILURE
    assert is_retryable(exc)
    assert_busy(exc, "serialization_failure", 1, people, monkeypatch)


@concurrent
@pytest.mark.parametrize("nowait", [False, True], ids=["lock_timeout", "nowait"])
def test_a_lock_not_had_in_time_is_busy_but_not_retried(people, monkeypatch, nowait):
    exc = real_lock_timeout(nowait=nowait)
    assert db_errors.sqlstate_of(exc) == db_errors.LOCK_NOT_AVAILABLE
    assert not is_retryable(exc)
    assert_busy(exc, "lock_timeout", 2, people, monkeypatch)


def test_a_registered_constraint_answers_its_own_error(people, monkeypatch):
    exc = real_registered_unique_violation(people["employee"])
    assert db_errors.constraint_name_of(exc) == "one_pending_request_per_day"
    assert "one_pending_request_per_day" in db_errors.registered_constraints()
    error = classify(exc)
    assert isinstance(error, RequestStateConflict)
    assert error.message == "A pending request for this day already exists."
    _records_raising(monkeypatch, exc)
    response = client_for(people["employee"]).get("/api/attendance/records")
    assert_envelope(response, 409, "REQUEST_STATE_CONFLICT")


@pytest.mark.parametrize(
    ("make_error", "constraint"),
    [
        (lambda employee: real_not_null_violation(), None),
        (lambda employee: real_check_violation(), "org_grace_max_4h"),
        (real_unregistered_unique_violation, "employee_no_unique"),
    ],
    ids=["not_null", "check", "unregistered_unique"],
)
def test_other_integrity_errors_are_internal_errors_logged_with_the_request_id(
    people, monkeypatch, caplog, make_error, constraint
):
    exc = make_error(people["employee"])
    assert db_errors.constraint_name_of(exc) == constraint
    assert classify(exc) is None
    assert not is_retryable(exc)

    _records_raising(monkeypatch, exc)
    with caplog.at_level(logging.ERROR):
        response = client_for(people["employee"]).get(
            "/api/attendance/records", HTTP_X_REQUEST_ID="trace-dberr-1"
        )
    error = assert_envelope(response, 500, "INTERNAL_ERROR")
    assert error == {
        "code": "INTERNAL_ERROR",
        "message": "An internal error occurred.",
        "details": {},
    }
    assert "violates" not in response.content.decode()
    assert response["X-Request-ID"] == "trace-dberr-1"
    # One line for the failure, and it names the request (no second, anonymous
    # "Internal Server Error" line from Django after the request id is unbound).
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.name == "common.exceptions"
    assert record.request_id == "trace-dberr-1"
    assert record.exc_info[1] is exc
    line = logging.Formatter(settings.LOGGING["formatters"]["text"]["format"]).format(record)
    assert "[trace-dberr-1]" in line
    assert "IntegrityError" in line  # the trace is in the log, where it belongs


def test_the_handler_answers_internal_error_outside_a_request_too():
    response = envelope_exception_handler(real_not_null_violation(), {"view": None})
    assert response.status_code == 500
    assert response.data["error"]["code"] == "INTERNAL_ERROR"


def test_a_missing_table_is_not_migrated(people, monkeypatch):
    exc = real_undefined_table()
    assert db_errors.sqlstate_of(exc) == db_errors.UNDEFINED_TABLE
    error = classify(exc)
    assert isinstance(error, DatabaseNotReady)
    assert error.message == "The database schema is not migrated."
    _records_raising(monkeypatch, exc)
    response = client_for(people["employee"]).get("/api/attendance/records")
    assert_envelope(response, 503, "DB_NOT_READY")


def test_does_not_exist_in_a_message_is_not_enough(people, monkeypatch):
    exc = real_undefined_function()
    assert "does not exist" in str(exc)
    assert classify(exc) is None
    _records_raising(monkeypatch, exc)
    client = client_for(people["employee"])
    assert_envelope(client.get("/api/attendance/records"), 500, "INTERNAL_ERROR")


def test_an_unreachable_database_is_not_ready(people, monkeypatch):
    exc = real_refused_connection()
    assert db_errors.sqlstate_of(exc) is None
    error = classify(exc)
    assert isinstance(error, DatabaseNotReady)
    assert (error.code, error.status_code) == ("DB_NOT_READY", 503)
    assert not is_retryable(exc)
    _records_raising(monkeypatch, exc)
    response = client_for(people["employee"]).get("/api/attendance/records")
    error = assert_envelope(response, 503, "DB_NOT_READY")
    assert "Connection refused" not in error["message"]
    assert "Retry-After" not in response


def test_a_terminated_and_then_closed_connection_is_not_ready():
    terminated, closed = real_terminated_connections()
    assert db_errors.sqlstate_of(terminated) in (None, "57P01")
    for exc in (terminated, closed):
        assert isinstance(classify(exc), DatabaseNotReady), exc
        assert not is_retryable(exc)


def test_exceptions_that_are_not_database_errors_are_left_alone():
    assert classify(RuntimeError("boom")) is None
    assert classify(ValueError("does not exist")) is None
    assert not is_retryable(RuntimeError("deadlock"))


def test_busy_raised_by_a_service_carries_its_retry_hint():
    default = render_application_error(Busy())
    assert (default.status_code, default["Retry-After"]) == (409, "1")
    assert default.data["error"] == {
        "code": "BUSY",
        "message": "Another change to the same data was in progress; retry.",
        "details": {"retryAfterMs": 1000},
    }
    # Retry-After is whole seconds: a fraction rounds up, never down to "0".
    assert render_application_error(Busy("Held.", retry_after_seconds=0.2))["Retry-After"] == "1"
    assert Busy(retry_after_seconds=2.5).details == {"retryAfterMs": 3000}


def test_a_constraint_cannot_be_claimed_twice():
    with pytest.raises(ValueError, match="already has an error registered"):
        db_errors.register_constraint("one_pending_request_per_day", lambda: Busy())


# --- retry_transient --------------------------------------------------------------------


@concurrent
def test_both_sides_of_a_deadlock_succeed_when_retried():
    a, b = _two_organisations()
    barrier = threading.Barrier(2)
    attempts: dict[str, int] = {"a first": 0, "b first": 0}

    @retry_transient()
    @transaction.atomic
    def bump_both(name: str, first: int, second: int) -> str:
        attempts[name] += 1
        _execute(WAIT_FOR_LOCKS)
        _bump(first)
        if attempts[name] == 1:  # the other side has moved on by a retry
            barrier.wait(timeout=WAIT)
        _bump(second)
        return name

    with threads() as run:
        futures = [run(bump_both, "a first", a, b), run(bump_both, "b first", b, a)]
        assert sorted(future.result(timeout=WAIT) for future in futures) == ["a first", "b first"]
    assert sorted(attempts.values()) == [1, 2]  # the deadlock's victim ran again
    assert _retention_days(a) == _retention_days(b) == 365 + 2


def _bump_after_rivals(pk: int, rivals: int, calls: list[int]) -> None:
    """One REPEATABLE READ transaction; its first ``rivals`` runs lose to a commit made
    between their snapshot and their update."""
    calls.append(len(calls) + 1)
    _execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    Organisation.objects.get(pk=pk)
    if len(calls) <= rivals:
        with threads() as run:
            run(_bump, pk).result(timeout=WAIT)
    _bump(pk)


@concurrent
def test_a_serialization_failure_is_retried_until_it_succeeds():
    pk = Organisation.objects.create(name="Retried", slug="retried").pk
    calls: list[int] = []
    bump = retry_transient(attempts=3)(transaction.atomic(_bump_after_rivals))
    bump(pk, rivals=2, calls=calls)
    assert calls == [1, 2, 3]
    assert _retention_days(pk) == 365 + 2 + 1  # two rivals, then ours, exactly once


@concurrent
def test_it_gives_up_after_the_last_attempt():
    pk = Organisation.objects.create(name="Hopeless", slug="hopeless").pk
    calls: list[int] = []
    bump = retry_transient(attempts=3)(transaction.atomic(_bump_after_rivals))
    with pytest.raises(OperationalError) as caught:
        bump(pk, rivals=99, calls=calls)
    assert calls == [1, 2, 3]
    assert isinstance(classify(caught.value), Busy)
    assert _retention_days(pk) == 365 + 3  # only the rivals' commits


@concurrent
def test_inside_an_outer_atomic_block_it_runs_once():
    pk = Organisation.objects.create(name="Nested", slug="nested").pk
    calls: list[int] = []

    @retry_transient(attempts=3)
    @transaction.atomic
    def bump_nested() -> None:
        calls.append(1)
        Organisation.objects.get(pk=pk)
        with threads() as run:
            run(_bump, pk).result(timeout=WAIT)
        _bump(pk)

    with pytest.raises(OperationalError) as caught, transaction.atomic():
        # The caller's transaction owns the snapshot; a retry inside it would fail again.
        _execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        bump_nested()
    assert is_retryable(caught.value)
    assert calls == [1]


@concurrent
def test_a_lock_timeout_is_not_retried():
    pk = Organisation.objects.create(name="Held", slug="held").pk
    calls: list[int] = []

    @retry_transient(attempts=3)
    @transaction.atomic
    def lock_row() -> None:
        calls.append(1)
        _execute("SET LOCAL lock_timeout = '100ms'")
        list(Organisation.objects.select_for_update().filter(pk=pk))

    locked, release = threading.Barrier(2), threading.Event()
    with threads() as run:
        holder = run(_hold_row_lock, pk, locked, release)
        locked.wait(timeout=WAIT)
        try:
            with pytest.raises(OperationalError) as caught:
                lock_row()
        finally:
            release.set()
        holder.result(timeout=WAIT)
    assert db_errors.sqlstate_of(caught.value) == db_errors.LOCK_NOT_AVAILABLE
    assert calls == [1]


@concurrent
def test_an_integrity_error_is_not_retried():
    calls: list[int] = []

    @retry_transient(attempts=3)
    @transaction.atomic
    def create_nameless() -> None:
        calls.append(1)
        Organisation.objects.create(name=None, slug="nameless")

    with pytest.raises(IntegrityError):
        create_nameless()
    assert calls == [1]


def test_at_least_one_attempt():
    with pytest.raises(ValueError):
        retry_transient(attempts=0)


# --- adjustment_request_create ------------------------------------------------------------


def _yesterday(employee: Employee) -> dt.date:
    return timezone.localtime(timezone.now(), employee.organisation.tz).date() - dt.timedelta(
        days=1
    )


def test_a_second_pending_request_is_still_a_state_conflict(people):
    employee = people["employee"]
    arguments = {"employee": employee, "work_date": _yesterday(employee), "reason": "ill"}
    services.adjustment_request_create(actor=employee.user, status="leave", **arguments)
    with pytest.raises(RequestStateConflict) as caught:
        services.adjustment_request_create(actor=employee.user, status="off", **arguments)
    assert isinstance(caught.value.__cause__, IntegrityError)
    assert AdjustmentRequest.objects.filter(employee=employee).count() == 1


def test_another_integrity_error_of_a_request_is_not_a_state_conflict(people):
    employee = people["employee"]
    # No actor: created_by is NOT NULL, which no validation of the service stands for.
    with pytest.raises(IntegrityError) as caught:
        services.adjustment_request_create(
            actor=None,
            employee=employee,
            work_date=_yesterday(employee),
            reason="ill",
            status="leave",
        )
    assert db_errors.sqlstate_of(caught.value) == "23502"
    assert classify(caught.value) is None
    assert not AdjustmentRequest.objects.exists()


def test_errors_of_the_raw_driver_connection_map_the_same(people):
    """Code that works on psycopg's own connection (COPY) gets psycopg's exceptions, unwrapped."""
    with pytest.raises(psycopg.errors.UndefinedTable) as caught, transaction.atomic():
        connection.connection.execute("SELECT 1 FROM attendance_not_migrated_yet")
    assert isinstance(classify(caught.value), DatabaseNotReady)

    _pending_request(people["employee"])
    with pytest.raises(psycopg.errors.UniqueViolation) as caught, transaction.atomic():
        connection.connection.execute(
            "INSERT INTO attendance_adjustmentrequest (organisation_id, employee_id, work_date,"
            " requested_status, reason, state, created_by_id, created_at, decision_comment)"
            " SELECT organisation_id, employee_id, work_date, requested_status, reason, state,"
            " created_by_id, created_at, decision_comment FROM attendance_adjustmentrequest"
        )
    assert db_errors.constraint_name_of(caught.value) == "one_pending_request_per_day"
    assert isinstance(classify(caught.value), RequestStateConflict)
