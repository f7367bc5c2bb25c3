"""The audit viewer's API: access, every filter, keyset paging, validation, the CSV export
and the summary, on the real partitioned table."""

from __future__ import annotations

import csv
import datetime as dt
import importlib
import io
import itertools
import re
import zoneinfo
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

import audit.migrations
from audit import selectors
from audit.models import AuditEvent
from tests.support import data, error

pytestmark = pytest.mark.django_db

LIST = "/api/attendance-admin/audit-logs"
EXPORT = f"{LIST}/export.csv"
SUMMARY = f"{LIST}/summary"
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


@pytest.fixture
def now():
    # A little in the past, so every event of a test sits in an existing partition and
    # nothing the request itself records comes between them.
    return timezone.now().replace(microsecond=0) - dt.timedelta(hours=1)


@pytest.fixture
def make_event(organisation):
    """make_event(action, at, **columns) → an event of the organisation (or ``org=``)."""

    def make(action: str, at: dt.datetime, *, org=None, **columns) -> AuditEvent:
        columns.setdefault("actor_label", "system")
        return AuditEvent.objects.create(
            organisation=org or organisation, action=action, occurred_at=at, **columns
        )

    return make


@pytest.fixture
def admin_api(people, api):
    return api(people["admin"])


def listed(client, **params) -> dict:
    return data(client.get(f"{LIST}?{urlencode(params)}"))


def ids(client, **params) -> list[int]:
    return [item["id"] for item in listed(client, **params)["items"]]


# --- access -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [LIST, EXPORT, SUMMARY])
def test_anonymous_is_401_other_roles_403_and_admins_200(people, api, path):
    error(api().get(path), 401, "UNAUTHENTICATED")
    for role in ("employee", "approver", "importer"):
        error(api(people[role]).get(path), 403, "FORBIDDEN")
    assert api(people["admin"]).get(path).status_code == 200


def test_another_organisations_events_are_never_shown(
    admin_api, make_event, other_organisation, now
):
    mine = make_event("test.viewer.mine", now)
    theirs = make_event("test.viewer.theirs", now, org=other_organisation)
    system = AuditEvent.objects.create(action="test.viewer.system", occurred_at=now)
    shown = ids(admin_api, actionPrefix="test.viewer.", pageSize=200)
    assert shown == [mine.pk]
    assert theirs.pk not in ids(admin_api, q="theirs")
    assert system.pk not in ids(admin_api, pageSize=200)
    body = b"".join(admin_api.get(f"{EXPORT}?actionPrefix=test.viewer.").streaming_content)
    assert b"test.viewer.mine" in body
    assert b"theirs" not in body
    assert b"test.viewer.system" not in body
    summary = data(admin_api.get(SUMMARY))
    assert "test.viewer.theirs" not in {row["action"] for row in summary["byAction"]}


# --- items ----------------------------------------------------------------------------------


def test_an_item_has_every_field_with_times_in_the_organisations_zone(
    admin_api, make_event, people, now
):
    admin = people["admin"]
    event = make_event(
        "imports.batch.committed",
        now,
        actor_id=admin.user_id,
        actor_label="admin_user (Admin)",
        target_type="imports.importbatch",
        target_id="42",
        request_id="req-1",
        ip="10.1.2.3",
        user_agent="pytest",
        data={"rows": 3},
    )
    (item,) = listed(admin_api, action="imports.batch.committed")["items"]
    assert item == {
        "id": event.pk,
        "occurredAt": now.astimezone(SHANGHAI).isoformat(),
        "action": "imports.batch.committed",
        "status": "ok",
        "errorCode": None,
        "actor": {"id": admin.user_id, "label": "admin_user (Admin)"},
        "targetType": "imports.importbatch",
        "targetId": "42",
        "targetUrl": "/imports/batches/42/",
        "requestId": "req-1",
        "ip": "10.1.2.3",
        "userAgent": "pytest",
        "data": {"rows": 3},
    }
    assert item["occurredAt"].endswith("+08:00")


@pytest.mark.parametrize(
    ("target_type", "target_id", "expected"),
    [
        ("imports.importbatch", "7", "/imports/batches/7/"),
        ("attendance.employee", "5", "/admin/attendance/employee/5/change/"),
        ("auth.user", "9", "/admin/auth/user/9/change/"),
        ("attendance.adjustmentrequest", "3", "/admin/attendance/adjustmentrequest/3/change/"),
        (
            "imports.importjob",
            "0b5e3cf4-8f7e-4c65-9d3c-2f3b8d1c9a10",
            "/api/attendance/import/jobs/0b5e3cf4-8f7e-4c65-9d3c-2f3b8d1c9a10",
        ),
        ("imports.importbatch", "x1", None),  # not an id of that model
        ("imports.importjob", "12", None),
        ("test.thing", "7", None),  # nothing shows it
        ("", "", None),
    ],
)
def test_target_urls_link_what_they_name(target_type, target_id, expected):
    assert selectors.target_url(target_type, target_id) == expected


