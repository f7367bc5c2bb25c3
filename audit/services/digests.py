"""Tamper evidence: each closed hour of audit events sealed into a chained digest.

The triggers make the audit table append-only for the application, but its owner (or a
superuser) can still disable them, truncate or drop a partition, or forge a row. Digests
do not prevent that; they make it visible: ``audit_verify`` recomputes every sealed hour
and names what changed.

Format 1, precisely (seal and verify use the same SQL, in :data:`ROW_HASH_SQL`):

- an event's **row text** is PostgreSQL's ``jsonb`` text output of the object of all its
  columns, ``id, occurred_at, organisation_id, actor_id, actor_label, action, target_type,
  target_id, request_id, ip, user_agent, data`` (:data:`HASHED_COLUMNS`), with
  ``occurred_at`` as UTC ISO 8601 with microseconds (``2026-11-25T04:17:00.123456Z``),
  ``ip`` as ``inet::text`` (with its mask: ``192.0.2.7/32``) and ``data`` as the stored
  ``jsonb``. ``jsonb`` output is canonical: keys sorted (shorter first, then bytewise),
  duplicate keys gone, ``", "`` and ``": "`` separators, numbers as stored.
- its **row hash** is ``sha256`` of that text in UTF-8 (32 bytes);
- an hour's **events hash** is ``sha256`` of its row hashes concatenated in id order (of
  no bytes for an empty hour); the digest also keeps the ids (``event_ids``) and the row
  hashes (``event_hashes``) so that verification can name the single event that changed;
- its **chain hash** is ``sha256(prev_chain_hash || "YYYY-MM-DDTHH:00:00Z" ||
  event_count as 8 bytes big-endian || events_hash)``, the first digest's previous hash
  being 32 zero bytes.

Hours with no events are sealed too, so a dropped or truncated partition shows as hours
whose events are gone rather than as a quiet gap. A column added to the table must be
added to the row text under a new format number (a test compares the list with the table).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction

from audit.services.record import audit_record
from common.locking import LockSpace, wait_without_limit, xact_lock

logger = logging.getLogger(__name__)

FORMAT = 1
GENESIS = bytes(32)
HOUR = dt.timedelta(hours=1)
# Hours computed per statement: a week of events at a time, whatever the backlog.
CHUNK_HOURS = 24 * 7

HASHED_COLUMNS = (
    "id",
    "occurred_at",
    "organisation_id",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "request_id",
    "ip",
    "user_agent",
    "data",
)
ROW_TEXT_SQL = (
    "jsonb_build_object("
    "'id', e.id, "
    "'occurred_at',"
    " to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
    "'organisation_id', e.organisation_id, 'actor_id', e.actor_id, "
    "'actor_label', e.actor_label, 'action', e.action, 'target_type', e.target_type, "
    "'target_id', e.target_id, 'request_id', e.request_id, 'ip', e.ip::text, "
    "'user_agent', e.user_agent, 'data', e.data)::text"
)
ROW_HASH_SQL = f"sha256(convert_to({ROW_TEXT_SQL}, 'UTF8'))"
# The hour an event belongs to, in UTC whatever the session's time zone.
HOUR_SQL = "date_trunc('hour', e.occurred_at, 'UTC')"


def hour_label(hour: dt.datetime) -> str:
    return hour.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:00:00Z")


def chain_hash(prev_hash: bytes, hour: dt.datetime, event_count: int, events_hash: bytes) -> bytes:
    return hashlib.sha256(
        bytes(prev_hash)
        + hour_label(hour).encode()
        + event_count.to_bytes(8, "big")
        + bytes(events_hash)
    ).digest()


def floor_hour(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def hour_rows_sql(*, with_events: bool) -> str:
    """Per hour of ``[start, end)``: count, first and last id, events hash and (when
    ``with_events``) ids and row hashes; every hour listed, empty ones too."""
    events = (
        ", coalesce(array_agg(r.id ORDER BY r.id, r.row_hash) FILTER (WHERE r.id IS NOT NULL),"
        " '{}'), coalesce(string_agg(r.row_hash, ''::bytea ORDER BY r.id, r.row_hash), ''::bytea)"
        if with_events
        else ""
    )
    return f"""
        WITH hours AS (
            SELECT generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 hour',
                                   interval '1 hour') AS hour_start
        ), rows AS (
            SELECT {HOUR_SQL} AS hour_start, e.id, {ROW_HASH_SQL} AS row_hash
            FROM audit_auditevent e
            WHERE e.occurred_at >= %(start)s AND e.occurred_at < %(end)s
        )
        SELECT h.hour_start, count(r.id), min(r.id), max(r.id),
               sha256(coalesce(string_agg(r.row_hash, ''::bytea ORDER BY r.id, r.row_hash),
                               ''::bytea)){events}
        FROM hours h LEFT JOIN rows r USING (hour_start)
        GROUP BY h.hour_start ORDER BY h.hour_start
    """  # noqa: S608 - constants of this module only


@dataclass
class SealResult:
    hours: int = 0
    events: int = 0
    first_hour: dt.datetime | None = None
    sealed_until: dt.datetime | None = None  # end of the last hour sealed (by any run)
    chain_head: str = ""
    held_back_by: dict | None = None  # the open transaction that kept an hour unsealed

    def as_dict(self) -> dict:
        return {
            "hours": self.hours,
            "events": self.events,
            "firstHour": self.first_hour.isoformat() if self.first_hour else None,
            "sealedUntil": self.sealed_until.isoformat() if self.sealed_until else None,
            "chainHead": self.chain_head,
            "heldBackBy": self.held_back_by,
        }


def _clock_and_oldest_transaction(cursor) -> tuple[dt.datetime, dict | None]:
    """The database's clock, and the oldest transaction another session of this database
    has open (``pg_stat_activity`` shows the start of other sessions' transactions only for
    the roles the caller may see: the application's own, which are what write events)."""
    cursor.execute(
        """
        SELECT clock_timestamp(), a.pid, a.xact_start, a.application_name, a.state
        FROM (SELECT 1) AS one
        LEFT JOIN LATERAL (
            SELECT pid, xact_start, application_name, state FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid()
              AND backend_type = 'client backend' AND xact_start IS NOT NULL
            ORDER BY xact_start LIMIT 1
        ) AS a ON true
        """
    )
    now, pid, xact_start, application, state = cursor.fetchone()
    if pid is None:
        return now, None
    return now, {
        "pid": pid,
        "since": xact_start,
        "application": application or "",
        "state": state or "",
    }


def audit_seal(*, until: dt.datetime | None = None) -> SealResult:
    """Seal every closed hour not yet sealed, oldest first, up to ``until`` (default: the
    database's clock minus ``AUDIT_SEAL_GRACE_SECONDS``, so that an event stamped by a
    web process whose clock runs a little behind still lands in an open hour).

    Never an hour that could still receive events: not one that ends after the start of a
    transaction still open in another session (a long import stamps its events when it
    writes them but commits them later), so such a transaction holds the seal back until it
    ends. Two seals at once queue on an advisory lock; the second continues where the first
    stopped. Writes one ``audit.digests.sealed`` event when it sealed anything (a run every
    five minutes that finds its hour still open writes nothing).
    """
    with transaction.atomic(), connection.cursor() as cursor:
        wait_without_limit()  # a beat task or a command: waiting for the other seal is its job
        xact_lock(LockSpace.AUDIT_SEAL, 0)
        result = _seal_locked(cursor, until)
        if result.hours:
            audit_record(actor=None, action="audit.digests.sealed", data=result.as_dict())
    if result.held_back_by:
        logger.warning(
            "audit seal held back by an open transaction",
            extra={"held_back_by": result.held_back_by},
        )
    if result.hours:
        logger.info(
            "audit digests sealed",
            extra={"hours": result.hours, "events": result.events, "chain_head": result.chain_head},
        )
    return result


def _seal_locked(cursor, until: dt.datetime | None) -> SealResult:
    result = SealResult()
    now, oldest = _clock_and_oldest_transaction(cursor)
    grace = dt.timedelta(seconds=settings.AUDIT_SEAL_GRACE_SECONDS)
    limit = now - grace if until is None else min(until, now)
    if oldest is not None and oldest["since"] < limit:
        limit = oldest["since"]
        result.held_back_by = {**oldest, "since": oldest["since"].isoformat()}
    end = floor_hour(limit)

    cursor.execute(
        "SELECT hour_start, chain_hash FROM audit_auditdigest ORDER BY hour_start DESC LIMIT 1"
    )
    last = cursor.fetchone()
    if last is not None:
        start, prev_hash = last[0] + HOUR, bytes(last[1])
        result.sealed_until, result.chain_head = start, prev_hash.hex()
    else:
        cursor.execute("SELECT min(occurred_at) FROM audit_auditevent")
        first_event = cursor.fetchone()[0]
        start, prev_hash = (floor_hour(first_event) if first_event else None), GENESIS
    if start is None or start >= end:
        return result

    result.first_hour = start
    chunk_start = start
    while chunk_start < end:
        chunk_end = min(chunk_start + CHUNK_HOURS * HOUR, end)
        cursor.execute(hour_rows_sql(with_events=True), {"start": chunk_start, "end": chunk_end})
        digests = []
        for hour, count, first_id, last_id, events_hash, ids, hashes in cursor.fetchall():
            events_hash, hashes = bytes(events_hash), bytes(hashes)
            link = chain_hash(prev_hash, hour, count, events_hash)
            digests.append(
                (hour, count, first_id, last_id, ids, hashes, events_hash, prev_hash, link, FORMAT)
            )
            prev_hash = link
            result.hours += 1
            result.events += count
        cursor.executemany(
            "INSERT INTO audit_auditdigest (hour_start, event_count, first_id, last_id,"
            " event_ids, event_hashes, events_hash, prev_hash, chain_hash, format)"
            " VALUES (%s, %s, %s, %s, %s::bigint[], %s, %s, %s, %s, %s)",
            digests,
        )
        chunk_start = chunk_end
    result.sealed_until, result.chain_head = end, prev_hash.hex()
    return result
