"""Preview, commit (tokens, idempotency keys, modes, the sync limit) and exact rollback,
through the API on the real database."""

from __future__ import annotations

import datetime as dt
import threading
import zoneinfo

import pytest
from django.db import connection, connections

from attendance import services as attendance_services
from attendance.models import AttendanceRecord, Employee
from audit.models import AuditEvent
from common.locking import LockSpace, lock_key
from imports.models import CommitToken, ImportBatch, ImportItem
from tests.imports.conftest import IMPORT_API, commit, day_record, prepare, preview, record_snapshot
from tests.support import data, error

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
HEADER = "employee_no,name,work_date,first_in,last_out,status\n"


def csv(*rows: str) -> str:
    return HEADER + "".join(f"{row}\n" for row in rows)


@pytest.fixture
def staff(organisation):
    return [
        Employee.objects.create(organisation=organisation, employee_no=f"00{n}", name=f"S{n}")
        for n in range(1, 4)
    ]


def test_preview_reports_every_action_and_writes_nothing(organisation, staff, client):
    commit(client, {"csvText": csv("001,S1,2026-05-04,09:00,18:00,normal")})
    before = record_snapshot(organisation)
    body = preview(
        client,
        {
            "csvText": csv(
                "001,S1,2026-05-04,09:00,18:00,normal",  # unchanged
                "002,S2,2026-05-04,09:10,18:00,late",  # insert
                "002,S2,2026-05-04,09:00,18:00,normal",  # duplicate
                "999,Nobody,2026-05-04,09:00,18:00,normal",  # unknown employee
                "003,S3,2026-13-04,09:00,18:00,normal",  # invalid date
                "003,S3,2026-05-05,25:61,18:00,normal",  # impossible time
                "003,S3,2099-05-05,09:00,18:00,normal",  # future
            ),
            "previewLimit": 2,
        },
    )
    assert body["stats"] == {
        "insert": 1,
        "update": 0,
        "unchanged": 1,
        "skip": 1,
        "invalid": 3,
        "duplicate": 1,
    }
    assert body["rowCount"] == 7
    assert len(body["items"]) == 2 and body["truncated"] is True
    assert [item["action"] for item in body["items"]] == ["unchanged", "inserted"]
    codes = {(item["row"], item["code"]) for item in body["errors"]}
    assert codes == {
        (4, "DUPLICATE_ROW"),
        (5, "UNKNOWN_EMPLOYEE"),
        (6, "INVALID_DATE"),
        (7, "INVALID_TIME"),
        (8, "FUTURE_DATE"),
    }
    assert all(set(item) == {"row", "column", "code", "message"} for item in body["errors"])
    assert record_snapshot(organisation) == before


def test_preview_counts_people_it_would_create_without_creating_them(organisation, staff, client):
    body = preview(
        client,
        {"csvText": csv("777,New Person,2026-05-04,09:00,18:00,"), "createMissingEmployees": True},
    )
    assert body["employeesToCreate"] == 1
    assert body["stats"]["insert"] == 1
    assert not Employee.objects.filter(employee_no="777").exists()


def test_commit_writes_days_items_and_one_audit_event(organisation, staff, client):
    result = commit(
        client,
        {
            "csvText": csv(
                "001,S1,2026-05-04,09:00,18:00,",
                "002,S2,2026-05-04,09:20,17:00,",
                "999,Nobody,2026-05-04,09:00,18:00,",
            ),
            "returnItems": True,
        },
    )
    assert result["idempotent"] is False
    assert result["stats"]["insert"] == 2 and result["stats"]["skip"] == 1
    first = day_record(staff[0], "2026-05-04")
    # The template's empty status: the organisation's schedule (09:00–18:00) judges the day.
    assert (first.status, first.work_minutes, first.source, first.batch_id) == (
        "normal",
        540,
        "import",
        result["batchId"],
    )
    second = day_record(staff[1], "2026-05-04")
    assert second.status == "late_early" and second.late_minutes == 20
    assert [item["action"] for item in result["items"]] == ["inserted", "inserted"]
    actions = ImportItem.objects.filter(batch_id=result["batchId"]).values_list(
        "row", "action", "code"
    )
    assert sorted(actions) == [
        (2, "inserted", ""),
        (3, "inserted", ""),
        (4, "skipped", "UNKNOWN_EMPLOYEE"),
    ]
    events = AuditEvent.objects.filter(action="imports.batch.committed")
    assert events.count() == 1
    assert events.get().data["stats"]["insert"] == 2


