"""Verifying the sealed hours of the audit log against the events still in the table.

Read-only. Every digest's chain link is checked (all of them, whatever the range asked
for: a digest edited anywhere breaks the chain there); the hours in the range are then
recomputed from the table and compared, first cheaply (count and events hash per hour, in
SQL), then, for an hour that differs, event by event against the ids and row hashes the
digest kept. What it can name (``Problem.kind``):

- ``edited``: the event is there but its row differs from the one sealed;
- ``deleted``: a sealed event is nowhere in the table;
- ``moved``: a sealed event is in the table at another time (re-dated, so re-ordered
  against its neighbours);
- ``inserted``: an event in a sealed hour that was not sealed with it (forged or
  back-dated), including before the first sealed hour or inside a pruned month;
- ``missing_hour``: a sealed hour with events of which the table holds none (its partition
  dropped, detached or truncated); its events are not listed one by one;
- ``missing_digest``: hours absent between two digests (digest rows deleted);
- ``chain_broken``: a digest whose previous hash is not its predecessor's chain hash
  (a digest before it edited, removed or re-ordered);
- ``digest_edited``: a digest whose own fields do not give its chain hash, or whose kept
  ids and hashes do not give its events hash.

Pruned months: retention drops whole partitions and keeps their digests. An hour is
*pruned*, and its events not compared, when its month has no partition, the month ends
before the oldest monthly partition left, and an ``audit.partitions.dropped`` event
records the drop of that month at least 30 days after its end (the floor
``audit_drop_partition`` enforces; a record claiming a more recent drop is not believed).
An hour after the last digest is simply not sealed yet, never an error.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass, field

from django.db import connection
from django.utils.translation import gettext as _

from audit.models import AuditEvent
from audit.services.digests import (
    GENESIS,
    HOUR,
    ROW_HASH_SQL,
    chain_hash,
    floor_hour,
    hour_label,
    hour_rows_sql,
)

# Problems listed in full up to this many (all are counted): a dropped year would
# otherwise list a line per event.
MAX_LISTED = 1000
DROP_FLOOR = dt.timedelta(days=30)
PARTITION_NAME = re.compile(r"^audit_auditevent_y(\d{4})m(\d{2})$")
CHUNK_HOURS = 24 * 7


@dataclass
class Problem:
    kind: str
    hour: dt.datetime | None
    detail: str
    event_id: int | None = None

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "hour": hour_label(self.hour) if self.hour else None,
            "eventId": self.event_id,
            "detail": self.detail,
        }


@dataclass
class VerifyReport:
    digests: int = 0
    checked_hours: int = 0
    checked_events: int = 0
    pruned_hours: int = 0
    first_hour: dt.datetime | None = None
    last_hour: dt.datetime | None = None
    chain_head: str = ""
    counts: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.counts

    def add(self, kind: str, hour, detail: str, event_id: int | None = None) -> None:
        self.counts[kind] += 1
        if len(self.problems) < MAX_LISTED:
            self.problems.append(Problem(kind, hour, detail, event_id))

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "digests": self.digests,
            "checkedHours": self.checked_hours,
            "checkedEvents": self.checked_events,
            "prunedHours": self.pruned_hours,
            "firstHour": hour_label(self.first_hour) if self.first_hour else None,
            "lastHour": hour_label(self.last_hour) if self.last_hour else None,
            "chainHead": self.chain_head,
            "counts": dict(sorted(self.counts.items())),
            "problems": [problem.as_dict() for problem in self.problems],
            "problemsListed": len(self.problems),
        }


def month_start(moment: dt.datetime) -> dt.date:
    return moment.astimezone(dt.UTC).date().replace(day=1)


def partition_name(month: dt.date) -> str:
    return f"audit_auditevent_y{month:%Y}m{month:%m}"


def monthly_partitions(cursor) -> dict[str, dt.date]:
    """The table's monthly partitions (name → first day), read from the catalog (which the
    application's role may read; it has no rights on the partitions themselves)."""
    cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'audit_auditevent'::regclass"
    )
    months = {}
    for (name,) in cursor.fetchall():
        match = PARTITION_NAME.match(name)
        if match:
            months[name] = dt.date(int(match[1]), int(match[2]), 1)
    return months


