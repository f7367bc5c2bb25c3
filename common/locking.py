"""Every advisory lock of the application, in typed key spaces, taken in one order.

PostgreSQL's two-integer advisory locks: the first integer is the key space, the second the
key inside it. No client string (an idempotency key, say) can collide with an internal
lock, because each space only ever holds one kind of key; the single-bigint form, whose keys
share one space, is not used.

Order. A transaction that takes more than one lock takes them top to bottom, so two
transactions never wait for each other in a cycle:

1. ``IMPORT_JOB``: a worker's claim on one job, for its session (try-lock: a second
   delivery backs off; the reaper asks whether anyone holds it);
2. ``IMPORT_KEY``: one idempotency key of an organisation (try-lock);
3. ``IMPORT``: the organisation's imports, exclusive: every commit and every rollback;
4. row locks: the batch row, day records, an employee ``FOR NO KEY UPDATE`` (a punch
   serialising itself with the same employee's punches without blocking the key-share locks
   that the records' foreign-key checks of a running import take on that employee).

Waits. Every connection starts with ``lock_timeout`` = ``DB_LOCK_TIMEOUT`` (settings), so a
web request that meets a lock held by a 20-second import waits that long at most, then gets
``BUSY`` with ``Retry-After``. Work that may wait (an import job queued behind another) lifts
the bound for its own transaction with :func:`wait_without_limit`.
"""

from __future__ import annotations

import enum
import hashlib

from django.db import OperationalError, connection
from django.utils.translation import gettext_lazy

from common.db_errors import LOCK_NOT_AVAILABLE, sqlstate_of
from common.exceptions import Busy


class LockSpace(enum.IntEnum):
    IMPORT = 1  # an organisation's imports (key: organisation id)
    IMPORT_KEY = 2  # an idempotency key (key: hash of organisation id and key)
    IMPORT_JOB = 3  # an import job (key: hash of the job id)
    AUDIT_SEAL = 4  # the audit digest seal, one at a time (key: 0); taken alone
    GATE_ESCALATION = 5  # a gate's escalation, opened/updated/closed by one run at a time
    # (key: hash of the gate's name); taken alone, before the escalation's row


def lock_key(space: LockSpace, *parts) -> tuple[int, int]:
    """The two integers of a lock. A small integer key is used as it is (no collisions at all);
    anything else is hashed into the space's 32 bits, where a collision could only make two
    unrelated keys of the same kind wait for each other, never skip a lock."""
    if len(parts) == 1 and isinstance(parts[0], int) and -(2**31) <= parts[0] < 2**31:
        return int(space), parts[0]
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).digest()
    return int(space), int.from_bytes(digest[:4], "big", signed=True)


def try_xact_lock(space: LockSpace, *parts) -> bool:
    """Take the lock for the rest of the transaction if nobody holds it; never waits."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", lock_key(space, *parts))
        return cursor.fetchone()[0]


def xact_lock(space: LockSpace, *parts, busy_message: str | None = None) -> None:
    """Take the lock for the rest of the transaction, waiting at most the transaction's
    ``lock_timeout``; past it, :class:`Busy` (the transaction is aborted: let it unwind)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock_key(space, *parts))
    except OperationalError as exc:
        if sqlstate_of(exc) == LOCK_NOT_AVAILABLE:
            raise Busy(busy_message, reason="lock_timeout", retry_after_seconds=2) from exc
        raise


def try_session_lock(space: LockSpace, *parts) -> bool:
    """Take the lock for the connection's session if nobody holds it; never waits. For a
    claim that must outlive transactions (a job's run); release with :func:`session_unlock`.
    A dead process's session ends, and its locks with it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", lock_key(space, *parts))
        return cursor.fetchone()[0]


def session_unlock(space: LockSpace, *parts) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", lock_key(space, *parts))


def is_free(space: LockSpace, *parts) -> bool:
    """Whether no session, this one included, holds the lock right now. Read from pg_locks
    rather than by trying the lock: a session's advisory locks are re-entrant, so a try from
    a session that holds it would succeed and call a held lock free."""
    classid, objid = lock_key(space, *parts)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT NOT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid = %s AND objid = %s AND objsubid = 2 AND granted)",
            # pg_locks shows the two keys as unsigned 32-bit oids.
            [classid & 0xFFFFFFFF, objid & 0xFFFFFFFF],
        )
        return cursor.fetchone()[0]


def wait_without_limit() -> None:
    """Lift ``lock_timeout`` for the rest of the current transaction: for workers and
    commands, whose waits are part of the job (a commit queued behind another import)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', '0', true)")


IMPORT_BUSY = gettext_lazy(
    "Another import or rollback of your organisation is running; retry when it has finished."
)


def import_lock(organisation_id: int, *, wait: bool) -> None:
    """The organisation's import lock (commit and rollback): one at a time, so a batch's
    pre-images are never another batch's half-written rows and rollbacks run in order.
    ``wait``: jobs and commands wait their turn; a web request is told at once (``BUSY``),
    rather than held for the seconds another import may still take."""
    if wait:
        wait_without_limit()  # the rest of such a transaction may wait its turn too
        xact_lock(LockSpace.IMPORT, organisation_id, busy_message=IMPORT_BUSY)
    elif not try_xact_lock(LockSpace.IMPORT, organisation_id):
        raise Busy(IMPORT_BUSY, reason="import_running", retry_after_seconds=5)