def test_commit_needs_a_token_that_is_valid_unused_and_yours(organisation, people, staff, api):
    client = api(people["importer"])
    body = {"csvText": csv("001,S1,2026-05-04,09:00,18:00,")}
    error(client.post(f"{IMPORT_API}/commit", body, format="json"), 400, "COMMIT_TOKEN_REQUIRED")
    error(
        client.post(f"{IMPORT_API}/commit", {**body, "commitToken": "made-up"}, format="json"),
        403,
        "COMMIT_TOKEN_INVALID",
    )
    admins_token = prepare(api(people["admin"]))
    error(
        client.post(f"{IMPORT_API}/commit", {**body, "commitToken": admins_token}, format="json"),
        403,
        "COMMIT_TOKEN_INVALID",
    )
    token = prepare(client)
    data(client.post(f"{IMPORT_API}/commit", {**body, "commitToken": token}, format="json"))
    error(
        client.post(f"{IMPORT_API}/commit", {**body, "commitToken": token}, format="json"),
        403,
        "COMMIT_TOKEN_INVALID",
    )
    expired = prepare(client)
    CommitToken.objects.filter(used_at__isnull=True, user=people["importer"].user).update(
        expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    )
    error(
        client.post(f"{IMPORT_API}/commit", {**body, "commitToken": expired}, format="json"),
        403,
        "COMMIT_TOKEN_INVALID",
    )
    assert ImportBatch.objects.filter(organisation=organisation).count() == 1


def test_a_token_survives_a_failed_commit(organisation, staff, client, settings):
    settings.IMPORT_SYNC_MAX_ROWS = 1
    token = prepare(client)
    body = {
        "commitToken": token,
        "csvText": csv("001,S1,2026-05-04,09:00,18:00,", "002,S2,2026-05-04,09:00,18:00,"),
    }
    error(
        client.post(f"{IMPORT_API}/commit", body, format="json"),
        400,
        "IMPORT_TOO_LARGE_FOR_SYNC",
    )
    assert not AttendanceRecord.objects.filter(organisation=organisation).exists()
    settings.IMPORT_SYNC_MAX_ROWS = 100
    data(client.post(f"{IMPORT_API}/commit", body, format="json"))


def test_idempotency_key_replays_refuses_other_input_and_needs_no_new_token(
    organisation, staff, client
):
    body = {"csvText": csv("001,S1,2026-05-04,09:00,18:00,"), "idempotencyKey": "nightly-0504"}
    first = commit(client, body)
    replay = data(client.post(f"{IMPORT_API}/commit", body, format="json"))
    assert replay["idempotent"] is True
    assert replay["batchId"] == first["batchId"]
    assert replay["stats"] == first["stats"]
    other = {**body, "csvText": csv("002,S2,2026-05-04,09:00,18:00,")}
    error(
        client.post(
            f"{IMPORT_API}/commit", {**other, "commitToken": prepare(client)}, format="json"
        ),
        409,
        "IDEMPOTENCY_KEY_CONFLICT",
    )
    assert ImportBatch.objects.filter(organisation=organisation).count() == 1