def _pruned_months(partitions: dict[str, dt.date]) -> set[dt.date]:
    oldest = min(partitions.values(), default=None)
    pruned = set()
    for event in AuditEvent.objects.filter(action="audit.partitions.dropped").only(
        "occurred_at", "data"
    ):
        try:
            start = dt.datetime.fromisoformat(event.data["from"])
            end = dt.datetime.fromisoformat(event.data["to"])
        except (KeyError, TypeError, ValueError):
            continue
        month = month_start(start)
        believable = end <= event.occurred_at - DROP_FLOOR
        if (
            believable
            and partition_name(month) not in partitions
            and (oldest is None or month < oldest)
        ):
            pruned.add(month)
    return pruned


def _check_chain(cursor, report: VerifyReport) -> list[tuple]:
    """Every digest's link, in hour order; returns the headers (hour, count, stored events
    hash) for the comparison with the table."""
    cursor.execute(
        "SELECT hour_start, event_count, events_hash, prev_hash, chain_hash,"
        " sha256(event_hashes) = events_hash AND cardinality(event_ids) = event_count"
        " AND first_id IS NOT DISTINCT FROM event_ids[1]"
        " AND last_id IS NOT DISTINCT FROM event_ids[cardinality(event_ids)]"
        " FROM audit_auditdigest ORDER BY hour_start"
    )
    headers = []
    expected_prev, previous_hour = GENESIS, None
    for hour, count, events_hash, prev_hash, stored_chain, consistent in cursor.fetchall():
        events_hash, prev_hash, stored_chain = (
            bytes(events_hash),
            bytes(prev_hash),
            bytes(stored_chain),
        )
        if previous_hour is not None and hour != previous_hour + HOUR:
            gap = int((hour - previous_hour) / HOUR) - 1
            report.add(
                "missing_digest",
                previous_hour + HOUR,
                _("%(gap)s hour(s) from %(hour)s have no digest (digest rows deleted)")
                % {"gap": gap, "hour": hour_label(previous_hour + HOUR)},
            )
        if prev_hash != expected_prev:
            report.add(
                "chain_broken",
                hour,
                _(
                    "its previous hash is not the chain hash of the digest before it"
                    " (a digest before it was edited, removed or re-ordered)"
                ),
            )
        if chain_hash(prev_hash, hour, count, events_hash) != stored_chain or not consistent:
            report.add(
                "digest_edited",
                hour,
                _("the digest's own fields do not give its hashes (the digest row was edited)"),
            )
        expected_prev, previous_hour = stored_chain, hour
        headers.append((hour, count, events_hash))
    report.digests = len(headers)
    if headers:
        report.first_hour, report.last_hour = headers[0][0], headers[-1][0]
        report.chain_head = expected_prev.hex()
    return headers


def _rows_of_hour(cursor, hour) -> dict:
    cursor.execute(
        "SELECT id, occurred_at FROM audit_auditevent WHERE occurred_at >= %s AND occurred_at < %s",
        [hour, hour + HOUR],
    )
    return {event_id: (hour, occurred_at) for event_id, occurred_at in cursor.fetchall()}


def _compare_hour(cursor, hour, report, missing: dict, extra: dict) -> None:
    """One hour whose count or hash differs: event by event."""
    cursor.execute(
        "SELECT event_ids, event_hashes FROM audit_auditdigest WHERE hour_start = %s", [hour]
    )
    ids, hashes = cursor.fetchone()
    hashes = bytes(hashes)
    sealed = {event_id: hashes[32 * i : 32 * i + 32] for i, event_id in enumerate(ids)}
    cursor.execute(
        f"SELECT e.id, e.occurred_at, {ROW_HASH_SQL} FROM audit_auditevent e"  # noqa: S608
        " WHERE e.occurred_at >= %s AND e.occurred_at < %s ORDER BY e.id",
        [hour, hour + HOUR],
    )
    present = cursor.fetchall()
    seen = set()
    for event_id, occurred_at, row_hash in present:
        seen.add(event_id)
        if event_id not in sealed:
            extra[event_id] = (hour, occurred_at)
        elif bytes(row_hash) != sealed[event_id]:
            report.add(
                "edited",
                hour,
                _("event %(id)s differs from the row sealed") % {"id": event_id},
                event_id,
            )
    for event_id in sealed.keys() - seen:
        missing[event_id] = hour


