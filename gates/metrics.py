"""The series read at scrape time, so every web process (gunicorn worker) answers the same
and no worker must expose anything.

Operations (:class:`OperationsCollector`): how long the oldest import job has waited for a
worker, how long ago each queue's worker last took beat's heartbeat, and how many future
months of audit partitions are ready. Each is one cheap query; a failing one leaves its
family without a sample.

Gates (:class:`GateStatusCollector`):

- ``attendance_gate_status{gate,priority}``: 1 when the latest finished non-drill run of the
  gate passed, 0 when it failed or errored;
- ``attendance_gate_last_run_timestamp_seconds{gate,priority}``: when that run finished
  (the AttendanceP0GateStale alert subtracts it from ``time()``).

Drills never count. One query per scrape; a database error leaves both families without
samples (declared, so the alerts on them see "no data", not a renamed series) and never
breaks the scrape.

With prometheus_client's multiprocess mode /metrics reads a registry of its own, not
``REGISTRY``: whoever wires that mode (issue 11) registers :class:`GateStatusCollector` there
too: ``register(registry)`` registers both collectors."""

from __future__ import annotations

import logging
import time

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gates.choices import RunStatus

logger = logging.getLogger("attendance.metrics")

HEARTBEAT_KEY = "worker-heartbeat:{queue}"


def heartbeat_queues() -> list[str]:
    """The queues workers take: beat's default one and the imports queue."""
    from django.conf import settings

    return sorted({settings.CELERY_TASK_DEFAULT_QUEUE, settings.IMPORT_TASK_QUEUE})


def record_heartbeat(queue: str) -> None:
    from django.core.cache import cache

    cache.set(HEARTBEAT_KEY.format(queue=queue), time.time(), timeout=None)


class OperationsCollector(Collector):
    def describe(self):
        """The families without reading them (registering must not query the database)."""
        return list(self._families())

    def collect(self):
        queue_age, heartbeat, horizon = self._families()
        self._sample("queue age", lambda: queue_age.add_metric([], _oldest_queued_job_age()))
        self._sample("heartbeats", lambda: _heartbeat_ages(heartbeat))
        self._sample("audit horizon", lambda: horizon.add_metric([], _months_ahead()))
        yield from (queue_age, heartbeat, horizon)

    @staticmethod
    def _families():
        queue_age = GaugeMetricFamily(
            "attendance_import_queue_age_seconds",
            "Seconds the oldest queued import job has waited for a worker (0: none waits)",
        )
        heartbeat = GaugeMetricFamily(
            "attendance_worker_heartbeat_age_seconds",
            "Seconds since a worker last took beat's heartbeat task from the queue",
            labels=["queue"],
        )
        horizon = GaugeMetricFamily(
            "attendance_audit_partition_months_ahead",
            "Consecutive future months with an audit partition ready",
        )
        return queue_age, heartbeat, horizon

    @staticmethod
    def _sample(name: str, probe) -> None:
        try:
            probe()
        except Exception:  # a scrape must never fail for one series
            logger.warning("the %s series could not be read", name, exc_info=True)


def _oldest_queued_job_age() -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(EXTRACT(EPOCH FROM clock_timestamp()"
            " - min(COALESCE(heartbeat_at, created_at))), 0)"
            " FROM imports_importjob WHERE status = 'queued'"
        )
        return float(cursor.fetchone()[0])


def _heartbeat_ages(family: GaugeMetricFamily) -> None:
    from django.core.cache import cache

    queues = heartbeat_queues()
    seen = cache.get_many([HEARTBEAT_KEY.format(queue=queue) for queue in queues])
    now = time.time()
    for queue in queues:
        stamp = seen.get(HEARTBEAT_KEY.format(queue=queue))
        # Never seen: as old as can be said, so the alert fires on a worker that never came.
        family.add_metric([queue], now - stamp if stamp else float("inf"))


def _months_ahead() -> int:
    from audit.services.partitions import audit_partition_health

    return audit_partition_health()["monthsAhead"]


class GateStatusCollector(Collector):
    def describe(self):
        """The families without reading them (registering must not query the database)."""
        return list(self._families())

    def collect(self):
        status, last_run = self._families()
        try:
            runs = latest_finished_runs()
        except Exception:  # a scrape must never fail for the gates' series
            logger.warning("the gate status series could not be read", exc_info=True)
            runs = []
        for gate, priority, run_status, finished_at in runs:
            status.add_metric([gate, priority], 1.0 if run_status == RunStatus.PASS else 0.0)
            if finished_at is not None:
                last_run.add_metric([gate, priority], finished_at.timestamp())
        yield status
        yield last_run

    @staticmethod
    def _families():
        status = GaugeMetricFamily(
            "attendance_gate_status",
            "Latest non-drill run of each gate: 1 passed, 0 failed or errored",
            labels=["gate", "priority"],
        )
        last_run = GaugeMetricFamily(
            "attendance_gate_last_run_timestamp_seconds",
            "When the latest non-drill run of each gate finished (Unix time)",
            labels=["gate", "priority"],
        )
        return status, last_run


def latest_finished_runs() -> list[tuple]:
    """(gate, priority, status, finished_at) of each known gate's latest finished non-drill
    run: one DISTINCT ON query over the (gate, drill, -started_at) index, reading none of
    the runs' evidence or log."""
    from gates.models import GateRun
    from gates.services.registry import GATES

    return list(
        GateRun.objects.filter(drill=False, gate__in=list(GATES))
        .exclude(status=RunStatus.RUNNING)
        .order_by("gate", "-started_at", "-id")
        .distinct("gate")
        .values_list("gate", "priority", "status", "finished_at")
    )


_registered: set[int] = set()


def register(registry=None) -> None:
    """Once per registry and process (AppConfig.ready may run twice in some test set-ups)."""
    if registry is None:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    if id(registry) in _registered:
        return
    registry.register(OperationsCollector())
    registry.register(GateStatusCollector())
    _registered.add(id(registry))
