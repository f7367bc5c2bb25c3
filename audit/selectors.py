"""Audit reads: the viewer's filters as SQL, shared by the API, the page and the CSV export.

Every read is one organisation's events, newest first, ordered by ``(occurred_at, id)`` and
paged by keyset on that pair (never OFFSET, never a total: both cost a scan of everything
before the page, and the table holds millions of rows). Each filter is a condition one of
the indexes of ``audit/migrations/0003_audit_viewer_indexes.py`` serves in that order, and
every time condition is on ``occurred_at`` itself so PostgreSQL prunes the monthly
partitions outside it.

What ``status`` means: an event *failed* when its data carries a non-null ``errorCode`` or
``error``, or ``ok: false``, or its action ends in ``.failed`` or ``.denied`` (a failed login,
a job that failed, a refused permission); every other event is *ok*. The error code of a
failed event is ``data.errorCode``, else ``data.error.code``, else ``data.error`` when that
is a string (none otherwise).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import uuid
from dataclasses import dataclass

from django.apps import apps
from django.contrib import admin
from django.db import connection, models
from django.urls import NoReverseMatch, reverse

from audit.models import AuditEvent
from common.csv_export import neutralised_sql

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUSES = (STATUS_OK, STATUS_FAILED)

# Word for word the predicate of the partial index audit_auditevent_org_failed and the
# expression of the trigram index audit_auditevent_search (the planner matches them only
# so); ``%`` doubled because these go through the driver's parameter substitution.
FAILED_SQL = (
    "(data ? 'errorCode' OR (data ? 'error' AND data->'error' <> 'null'::jsonb)"
    " OR data->'ok' = 'false'::jsonb OR action LIKE '%%.failed' OR action LIKE '%%.denied')"
)
SEARCH_TEXT_SQL = (
    "((action || ' ' || actor_label || ' ' || target_type || ' ' || target_id || ' ')"
    " || (data)::text)"
)
ERROR_CODE_SQL = (
    "COALESCE(NULLIF(data->>'errorCode', ''), CASE jsonb_typeof(data->'error')"
    " WHEN 'object' THEN data->'error'->>'code' WHEN 'string' THEN data->>'error' END)"
)

# The keyset cursor: microseconds since the epoch and the id. Opaque to clients (they pass
# back nextCursor as given); every string of this shape is a valid position, so the schema
# can state exactly which cursors are accepted.
CURSOR_PATTERN = r"^[0-9]{1,16}-[0-9]{1,18}$"
_CURSOR = re.compile(CURSOR_PATTERN)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Cursor:
    occurred_at: dt.datetime
    id: int

    def encode(self) -> str:
        micros = (self.occurred_at - _EPOCH) // dt.timedelta(microseconds=1)
        return f"{micros}-{self.id}"

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        if not _CURSOR.fullmatch(text or ""):
            return None
        micros, _, event_id = text.partition("-")
        return cls(_EPOCH + dt.timedelta(microseconds=int(micros)), int(event_id))


@dataclass(frozen=True)
class AuditFilters:
    """The viewer's filters, validated (see ``audit/api/serializers.py``). ``occurred_from``
    is inclusive, ``occurred_before`` exclusive; both are aware datetimes."""

    q: str = ""
    action: str = ""
    action_prefix: str = ""
    actor: str = ""
    target_type: str = ""
    target_id: str = ""
    status: str = ""
    occurred_from: dt.datetime | None = None
    occurred_before: dt.datetime | None = None


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filter_sql(*, organisation_id: int, filters: AuditFilters) -> tuple[str, dict]:
    """The WHERE clause (without the keyword) and its named parameters."""
    conditions = ["organisation_id = %(organisation_id)s"]
    params: dict = {"organisation_id": organisation_id}
    if filters.action:
        conditions.append("action = %(action)s")
        params["action"] = filters.action
    if filters.action_prefix:
        conditions.append("action LIKE %(action_prefix)s")
        params["action_prefix"] = _like_escape(filters.action_prefix) + "%"
    if filters.actor:
        if filters.actor.isascii() and filters.actor.isdigit():
            conditions.append("actor_id = %(actor_id)s")
            params["actor_id"] = int(filters.actor)
        else:
            conditions.append("actor_label ILIKE %(actor_label)s")
            params["actor_label"] = f"%{_like_escape(filters.actor)}%"
    if filters.target_type:
        conditions.append("target_type = %(target_type)s")
        params["target_type"] = filters.target_type
    if filters.target_id:
        conditions.append("target_id = %(target_id)s")
        params["target_id"] = filters.target_id
    if filters.status == STATUS_FAILED:
        conditions.append(FAILED_SQL)
    elif filters.status == STATUS_OK:
        # IS NOT TRUE, not NOT: a key the data lacks makes parts of it NULL, not false.
        conditions.append(f"{FAILED_SQL} IS NOT TRUE")
    if filters.q:
        conditions.append(f"{SEARCH_TEXT_SQL} ILIKE %(q)s")
        params["q"] = f"%{_like_escape(filters.q)}%"
    if filters.occurred_from is not None:
        conditions.append("occurred_at >= %(occurred_from)s")
        params["occurred_from"] = filters.occurred_from
    if filters.occurred_before is not None:
        conditions.append("occurred_at < %(occurred_before)s")
        params["occurred_before"] = filters.occurred_before
    return " AND ".join(conditions), params


@dataclass
class AuditPage:
    events: list[AuditEvent]
    page_size: int
    next_cursor: str | None


_COLUMNS = (
    "id, occurred_at, organisation_id, actor_id, actor_label, action, target_type, target_id,"
    " request_id, ip, user_agent, data"
)


# How many single months a page reads, newest first, before one last read of all that is
# older (see audit_event_page).
MONTHS_STEPPED = 13


def _month_start(moment: dt.datetime) -> dt.datetime:
    utc = moment.astimezone(dt.UTC)
    return utc.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _months_before(month: dt.datetime, count: int) -> dt.datetime:
    index = month.year * 12 + month.month - 1 - count
    return month.replace(year=index // 12, month=index % 12 + 1)


def _windows(upper: dt.datetime | None, lower: dt.datetime | None):
    """Time windows ``[start, end)`` (None: unbounded) that tile the time line newest
    first: everything from the month of ``upper`` on, then month by month (the partitions'
    own bounds, in UTC), then everything older; none wholly before ``lower``."""
    month = _month_start(upper or dt.datetime.now(dt.UTC))
    yield month, None
    for _ in range(MONTHS_STEPPED):
        if lower is not None and month <= lower:
            return
        previous = _months_before(month, 1)
        yield previous, month
        month = previous
    if lower is None or month > lower:
        yield None, month


def audit_event_page(
    *,
    organisation_id: int,
    filters: AuditFilters,
    cursor: Cursor | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> AuditPage:
    """One page of events, newest first, after ``cursor``.

    Read month by month, newest first, until the page is full: a query bounded to one
    month reads that month's partition alone, in index order, and stops at the page's end.
    One query over the whole table would be a Merge Append (the DEFAULT partition forbids
    PostgreSQL's ordered Append), which takes a first match from *every* partition before
    it returns a row: with a rare filter (``q``), seconds per partition. A page usually
    needs one query (rarely more than a few), never one per event. The row comparison is
    what the index orders by; the plain ``occurred_at <=`` beside it prunes newer months.
    """
    where, params = filter_sql(organisation_id=organisation_id, filters=filters)
    upper = filters.occurred_before
    if cursor is not None:
        where += (
            " AND (occurred_at, id) < (%(cursor_at)s, %(cursor_id)s)"
            " AND occurred_at <= %(cursor_at)s"
        )
        params.update(cursor_at=cursor.occurred_at, cursor_id=cursor.id)
        upper = cursor.occurred_at if upper is None else min(upper, cursor.occurred_at)
    events: list[AuditEvent] = []
    for start, end in _windows(upper, filters.occurred_from):
        window = where
        if start is not None:
            window += " AND occurred_at >= %(window_start)s"
        if end is not None:
            window += " AND occurred_at < %(window_end)s"
        sql = (
            f"SELECT {_COLUMNS} FROM audit_auditevent WHERE {window}"  # noqa: S608 - constants
            " ORDER BY occurred_at DESC, id DESC LIMIT %(limit)s"
        )
        wanted = {"window_start": start, "window_end": end, "limit": page_size + 1 - len(events)}
        events += AuditEvent.objects.raw(sql, {**params, **wanted})
        if len(events) > page_size:
            break
    next_cursor = None
    if len(events) > page_size:
        events = events[:page_size]
        last = events[-1]
        next_cursor = Cursor(last.occurred_at, last.id).encode()
    return AuditPage(events=events, page_size=page_size, next_cursor=next_cursor)


def audit_event_get(*, organisation_id: int, event_id: int) -> AuditEvent | None:
    """One event of the organisation (the id is unique; the primary key's index on every
    partition finds it)."""
    return AuditEvent.objects.filter(organisation_id=organisation_id, pk=event_id).first()


def event_status(event: AuditEvent) -> str:
    """The Python reading of FAILED_SQL, for one event already loaded."""
    data = event.data if isinstance(event.data, dict) else {}
    failed = (
        "errorCode" in data
        or data.get("error") is not None
        or data.get("ok") is False
        or event.action.endswith((".failed", ".denied"))
    )
    return STATUS_FAILED if failed else STATUS_OK


def event_error_code(event: AuditEvent) -> str | None:
    """The Python reading of ERROR_CODE_SQL."""
    data = event.data if isinstance(event.data, dict) else {}
    code = data.get("errorCode")
    if code not in (None, ""):
        return code if isinstance(code, str) else str(code)
    error = data.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        return None if code is None else str(code)
    return error if isinstance(error, str) else None


def _local_iso_sql(column: str) -> str:
    """``2026-05-01 09:12:03+08:00``: the wall time in the organisation's zone (``%(tz)s``)
    with its offset, which PostgreSQL's to_char can only give for the session's zone."""
    local = f"({column} AT TIME ZONE %(tz)s)"
    offset = f"({local} - ({column} AT TIME ZONE 'UTC'))"
    return (
        f"to_char({local}, 'YYYY-MM-DD HH24:MI:SS')"
        f" || CASE WHEN {offset} < interval '0' THEN '-' ELSE '+' END"
        f" || to_char(CASE WHEN {offset} < interval '0' THEN -{offset} ELSE {offset} END,"
        f" 'HH24:MI')"
    )


EXPORT_HEADER = (
    "id",
    "occurred_at",
    "action",
    "status",
    "error_code",
    "actor_id",
    "actor_label",
    "target_type",
    "target_id",
    "request_id",
    "ip",
    "user_agent",
    "data",
)


def audit_export_sql(
    *, organisation_id: int, time_zone: str, filters: AuditFilters
) -> tuple[str, dict]:
    """The SELECT behind the CSV export (streamed by COPY, newest first): times in the
    organisation's zone with their offset, every text column formula-neutralised (the data
    as JSON text included)."""
    where, params = filter_sql(organisation_id=organisation_id, filters=filters)
    params["tz"] = time_zone
    sql = f"""
        SELECT id,
               {_local_iso_sql("occurred_at")} AS occurred_at,
               {neutralised_sql("action::text")} AS action,
               CASE WHEN {FAILED_SQL} THEN 'failed' ELSE 'ok' END AS status,
               {neutralised_sql(ERROR_CODE_SQL)} AS error_code,
               actor_id,
               {neutralised_sql("actor_label::text")} AS actor_label,
               {neutralised_sql("target_type::text")} AS target_type,
               {neutralised_sql("target_id::text")} AS target_id,
               {neutralised_sql("request_id::text")} AS request_id,
               host(ip) AS ip,
               {neutralised_sql("user_agent::text")} AS user_agent,
               {neutralised_sql("data::text")} AS data
        FROM audit_auditevent
        WHERE {where}
        ORDER BY occurred_at DESC, id DESC
    """  # noqa: S608 - the only interpolations are constants of this module
    return sql, params


def audit_summary(*, organisation_id: int, window_minutes: int, now: dt.datetime) -> dict:
    """Counts over the last ``window_minutes``: the total, the failed, per action and per
    error code (of the failed events; ``None`` for a failure without a code)."""
    since = now - dt.timedelta(minutes=window_minutes)
    params = {"organisation_id": organisation_id, "since": since, "until": now}
    window = (
        "organisation_id = %(organisation_id)s AND occurred_at >= %(since)s"
        " AND occurred_at <= %(until)s"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT action, count(*) FROM audit_auditevent WHERE {window}"  # noqa: S608
            " GROUP BY action ORDER BY count(*) DESC, action",
            params,
        )
        by_action = [{"action": action, "count": count} for action, count in cursor.fetchall()]
        cursor.execute(
            f"SELECT {ERROR_CODE_SQL} AS code, count(*) FROM audit_auditevent"  # noqa: S608
            f" WHERE {window} AND {FAILED_SQL}"
            " GROUP BY code ORDER BY count(*) DESC, code NULLS LAST",
            params,
        )
        by_error_code = [{"code": code, "count": count} for code, count in cursor.fetchall()]
    return {
        "windowMinutes": window_minutes,
        "from": since,
        "to": now,
        "total": sum(row["count"] for row in by_action),
        "failed": sum(row["count"] for row in by_error_code),
        "byAction": by_action,
        "byErrorCode": by_error_code,
    }


def audit_partitions() -> list[dict]:
    """The audit table's partitions with their bounds, oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
            FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid
            JOIN pg_class p ON p.oid = i.inhparent
            WHERE p.relname = 'audit_auditevent'
            ORDER BY c.relname
            """
        )
        return [{"name": name, "bound": bound} for name, bound in cursor.fetchall()]


# --- what a target names ------------------------------------------------------------------

# Targets with a page of their own in the app; every other model the admin centre shows
# links to its change page there.
_APP_PAGES = {
    "imports.importbatch": ("imports:batch", int),
    "imports.importjob": ("import-api:job", uuid.UUID),
    "audit.auditevent": ("audit:event", int),
}


@functools.lru_cache(maxsize=256)
def _target_link(target_type: str):
    """(url name, id parser) for a target type, or None when nothing shows it."""
    if target_type in _APP_PAGES:
        return _APP_PAGES[target_type]
    try:
        model = apps.get_model(target_type)
    except (LookupError, ValueError):
        return None
    if not admin.site.is_registered(model):
        return None
    pk_field = model._meta.pk
    parser = uuid.UUID if isinstance(pk_field, models.UUIDField) else int
    return (f"admin:{model._meta.app_label}_{model._meta.model_name}_change", parser)


def target_url(target_type: str, target_id: str) -> str | None:
    """The path of the page showing an event's target (the import batch's report, the
    employee's or user's page in the admin centre, …), or None when none is known. Costs
    no query: the link is built from the type and id the event stores."""
    link = _target_link(target_type) if target_type and target_id else None
    if link is None:
        return None
    url_name, parse = link
    try:
        value = parse(target_id)
    except ValueError:
        return None
    if isinstance(value, int) and not (target_id.isascii() and target_id.isdigit()):
        return None
    try:
        return reverse(url_name, args=[value])
    except NoReverseMatch:
        return None
