"""What a database error means for the client.

Four answers, decided by SQLSTATE and never by message text (messages follow the server's
``lc_messages`` and change between PostgreSQL versions; codes do not):

* ``BUSY`` (409, retry): a deadlock, a serialisation failure, a lock not had in time
  (``lock_timeout`` or ``NOWAIT``). Nothing was changed; the same request later succeeds.
* ``DB_NOT_READY`` (503): the database is unreachable, refuses connections, was shut down
  under us, or lacks a table or column a migration adds.
* an integrity error of a constraint registered with :func:`register_constraint`: that
  constraint's own error (a pending request for the day already exists, …).
* ``None`` for anything else, including integrity errors nobody registered (a NOT NULL or
  CHECK violation is a bug, not the client's conflict): the handler answers
  ``INTERNAL_ERROR`` and logs it with the request id.

Write services that may lose a deadlock or a serialisation race retry themselves with
:func:`retry_transient`; lock timeouts are not retried (see :func:`is_retryable`).
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from django.db import Error as DjangoError
from django.db import IntegrityError as DjangoIntegrityError
from django.db import InterfaceError as DjangoInterfaceError
from django.db import OperationalError as DjangoOperationalError
from django.db import transaction
from django.utils.translation import gettext

from common.exceptions import ApplicationError, Busy, DatabaseNotReady, RequestStateConflict

logger = logging.getLogger(__name__)

DEADLOCK_DETECTED = "40P01"
SERIALIZATION_FAILURE = "40001"
LOCK_NOT_AVAILABLE = "55P03"
UNDEFINED_TABLE = "42P01"
UNDEFINED_COLUMN = "42703"

RETRYABLE_SQLSTATES = frozenset({DEADLOCK_DETECTED, SERIALIZATION_FAILURE})

# Class 08 (connection exception) is matched by its prefix. The others: the server shut the
# session down (57P01 admin, 57P02 crash, 57P03 starting or stopping, 57P04 database
# dropped, 57P05 idle session timeout), has no connection slot left (53300), or refused us
# at connect (3D000 no such database, 28000/28P01 authentication): from the client's side
# all of them are "the database is not there for this request".
_UNREACHABLE_SQLSTATES = frozenset(
    {"57P01", "57P02", "57P03", "57P04", "57P05", "53300", "3D000", "28000", "28P01"}
)
# Both also appear for a typo in raw SQL; the schema being behind the code is the likelier
# reason in a deployed app, and the one an operator can act on.
_SCHEMA_MISSING_SQLSTATES = frozenset({UNDEFINED_TABLE, UNDEFINED_COLUMN})

_DATABASE_ERRORS = (DjangoError, psycopg.Error)
_INTEGRITY_ERRORS = (DjangoIntegrityError, psycopg.IntegrityError)


def _busy(sqlstate: str | None) -> Busy | None:
    if sqlstate == DEADLOCK_DETECTED:
        return Busy(
            gettext("Another change to the same data was in progress (deadlock); retry."),
            reason="deadlock",
        )
    if sqlstate == SERIALIZATION_FAILURE:
        return Busy(
            gettext(
                "Another change to the same data was committed first (serialisation failure); "
                "retry."
            ),
            reason="serialization_failure",
        )
    if sqlstate == LOCK_NOT_AVAILABLE:
        # The holder is still working, unlike after a deadlock: give it longer.
        return Busy(
            gettext(
                "The data is locked by another change that is still in progress; retry shortly."
            ),
            reason="lock_timeout",
            retry_after_seconds=2,
        )
    return None


# --- reading the driver's error -------------------------------------------------------------


def _driver_errors(exc: BaseException):
    """The exception and the causes Django's wrapper hangs the driver's error on."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 4:
        if isinstance(current, _DATABASE_ERRORS):
            yield current
        current = current.__cause__
        seen += 1


def sqlstate_of(exc: BaseException) -> str | None:
    """The five-character SQLSTATE of a database error (Django-wrapped or psycopg's own);
    None for client-side failures such as a refused connection."""
    for error in _driver_errors(exc):
        state = getattr(error, "sqlstate", None)
        if state:
            return state
    return None


def constraint_name_of(exc: BaseException) -> str | None:
    """The constraint (or unique index) an integrity error violated; None for NOT NULL."""
    for error in _driver_errors(exc):
        diag = getattr(error, "diag", None)
        name = getattr(diag, "constraint_name", None) if diag is not None else None
        if name:
            return name
    return None