def _resolve_missing_and_extra(cursor, report, missing: dict, extra: dict, first_hour) -> None:
    if missing:
        cursor.execute(
            "SELECT id, occurred_at FROM audit_auditevent WHERE id = ANY(%s)", [list(missing)]
        )
        found = dict(cursor.fetchall())
        for event_id, hour in sorted(missing.items()):
            if event_id in found:
                extra.pop(event_id, None)
                report.add(
                    "moved",
                    hour,
                    _("event %(id)s was sealed in this hour and now says %(when)s")
                    % {"id": event_id, "when": found[event_id].astimezone(dt.UTC).isoformat()},
                    event_id,
                )
            else:
                report.add("deleted", hour, _("event %(id)s is gone") % {"id": event_id}, event_id)
    for event_id, (hour, occurred_at) in sorted(extra.items()):
        message = (
            _("event %(id)s at %(when)s is older than the first sealed hour (forged or back-dated)")
            if hour < first_hour
            else _("event %(id)s at %(when)s was not sealed with this hour (forged or back-dated)")
        )
        when = occurred_at.astimezone(dt.UTC).isoformat()
        report.add("inserted", hour, message % {"id": event_id, "when": when}, event_id)


def _month_has_rows(cursor, month: dt.date) -> bool:
    lower = dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC)
    upper = dt.datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=dt.UTC)
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM audit_auditevent"
        " WHERE occurred_at >= %s AND occurred_at < %s)",
        [lower, upper],
    )
    return cursor.fetchone()[0]


def audit_verify(
    *, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> VerifyReport:
    """Verify the chain of every digest and the events of the sealed hours in
    ``[start, end)`` (default: all sealed hours). See the module's docstring."""
    report = VerifyReport()
    with connection.cursor() as cursor:
        headers = _check_chain(cursor, report)
        if not headers:
            return report
        partitions = monthly_partitions(cursor)
        pruned = _pruned_months(partitions)
        first_hour = headers[0][0]
        start = floor_hour(start) if start else first_hour
        end = floor_hour(end + HOUR - dt.timedelta(microseconds=1)) if end else None
        in_range = [h for h in headers if h[0] >= start and (end is None or h[0] < end)]

        if start <= first_hour:
            cursor.execute(
                "SELECT id, occurred_at FROM audit_auditevent WHERE occurred_at < %s"
                " ORDER BY occurred_at LIMIT %s",
                [first_hour, MAX_LISTED],
            )
            # Named after the moved ones are told apart (an event re-dated that far back).
            extra = {event_id: (floor_hour(at), at) for event_id, at in cursor.fetchall()}
        else:
            extra = {}

        missing, month_has_rows = {}, {}
        for index in range(0, len(in_range), CHUNK_HOURS):
            chunk = in_range[index : index + CHUNK_HOURS]
            # Sealed hours are contiguous, so a chunk is one range of hours.
            cursor.execute(
                hour_rows_sql(with_events=False),
                {"start": chunk[0][0], "end": chunk[-1][0] + HOUR},
            )
            table = {row[0]: row for row in cursor.fetchall()}
            for hour, count, events_hash in chunk:
                actual_count, _first, _last, actual_hash = table[hour][1:5]
                if month_start(hour) in pruned:
                    # Its sealed events went with their partition; any row there now is new.
                    report.pruned_hours += 1
                    if actual_count:
                        extra.update(_rows_of_hour(cursor, hour))
                    continue
                report.checked_hours += 1
                report.checked_events += actual_count
                if actual_count == count and bytes(actual_hash) == events_hash:
                    continue
                if count and not actual_count:
                    # A whole month gone (dropped, or truncated: its partition is empty) is
                    # named by the hour, not event by event; an hour emptied inside a month
                    # that still has rows is compared event by event (deleted or moved).
                    month = month_start(hour)
                    name = partition_name(month)
                    if name not in partitions:
                        where = _(
                            "partition %(name)s does not exist and no drop of it is recorded"
                        ) % {"name": name}
                    elif not month_has_rows.setdefault(month, _month_has_rows(cursor, month)):
                        where = _("partition %(name)s holds none of its rows (truncated)") % {
                            "name": name
                        }
                    else:
                        where = ""
                    if where:
                        report.add(
                            "missing_hour",
                            hour,
                            _("%(count)s sealed event(s) are missing: %(where)s")
                            % {"count": count, "where": where},
                        )
                        continue
                _compare_hour(cursor, hour, report, missing, extra)
        _resolve_missing_and_extra(cursor, report, missing, extra, first_hour)
    return report
