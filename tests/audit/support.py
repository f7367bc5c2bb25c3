"""Helpers for tests that play DBA or attacker on the audit tables."""

from __future__ import annotations

from tests.support import owner_connection


def purge_audit_tables() -> None:
    """Empty the audit tables as the owner, bypassing their triggers (a superuser's
    ``session_replication_role = replica``): what Django's flush did for them between
    transactional tests before they became unmanaged. Test databases only."""
    with owner_connection() as owner:
        owner.execute("SET lock_timeout = '30s'")
        owner.execute("SET session_replication_role = replica")
        owner.execute("TRUNCATE audit_auditevent, audit_auditdigest")


def commits_outside_the_test_transaction(request) -> bool:
    """Whether the test ran with transactional_db (or a live server): what it wrote is
    committed, and stays after it unless removed."""
    marker = request.node.get_closest_marker("django_db")
    return bool(
        {"transactional_db", "live_server"} & set(request.fixturenames)
        or (marker is not None and marker.kwargs.get("transaction"))
    )