def is_retryable(exc: BaseException) -> bool:
    """Whether running the whole transaction again can succeed: a deadlock victim or a
    serialisation failure. A lock timeout is not: its lock is still held, so an immediate
    retry waits the full timeout again, multiplying the client's wait."""
    return isinstance(exc, _DATABASE_ERRORS) and sqlstate_of(exc) in RETRYABLE_SQLSTATES


def _is_unreachable(exc: BaseException, sqlstate: str | None) -> bool:
    if isinstance(exc, DjangoInterfaceError | psycopg.InterfaceError):
        return True
    if sqlstate is None:
        # psycopg raises an OperationalError without SQLSTATE only from the client side:
        # connect failed, the server went away, the connection is closed.
        return isinstance(exc, DjangoOperationalError | psycopg.OperationalError)
    return sqlstate.startswith("08") or sqlstate in _UNREACHABLE_SQLSTATES


# --- constraints --------------------------------------------------------------------------

ErrorFactory = Callable[[], ApplicationError]
_constraint_errors: dict[str, ErrorFactory] = {}


def register_constraint(name: str, make_error: ErrorFactory) -> None:
    """Answer a violation of constraint (or unique index) ``name`` with ``make_error()``.

    Only for constraints whose violation is the client's doing (a concurrent duplicate the
    service's own check could not see). Django requires constraint names to be unique
    across models, so the name alone identifies the table. A name registered twice with
    different factories is a mistake between two modules and refused.
    """
    existing = _constraint_errors.get(name)
    if existing is not None and existing is not make_error:
        raise ValueError(f"Constraint {name!r} already has an error registered.")
    _constraint_errors[name] = make_error


def registered_constraints() -> frozenset[str]:
    return frozenset(_constraint_errors)


def constraint_error(exc: BaseException) -> ApplicationError | None:
    """The registered error for an integrity error's constraint; None when unregistered
    (or when ``exc`` is not an integrity error)."""
    if not isinstance(exc, _INTEGRITY_ERRORS):
        return None
    make_error = _constraint_errors.get(constraint_name_of(exc) or "")
    return make_error() if make_error is not None else None


register_constraint(
    "one_pending_request_per_day",
    lambda: RequestStateConflict(gettext("A pending request for this day already exists.")),
)


# --- the one entry point ---------------------------------------------------------------


def classify(exc: BaseException) -> ApplicationError | None:
    """The application error a database exception stands for; None when it stands for a
    bug (the caller answers INTERNAL_ERROR) or is no database exception at all."""
    if not isinstance(exc, _DATABASE_ERRORS):
        return None
    sqlstate = sqlstate_of(exc)
    busy = _busy(sqlstate)
    if busy is not None:
        return busy
    if _is_unreachable(exc, sqlstate):
        return DatabaseNotReady()
    if sqlstate in _SCHEMA_MISSING_SQLSTATES:
        return DatabaseNotReady(gettext("The database schema is not migrated."))
    return constraint_error(exc)


# --- retrying write services -----------------------------------------------------------

F = TypeVar("F", bound=Callable)


def retry_transient(
    attempts: int = 3,
    *,
    base_delay: float = 0.05,
    max_delay: float = 0.5,
    using: str | None = None,
) -> Callable[[F], F]:
    """Run a write service again when it lost a deadlock or a serialisation race.

    The wrapped function must be one whole transaction (``@transaction.atomic`` under this
    decorator): a failed attempt then left nothing behind, and its ``on_commit`` callbacks
    were dropped with it. Python side effects of a failed attempt (a metric, a cache write)
    do happen again. Called inside an outer atomic block, or on a connection with
    autocommit off, it runs once: the error aborted a transaction that belongs to the
    caller, whose locks and snapshot a retry would only meet again. After the last attempt
    the error propagates, and the handler answers BUSY.

    Between attempts it sleeps a random time up to ``base_delay * 2**(n-1)`` (capped at
    ``max_delay``): two transactions that deadlocked and retried at the same instant would
    meet again.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            connection = transaction.get_connection(using)
            in_callers_transaction = connection.in_atomic_block or (
                connection.connection is not None and not connection.autocommit
            )
            if in_callers_transaction:
                return func(*args, **kwargs)
            for attempt in range(1, attempts):
                try:
                    return func(*args, **kwargs)
                except _DATABASE_ERRORS as exc:
                    if not is_retryable(exc):
                        raise
                    delay = random.uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1)))
                    logger.info(
                        "%s: %s (SQLSTATE %s), attempt %d of %d; retrying in %.0f ms",
                        func.__qualname__,
                        type(exc).__name__,
                        sqlstate_of(exc),
                        attempt,
                        attempts,
                        delay * 1000,
                    )
                    time.sleep(delay)
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