def test_the_list_costs_the_same_queries_whatever_the_page_size(admin_api, make_event, now):
    for index in range(3):
        make_event("test.count.a", now - dt.timedelta(seconds=index), target_type="auth.user")
    admin_api.get(LIST)  # the first request may load caches (content types, roles)
    with CaptureQueriesContext(connection) as small:
        assert len(listed(admin_api, pageSize=2)["items"]) == 2
    for index in range(200):
        make_event(
            "test.count.b",
            now - dt.timedelta(minutes=1, seconds=index),
            target_type="imports.importbatch",
            target_id=str(index),
        )
    with CaptureQueriesContext(connection) as large:
        assert len(listed(admin_api, pageSize=200)["items"]) == 200
    assert len(large.captured_queries) == len(small.captured_queries)


def test_a_page_reads_month_by_month_at_most_a_bounded_number_of_times(admin_api, make_event, now):
    make_event("test.count.c", now)
    make_event("test.count.c", now)
    with CaptureQueriesContext(connection) as full:  # a next page is known at once
        assert len(listed(admin_api, action="test.count.c", pageSize=1)["items"]) == 1
    with CaptureQueriesContext(connection) as short:  # the last page: every month is read
        assert len(listed(admin_api, action="test.count.c", pageSize=5)["items"]) == 2

    def reads(captured):
        return [q for q in captured.captured_queries if "FROM audit_auditevent" in q["sql"]]

    assert len(reads(full)) <= 2  # this month (the month before, just after midnight UTC)
    assert len(reads(short)) == selectors.MONTHS_STEPPED + 2


def test_windows_tile_the_time_line_newest_first():
    upper = dt.datetime(2026, 3, 15, tzinfo=dt.UTC)
    windows = list(selectors._windows(upper, None))
    assert windows[0] == (dt.datetime(2026, 3, 1, tzinfo=dt.UTC), None)
    assert windows[1] == (dt.datetime(2026, 2, 1, tzinfo=dt.UTC), windows[0][0])
    assert windows[-1] == (None, windows[-2][0])
    for newer, older in itertools.pairwise(windows):
        assert older[1] == newer[0]  # no gap, no overlap
    bounded = list(selectors._windows(upper, dt.datetime(2026, 1, 20, tzinfo=dt.UTC)))
    assert [start.month for start, _end in bounded] == [3, 2, 1]


# --- filters --------------------------------------------------------------------------------


@pytest.fixture
def assorted(make_event, people, now):
    """A few events that each filter tells apart."""
    admin = people["admin"]
    return {
        "punch": make_event(
            "attendance.punch.created",
            now - dt.timedelta(minutes=1),
            actor_id=admin.user_id,
            actor_label="admin_user (Ada Lovelace)",
            target_type="attendance.punch",
            target_id="11",
            data={"kind": "in", "note": "Front door"},
        ),
        "commit": make_event(
            "imports.batch.committed",
            now - dt.timedelta(minutes=2),
            actor_label="importer_user (Grace Hopper)",
            target_type="imports.importbatch",
            target_id="77",
            data={"rows": 5000, "file": "100%_done.csv"},
        ),
        "job_failed": make_event(
            "imports.job.failed",
            now - dt.timedelta(minutes=3),
            target_type="imports.importjob",
            target_id="0b5e3cf4-8f7e-4c65-9d3c-2f3b8d1c9a10",
            data={"error": {"code": "WORKER_LOST", "message": "gone"}},
        ),
        "busy": make_event(
            "attendance.request.approved",
            now - dt.timedelta(minutes=4),
            data={"errorCode": "BUSY"},
        ),
        "not_ok": make_event("gates.smoke.run", now - dt.timedelta(minutes=5), data={"ok": False}),
        "denied": make_event("attendance.access.denied", now - dt.timedelta(minutes=6)),
        "null_error": make_event(
            "attendance.request.created", now - dt.timedelta(minutes=7), data={"error": None}
        ),
        "underscore": make_event(
            "imports_batch.other", now - dt.timedelta(minutes=8), target_id="77"
        ),
    }


