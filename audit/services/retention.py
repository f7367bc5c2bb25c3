"""Retention: whole monthly partitions older than the retention are dropped, their digests
kept.

The effective retention is the larger of ``AUDIT_RETENTION_DAYS`` and the largest
``audit_retention_days`` of any organisation: an organisation may ask to keep its events
longer, never shorter (the table is shared, so the longest wish wins for everyone). A
partition goes when its upper bound is at or before midnight UTC of ``today - retention``.

The drop itself is ``audit_drop_partition`` (SQL, SECURITY DEFINER, the application's role
owns nothing), which refuses DEFAULT, anything that is not a monthly partition, anything
ending after the floor given *or after now - 30 days whatever floor it is given* (so the
application's role cannot be used to erase recent evidence), and a partition with events
not yet sealed. Each drop is recorded (``audit.partitions.dropped``: name, bounds, event
count and the digests kept), which is what lets ``audit_verify`` tell a pruned month from a
dropped one, and still check the chain across it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from attendance.models import Organisation
from audit.services.record import audit_record
from audit.services.verification import monthly_partitions

logger = logging.getLogger(__name__)


def effective_retention_days() -> int:
    largest = Organisation.objects.aggregate(days=Max("audit_retention_days"))["days"] or 0
    return max(settings.AUDIT_RETENTION_DAYS, largest)


def _next_month(month: dt.date) -> dt.date:
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


@dataclass
class PrunedPartition:
    name: str
    start: dt.datetime
    end: dt.datetime
    events: int
    digests: int
    sealed_events: int
    last_chain_hash: str
    dropped: bool = False
    refused: str = ""

    def as_dict(self) -> dict:
        return {
            "partition": self.name,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "events": self.events,
            "digestsKept": self.digests,
            "sealedEvents": self.sealed_events,
            "lastChainHash": self.last_chain_hash,
            "dropped": self.dropped,
            "refused": self.refused,
        }


@dataclass
class PruneResult:
    retention_days: int
    floor: dt.datetime
    dry_run: bool
    partitions: list[PrunedPartition] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "retentionDays": self.retention_days,
            "floor": self.floor.isoformat(),
            "dryRun": self.dry_run,
            "partitions": [partition.as_dict() for partition in self.partitions],
        }


def _describe(cursor, name: str, month: dt.date) -> PrunedPartition:
    start, end = _utc_midnight(month), _utc_midnight(_next_month(month))
    # Through the parent (the application's role has no rights on partitions): the range
    # prunes to this one partition.
    cursor.execute(
        "SELECT count(*) FROM audit_auditevent WHERE occurred_at >= %s AND occurred_at < %s",
        [start, end],
    )
    events = cursor.fetchone()[0]
    cursor.execute(
        "SELECT count(*), coalesce(sum(event_count), 0),"
        " (SELECT encode(chain_hash, 'hex') FROM audit_auditdigest"
        "  WHERE hour_start >= %(start)s AND hour_start < %(end)s"
        "  ORDER BY hour_start DESC LIMIT 1)"
        " FROM audit_auditdigest WHERE hour_start >= %(start)s AND hour_start < %(end)s",
        {"start": start, "end": end},
    )
    digests, sealed_events, last_chain = cursor.fetchone()
    return PrunedPartition(name, start, end, events, digests, sealed_events, last_chain or "")


def audit_prune(*, dry_run: bool = False, today: dt.date | None = None) -> PruneResult:
    """Drop every monthly partition that ended at or before ``today - retention`` (or, with
    ``dry_run``, say which and what they hold). One transaction per partition: one refused
    (not sealed yet, a lock not had in time) is reported and does not stop the others."""
    today = today or timezone.now().astimezone(dt.UTC).date()
    days = effective_retention_days()
    floor = _utc_midnight(today - dt.timedelta(days=days))
    result = PruneResult(retention_days=days, floor=floor, dry_run=dry_run)
    with connection.cursor() as cursor:
        partitions = monthly_partitions(cursor)
    expired = sorted(
        (month, name)
        for name, month in partitions.items()
        if _utc_midnight(_next_month(month)) <= floor
    )
    for month, name in expired:
        with connection.cursor() as cursor:
            partition = _describe(cursor, name, month)
        result.partitions.append(partition)
        if dry_run:
            continue
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT audit_drop_partition(%s, %s)", [name, floor])
                partition.events = cursor.fetchone()[0]
                partition.dropped = True
                audit_record(
                    actor=None,
                    action="audit.partitions.dropped",
                    target_type="audit.partition",
                    target_id=name,
                    data={**partition.as_dict(), "retentionDays": days},
                )
        except DatabaseError as exc:
            partition.dropped = False  # the transaction rolled back: nothing was dropped
            partition.refused = str(exc).strip().splitlines()[0][:300]
            logger.warning("audit partition %s not dropped: %s", name, partition.refused)
    if result.partitions and not dry_run:
        logger.info("audit retention ran", extra={"result": result.as_dict()})
    return result
