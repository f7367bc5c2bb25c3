"""Readiness checks shared by ``/readyz`` and the preflight gate (gates/services/preflight/)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str = ""
    elapsed_ms: float = 0.0
    evidence: dict = field(default_factory=dict)
    # A warning check (``blocking=False``) is reported but does not make /readyz answer
    # 503: the process can serve while it fails, an operator must still act (the preflight
    # gate fails on it).
    blocking: bool = True

    def as_dict(self) -> dict:
        return {"ok": self.ok, "detail": self.detail, "elapsedMs": round(self.elapsed_ms, 1)}


def _timed(name: str, probe) -> CheckResult:
    started = time.perf_counter()
    try:
        detail = probe() or "ok"
        ok = True
    except Exception as exc:  # a readiness probe reports any failure, it never raises
        ok, detail = False, f"{type(exc).__name__}: {exc}".strip()[:300]
    return CheckResult(name, ok, detail, (time.perf_counter() - started) * 1000)


def check_database() -> CheckResult:
    def probe():
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()

    return _timed("database", probe)


def pending_migrations() -> list[str]:
    """``app.name`` of every migration not applied to the default database, in plan order."""
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


def check_migrations() -> CheckResult:
    evidence = {}

    def probe():
        pending = pending_migrations()
        evidence["pending"] = pending
        if pending:
            raise RuntimeError(f"{len(pending)} migration(s) not applied: {', '.join(pending[:5])}")

    result = _timed("migrations", probe)
    result.evidence = evidence
    return result


def broker_connection():
    """A kombu connection to the broker the settings name now. The Celery app read its
    configuration once, at start-up; the URL and transport options are passed from the
    settings so that what is probed is what is configured (and a test may override it)."""
    from django.conf import settings

    from config.celery import app

    return app.connection_for_write(
        url=settings.CELERY_BROKER_URL,
        transport_options=getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {},
    )


def check_broker(timeout: float = 2.0) -> CheckResult:
    def probe():
        with broker_connection() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
            return connection.as_uri()

    return _timed("broker", probe)


def check_audit_partitions() -> CheckResult:
    """DEFAULT empty and at least two future months ready (audit/services/partitions.py).
    A warning: events still land (in DEFAULT, at worst), but DEFAULT's rows block the
    creation of their month until repaired, and a month without a partition lands there."""
    evidence = {}

    def probe():
        from audit.services.partitions import audit_partition_health

        evidence.update(audit_partition_health())
        if not evidence["ok"]:
            raise RuntimeError(evidence["detail"])

    result = _timed("audit_partitions", probe)
    result.evidence, result.blocking = evidence, False
    return result


def readiness() -> list[CheckResult]:
    database = check_database()
    migrations = (
        check_migrations() if database.ok else CheckResult("migrations", False, "database down")
    )
    results = [database, migrations, check_broker()]
    if migrations.ok:  # the probe needs the migrated functions
        results.append(check_audit_partitions())
    return results