@pytest.mark.django_db(transaction=True)
def test_same_key_while_the_first_commit_runs_is_import_in_progress(organisation, staff, client):
    """The first request holds the key's lock inside its transaction (a second connection
    stands in for it); the second is told at once instead of waiting."""
    holder = connections.create_connection("default")
    try:
        with holder.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)",
                lock_key(LockSpace.IMPORT_KEY, organisation.pk, "k-1"),
            )
            response = client.post(
                f"{IMPORT_API}/commit",
                {
                    "commitToken": prepare(client),
                    "csvText": csv("001,S1,2026-05-04,09:00,18:00,"),
                    "idempotencyKey": "k-1",
                },
                format="json",
            )
            error(response, 409, "IMPORT_IN_PROGRESS")
            cursor.execute("ROLLBACK")
    finally:
        holder.close()
    assert not AttendanceRecord.objects.filter(organisation=organisation).exists()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_commits_with_one_key_write_one_batch(organisation, staff, client, api):
    people_client = client
    body = {"csvText": csv("001,S1,2026-05-04,09:00,18:00,"), "idempotencyKey": "race"}
    tokens = [prepare(people_client), prepare(people_client)]
    answers = []
    start = threading.Barrier(2, timeout=30)

    def send(token):
        try:
            start.wait()  # both requests leave together
            response = people_client.post(
                f"{IMPORT_API}/commit", {**body, "commitToken": token}, format="json"
            )
            answers.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(status for status, _ in answers)
    assert statuses in ([200, 200], [200, 409])
    for status, body_ in answers:
        if status == 409:
            assert body_["error"]["code"] == "IMPORT_IN_PROGRESS"
    batch = ImportBatch.objects.get(organisation=organisation)
    committed = [body_["data"] for status, body_ in answers if status == 200]
    assert {answer["batchId"] for answer in committed} == {batch.pk}
    assert sorted(answer["idempotent"] for answer in committed) in ([False], [False, True])


def test_override_replaces_and_merge_keeps_earliest_in_and_latest_out(organisation, staff, client):
    commit(client, {"csvText": csv("001,S1,2026-05-04,08:50,17:00,")})
    commit(client, {"csvText": csv("001,S1,2026-05-04,09:30,18:30,")})
    day = day_record(staff[0], "2026-05-04")
    assert day.first_in.astimezone(SHANGHAI).time() == dt.time(9, 30)
    assert day.status == "late"

    commit(client, {"csvText": csv("001,S1,2026-05-04,08:40,17:00,"), "mode": "merge"})
    day = day_record(staff[0], "2026-05-04")
    assert day.first_in.astimezone(SHANGHAI).time() == dt.time(8, 40)
    assert day.last_out.astimezone(SHANGHAI).time() == dt.time(18, 30)
    assert (day.status, day.work_minutes, day.late_minutes) == ("normal", 590, 0)


def test_an_approved_correction_is_never_overwritten(organisation, people, staff, client):
    employee = people["employee"]
    request = attendance_services.adjustment_request_create(
        actor=employee.user,
        employee=employee,
        work_date=dt.date(2026, 5, 4),
        status="leave",
        reason="Doctor",
    )
    attendance_services.adjustment_request_approve(
        actor=people["approver"].user, request=request, comment="ok"
    )
    result = commit(
        client, {"csvText": csv(f"{employee.employee_no},X,2026-05-04,09:00,18:00,normal")}
    )
    assert result["stats"]["skip"] == 1
    day = day_record(employee, "2026-05-04")
    assert (day.status, day.source) == ("leave", "adjustment")
    item = ImportItem.objects.get(batch_id=result["batchId"])
    assert (item.action, item.code) == ("skipped", "CORRECTED_DAY_KEPT")