def keys_of(assorted, found: list[int]) -> set[str]:
    names = {event.pk: name for name, event in assorted.items()}
    return {names[pk] for pk in found if pk in names}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"action": "imports.batch.committed"}, {"commit"}),
        ({"action": "imports.batch"}, set()),
        ({"actionPrefix": "imports."}, {"commit", "job_failed"}),
        ({"actionPrefix": "imports_"}, {"underscore"}),  # "_" is a letter, not a wildcard
        ({"actor": "grace"}, {"commit"}),  # label, any case
        ({"targetType": "imports.importbatch"}, {"commit"}),
        ({"targetId": "77"}, {"commit", "underscore"}),
        ({"targetType": "imports.importbatch", "targetId": "77"}, {"commit"}),
        ({"status": "failed"}, {"job_failed", "busy", "not_ok", "denied"}),
        ({"status": "ok"}, {"punch", "commit", "null_error", "underscore"}),
        ({"q": "FRONT DOOR"}, {"punch"}),  # in the data, any case
        ({"q": "lovelace"}, {"punch"}),  # the actor label
        ({"q": "batch.comm"}, {"commit"}),  # the action
        ({"q": "0b5e3cf4"}, {"job_failed"}),  # the target id
        ({"q": "WORKER_LOST"}, {"job_failed"}),  # a nested value
        ({"q": "100%_"}, {"commit"}),  # % and _ are literal
        ({"q": "5%"}, set()),
        ({"actionPrefix": "imports.", "status": "failed"}, {"job_failed"}),
    ],
)
def test_each_filter(admin_api, assorted, params, expected):
    assert keys_of(assorted, ids(admin_api, pageSize=200, **params)) == expected


def test_actor_digits_mean_the_user_id(admin_api, assorted, people):
    found = ids(admin_api, actor=str(people["admin"].user_id), pageSize=200)
    assert keys_of(assorted, found) == {"punch"}


def test_status_and_error_code_of_each_kind_of_failure(admin_api, assorted):
    items = {item["id"]: item for item in listed(admin_api, pageSize=200)["items"]}
    assert items[assorted["job_failed"].pk]["errorCode"] == "WORKER_LOST"
    assert items[assorted["busy"].pk]["errorCode"] == "BUSY"
    assert items[assorted["not_ok"].pk]["status"] == "failed"
    assert items[assorted["not_ok"].pk]["errorCode"] is None
    assert items[assorted["null_error"].pk]["status"] == "ok"


def test_dates_are_whole_days_in_the_organisations_time_zone(admin_api, make_event):
    # 2026-03-10 in Shanghai is 2026-03-09T16:00Z … 2026-03-10T16:00Z.
    day_start = dt.datetime(2026, 3, 9, 16, 0, tzinfo=dt.UTC)
    events = {
        "before": make_event("test.day.before", day_start - dt.timedelta(microseconds=1)),
        "first": make_event("test.day.first", day_start),
        "last": make_event("test.day.last", day_start + dt.timedelta(hours=24, microseconds=-1)),
        "after": make_event("test.day.after", day_start + dt.timedelta(hours=24)),
    }
    names = {event.pk: name for name, event in events.items()}

    def found(**params):
        return {names[pk] for pk in ids(admin_api, actionPrefix="test.day.", **params)}

    assert found(**{"from": "2026-03-10", "to": "2026-03-10"}) == {"first", "last"}
    assert found(**{"from": "2026-03-10"}) == {"first", "last", "after"}
    assert found(to="2026-03-10") == {"before", "first", "last"}
    # A date-time without an offset is read in Shanghai; "to" is inclusive.
    assert found(**{"from": "2026-03-10T00:00:00", "to": "2026-03-10T00:00:00"}) == {"first"}
    # With an offset, it is taken as it says.
    assert found(**{"from": "2026-03-09T16:00:00Z", "to": "2026-03-09T16:00:00+00:00"}) == {"first"}
    assert found(**{"from": "2026-03-11", "to": "2026-03-10"}) == set()  # after: nothing


# --- keyset paging --------------------------------------------------------------------------


def test_keyset_pages_neither_repeat_nor_skip_events_with_equal_times(admin_api, make_event, now):
    same = now - dt.timedelta(minutes=1)
    made = [make_event("test.page.same", same) for _ in range(7)]
    made += [make_event("test.page.older", now - dt.timedelta(minutes=2 + i)) for i in range(4)]
    made.append(make_event("test.page.newer", now))
    expected = sorted(made, key=lambda event: (event.occurred_at, event.pk), reverse=True)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"actionPrefix": "test.page.", "pageSize": 3}
        if cursor:
            params["cursor"] = cursor
        page = listed(admin_api, **params)
        assert page["pageSize"] == 3
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == [event.pk for event in expected]
    assert pages == 4
    assert set(page) == {"items", "pageSize", "nextCursor"}  # no total: keyset-paged


