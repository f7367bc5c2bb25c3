"""Operational series read at scrape time, so every web process answers the same and no
worker must expose anything: how long the oldest import job has waited for a worker, how
long ago each queue's worker last took beat's heartbeat, and how many future months of audit
partitions are ready. Each is one cheap query; a failing one leaves its family without a
sample (the alert on it then goes quiet, the 5xx and readiness ones do not)."""

from __future__ import annotations

import logging
import time

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger("attendance.metrics")
HEARTBEAT_KEY = "worker-heartbeat:{queue}"


def heartbeat_queues() -> list[str]:
    """The queues workers take: beat's default one and the imports queue."""
    from django.conf import settings

    default = getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")
    return sorted({default, settings.IMPORT_TASK_QUEUE})


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


_registered = False


def register() -> None:
    """Once per process (AppConfig.ready may run twice in some test set-ups)."""
    global _registered
    if _registered:
        return
    from prometheus_client import REGISTRY

    REGISTRY.register(OperationsCollector())
    _registered = True