def test_rollback_restores_exactly_the_previous_state(organisation, staff, client):
    commit(
        client,
        {"csvText": csv("001,S1,2026-05-04,08:50,17:00,", "002,S2,2026-05-04,09:00,18:00,")},
    )
    before = record_snapshot(organisation)
    second = commit(
        client,
        {
            "csvText": csv(
                "001,S1,2026-05-04,09:40,18:00,",  # update
                "002,S2,2026-05-04,09:00,18:00,",  # unchanged
                "003,S3,2026-05-04,09:00,18:00,",  # insert
                "777,New,2026-05-04,09:00,18:00,",  # creates an employee
            ),
            "createMissingEmployees": True,
        },
    )
    assert second["stats"]["insert"] == 2 and second["stats"]["update"] == 1
    assert Employee.objects.filter(employee_no="777").exists()

    result = data(client.post(f"{IMPORT_API}/rollback/{second['batchId']}"))

    assert result == {
        "batchId": second["batchId"],
        "status": "rolled_back",
        "restored": 1,
        "deleted": 2,
    }
    assert record_snapshot(organisation) == before
    assert not Employee.objects.filter(employee_no="777").exists()
    assert AuditEvent.objects.filter(action="imports.batch.rolled_back").count() == 1
    error(client.post(f"{IMPORT_API}/rollback/{second['batchId']}"), 409, "ALREADY_ROLLED_BACK")


def test_rollback_refuses_when_a_later_write_touched_a_day(organisation, people, client):
    employee = people["employee"]
    batch = commit(client, {"csvText": csv(f"{employee.employee_no},E,2026-05-04,09:00,18:00,")})
    request = attendance_services.adjustment_request_create(
        actor=employee.user,
        employee=employee,
        work_date=dt.date(2026, 5, 4),
        status="leave",
        reason="Doctor",
    )
    attendance_services.adjustment_request_approve(
        actor=people["approver"].user, request=request, comment="ok"
    )
    before = record_snapshot(organisation)

    failure = error(
        client.post(f"{IMPORT_API}/rollback/{batch['batchId']}"), 409, "ROLLBACK_CONFLICT"
    )

    assert failure["details"]["conflicts"][0]["workDate"] == "2026-05-04"
    assert record_snapshot(organisation) == before
    assert ImportBatch.objects.get(pk=batch["batchId"]).status == "committed"


def test_a_later_batch_over_the_same_days_blocks_rolling_back_the_earlier(
    organisation, staff, client
):
    first = commit(client, {"csvText": csv("001,S1,2026-05-04,09:00,18:00,")})
    second = commit(client, {"csvText": csv("001,S1,2026-05-04,09:30,18:00,")})
    error(client.post(f"{IMPORT_API}/rollback/{first['batchId']}"), 409, "ROLLBACK_CONFLICT")
    data(client.post(f"{IMPORT_API}/rollback/{second['batchId']}"))
    data(client.post(f"{IMPORT_API}/rollback/{first['batchId']}"))
    assert not AttendanceRecord.objects.filter(organisation=organisation).exists()


def test_large_rollbacks_become_a_job(organisation, staff, client, settings):
    settings.IMPORT_ASYNC_ROLLBACK_ROWS = 1
    batch = commit(
        client,
        {"csvText": csv("001,S1,2026-05-04,09:00,18:00,", "002,S2,2026-05-04,09:00,18:00,")},
    )
    body = data(client.post(f"{IMPORT_API}/rollback/{batch['batchId']}"), 202)
    assert body["job"]["kind"] == "rollback" and body["job"]["status"] == "queued"
    again = data(client.post(f"{IMPORT_API}/rollback/{batch['batchId']}"), 202)
    assert again["job"]["id"] == body["job"]["id"]


def test_other_organisations_cannot_see_or_touch_a_batch(
    organisation, other_organisation, staff, client, make_person, api
):
    batch = commit(client, {"csvText": csv("001,S1,2026-05-04,09:00,18:00,")})
    outsider = api(make_person(other_organisation, "employee", "admin"))
    error(outsider.get(f"{IMPORT_API}/batches/{batch['batchId']}"), 404, "NOT_FOUND")
    error(outsider.post(f"{IMPORT_API}/rollback/{batch['batchId']}"), 404, "NOT_FOUND")
    assert ImportBatch.objects.get(pk=batch["batchId"]).status == "committed"
