"""Rollback at any age: on a database whose statistics were gathered before the batch was
committed (as autovacuum leaves it), the rollback's statements must still find the batch's
days through its items and each day by its unique (employee, date), never drive a loop from
the records' batch index, which the planner believes returns one row."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from imports import services
from imports.models import ImportBatch
from imports.staging import apply
from tests.support import owner_connection

pytestmark = pytest.mark.django_db(transaction=True)

HEADER = "employee_no,name,work_date,first_in,last_out,status\n"
TABLES = ("attendance_attendancerecord", "imports_importitem", "attendance_employee")


def _import(organisation, people: int, days: int, first_day: int) -> dict:
    rows = "".join(
        f"P{person:04d},P{person},2026-0{1 + (first_day + day) // 28}-"
        f"{1 + (first_day + day) % 28:02d},09:00,18:00,normal\n"
        for person in range(people)
        for day in range(days)
    )
    return services.import_commit(
        actor=None,
        organisation=organisation,
        options=services.ImportOptions(csv_text=HEADER + rows, create_missing_employees=True),
        commit_token=None,
        trusted_operator=True,
    )


def _plan(sql: str, params: dict) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        return json.dumps(cursor.fetchone()[0])


def _as_owner(*statements: str) -> None:
    # Table settings and statistics are the owner's to change (the application's role owns
    # no table); the batches are committed, so the owner's session sees them.
    with owner_connection() as owner:
        for statement in statements:
            owner.execute(statement)


@pytest.fixture
def aged(transactional_db, organisation):
    """Days of an older batch, analysed; autovacuum off on the tables so nothing analyses
    them again behind the test's back; then the batch under test, unknown to statistics."""
    _as_owner(*(f"ALTER TABLE {table} SET (autovacuum_enabled = false)" for table in TABLES))
    try:
        _import(organisation, people=60, days=50, first_day=0)
        _as_owner(*(f"ANALYZE {table}" for table in TABLES))
        answer = _import(organisation, people=40, days=50, first_day=56)
        yield ImportBatch.objects.get(pk=answer["batchId"])
    finally:
        _as_owner(*(f"ALTER TABLE {table} RESET (autovacuum_enabled)" for table in TABLES))


def test_rollback_finds_each_day_by_its_key_whatever_the_statistics_say(aged, organisation):
    params = {"batch": aged.pk, "applied_at": aged.applied_at}
    assert aged.stats["insert"] == 2000
    for sql in (apply.ROLLBACK_DELETE_INSERTED_SQL, apply.ROLLBACK_RESTORE_UPDATED_SQL):
        plan = _plan(sql, params)
        assert "record_employee_day" in plan  # each day by its unique (employee, date)
        assert "attendance_attendancerecord_batch_id" not in plan
    # The same statement with an indexable batch condition, as it was: on these statistics
    # the planner takes the records' batch index, the plan that went quadratic.
    indexable = apply.ROLLBACK_DELETE_INSERTED_SQL.replace(
        apply._STILL_THE_BATCHS, "a.batch_id = %(batch)s AND a.updated_at = %(applied_at)s"
    )
    assert "attendance_attendancerecord_batch_id" in _plan(indexable, params)
    result = services.import_rollback(actor=None, organisation=organisation, batch_id=aged.pk)
    assert (result["deleted"], result["restored"]) == (2000, 0)