def test_page_size_defaults_to_50(admin_api, make_event, now):
    for index in range(51):
        make_event("test.default.size", now - dt.timedelta(seconds=index))
    page = listed(admin_api, action="test.default.size")
    assert (len(page["items"]), page["pageSize"]) == (50, 50)
    assert page["nextCursor"]
    rest = listed(admin_api, action="test.default.size", cursor=page["nextCursor"])
    assert len(rest["items"]) == 1
    assert rest["nextCursor"] is None


def test_the_cursor_prunes_partitions_and_reads_in_index_order(make_event, organisation, now):
    cursor = selectors.Cursor(now, 10**12)
    month_after = (now.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    where, params = selectors.filter_sql(
        organisation_id=organisation.pk, filters=selectors.AuditFilters()
    )
    params.update(cursor_at=cursor.occurred_at, cursor_id=cursor.id, limit=51)
    with connection.cursor() as cur:
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute(
            f"EXPLAIN SELECT id FROM audit_auditevent WHERE {where}"
            " AND (occurred_at, id) < (%(cursor_at)s, %(cursor_id)s)"
            " AND occurred_at <= %(cursor_at)s ORDER BY occurred_at DESC, id DESC"
            " LIMIT %(limit)s",
            params,
        )
        plan = "\n".join(row[0] for row in cur.fetchall())
    assert f"audit_auditevent_y{month_after:%Y}m{month_after:%m}" not in plan
    assert not re.search(r"(^|->\s+)(Incremental )?Sort\b", plan, re.M)  # index order
    assert f"audit_auditevent_y{now:%Y}m{now:%m}" in plan
    assert "Scan Backward" in plan


def test_the_indexes_predicates_are_the_selectors_conditions():
    folder = Path(audit.migrations.__file__).parent
    (path,) = folder.glob("*_audit_viewer_indexes.py")
    migration = importlib.import_module(f"audit.migrations.{path.stem}")
    assert selectors.FAILED_SQL.replace("%%", "%") == migration.FAILED_PREDICATE
    assert migration.SEARCH_TEXT == selectors.SEARCH_TEXT_SQL


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"pageSize": "0"}, "pageSize"),
        ({"pageSize": "201"}, "pageSize"),
        ({"pageSize": "ten"}, "pageSize"),
        ({"cursor": "abc"}, "cursor"),
        ({"cursor": "12-"}, "cursor"),
        ({"cursor": ""}, "cursor"),
        ({"status": "broken"}, "status"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-02-30"}, "to"),
        ({"from": ""}, "from"),
        ({"q": "x" * 201}, "q"),
        ({"q": "a\x00b"}, "q"),
        ({"action": "a" * 101}, "action"),
        ({"actor": "b" * 201}, "actor"),
    ],
)
def test_bad_query_parameters_are_validation_errors(admin_api, params, field):
    failure = error(admin_api.get(f"{LIST}?{urlencode(params)}"), 400, "VALIDATION_ERROR")
    assert field in failure["details"]["fields"]
    export_params = {
        key: value for key, value in params.items() if key not in ("cursor", "pageSize")
    }
    if export_params:
        failure = error(
            admin_api.get(f"{EXPORT}?{urlencode(export_params)}"), 400, "VALIDATION_ERROR"
        )
        assert field in failure["details"]["fields"]


def test_a_leap_second_and_lower_case_date_times_are_accepted(admin_api):
    assert listed(admin_api, to="2016-12-31t23:59:60z")["items"] == []


def test_an_offset_whose_plus_became_a_space_is_still_the_offset(admin_api, make_event):
    event = make_event("test.offset.plus", dt.datetime(2026, 3, 9, 16, 0, tzinfo=dt.UTC))
    raw = "from=2026-03-10T00:00:00+08:00&to=2026-03-10T00:00:00+08:00&action=test.offset.plus"
    assert [item["id"] for item in data(admin_api.get(f"{LIST}?{raw}"))["items"]] == [event.pk]


# --- export ---------------------------------------------------------------------------------


def read_csv(response) -> tuple[bytes, list[dict]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response.streaming
    body = b"".join(response.streaming_content)
    text = body.decode("utf-8")
    assert text.startswith("\ufeff")
    return body, list(csv.DictReader(io.StringIO(text[1:])))


def test_the_export_neutralises_formulas_in_every_text_column(admin_api, make_event, now):
    make_event(
        "test.export.formula",
        now,
        actor_label='=HYPERLINK("http://evil")',
        target_type="@type",
        target_id="+1",
        request_id="-2",
        user_agent="\tagent",
        data=-5,
    )
    _body, rows = read_csv(admin_api.get(f"{EXPORT}?action=test.export.formula"))
    (row,) = rows
    assert list(row) == list(selectors.EXPORT_HEADER)
    assert row["actor_label"] == '\'=HYPERLINK("http://evil")'
    assert row["target_type"] == "'@type"
    assert row["target_id"] == "'+1"
    assert row["request_id"] == "'-2"
    assert row["user_agent"] == "'\tagent"
    assert row["data"] == "'-5"


def test_the_export_applies_the_filters_and_shows_local_times(admin_api, make_event, now):
    wanted = make_event(
        "test.export.kept",
        now,
        target_type="imports.importbatch",
        target_id="9",
        ip="10.0.0.9",
        data={"errorCode": "BUSY", "名字": "张三"},
    )
    make_event("test.export.dropped", now)
    _body, rows = read_csv(admin_api.get(f"{EXPORT}?actionPrefix=test.export.k&status=failed"))
    (row,) = rows
    local = now.astimezone(SHANGHAI)
    assert row["id"] == str(wanted.pk)
    assert row["occurred_at"] == local.strftime("%Y-%m-%d %H:%M:%S+08:00")
    assert (row["status"], row["error_code"], row["ip"]) == ("failed", "BUSY", "10.0.0.9")
    assert row["target_id"] == "9"
    assert "张三" in row["data"]


def test_the_export_is_audited_with_its_filters(admin_api, people, now):
    response = admin_api.get(f"{EXPORT}?actionPrefix=imports.&from=2026-01-01&q=")
    read_csv(response)
    event = AuditEvent.objects.filter(action="audit.events.exported").latest("occurred_at")
    assert event.organisation_id == people["admin"].organisation_id
    assert event.actor_id == people["admin"].user_id
    assert event.data["format"] == "csv"
    assert event.data["filters"] == {"actionPrefix": "imports.", "from": "2026-01-01"}


def test_the_export_is_newest_first(admin_api, make_event, now):
    older = make_event("test.export.order", now - dt.timedelta(minutes=1))
    newer = make_event("test.export.order", now)
    _body, rows = read_csv(admin_api.get(f"{EXPORT}?action=test.export.order"))
    assert [row["id"] for row in rows] == [str(newer.pk), str(older.pk)]


# --- summary --------------------------------------------------------------------------------


def test_the_summary_counts_by_action_and_error_code_within_the_window(
    admin_api, make_event, other_organisation
):
    now = timezone.now()
    recent = now - dt.timedelta(minutes=10)
    for _ in range(3):
        make_event("test.sum.punch", recent)
    make_event("test.sum.fail", recent, data={"errorCode": "BUSY"})
    make_event("test.sum.fail", recent, data={"error": {"code": "BUSY"}})
    make_event("test.sum.fail", recent, data={"error": "WORKER_LOST"})
    make_event("test.sum.login.failed", recent)
    make_event("test.sum.punch", now - dt.timedelta(minutes=90))  # outside 60 minutes
    make_event("test.sum.punch", recent, org=other_organisation)

    def ours(summary):
        return {
            "byAction": {
                row["action"]: row["count"]
                for row in summary["byAction"]
                if row["action"].startswith("test.sum.")
            },
            "byErrorCode": {row["code"]: row["count"] for row in summary["byErrorCode"]},
        }

    summary = data(admin_api.get(SUMMARY))
    assert summary["windowMinutes"] == 60
    assert ours(summary)["byAction"] == {
        "test.sum.punch": 3,
        "test.sum.fail": 3,
        "test.sum.login.failed": 1,
    }
    assert ours(summary)["byErrorCode"] == {"BUSY": 2, "WORKER_LOST": 1, None: 1}
    assert summary["total"] == sum(row["count"] for row in summary["byAction"])
    assert summary["total"] >= 7
    assert summary["failed"] == 4
    assert summary["from"].endswith("+08:00")
    wider = data(admin_api.get(f"{SUMMARY}?windowMinutes=120"))
    assert ours(wider)["byAction"]["test.sum.punch"] == 4


@pytest.mark.parametrize("window", ["0", "10081", "-5", "x", ""])
def test_the_summary_window_is_bounded(admin_api, window):
    failure = error(admin_api.get(f"{SUMMARY}?windowMinutes={window}"), 400, "VALIDATION_ERROR")
    assert "windowMinutes" in failure["details"]["fields"]


def test_the_urls_are_named(admin_api):
    assert reverse("audit-api:audit-logs") == LIST
    assert reverse("audit-api:audit-logs-export") == EXPORT
    assert reverse("audit-api:audit-logs-summary") == SUMMARY
