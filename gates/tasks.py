"""The gates beat runs: the ones listed in GATES_SCHEDULED, every GATES_SCHEDULE_HOURS (below
the 36 h after which a P0 or P1 run is stale). Gates that test a deployment over HTTP
(smoke, strict, perf, metrics) run only when GATES_BASE_URL is set, with GATES_TOKEN."""

import logging

from celery import shared_task
from django.conf import settings

from gates.services import run_gate

logger = logging.getLogger("attendance.gates")
OVER_HTTP = {"smoke", "strict", "perf", "perf-scale", "metrics"}


@shared_task(name="gates.tasks.run_scheduled_gates")
def run_scheduled_gates() -> dict:
    results = {}
    for name in settings.GATES_SCHEDULED:
        options = {}
        if name in OVER_HTTP:
            if not settings.GATES_BASE_URL:
                logger.warning("gate %s is scheduled but GATES_BASE_URL is not set", name)
                results[name] = "skipped: GATES_BASE_URL not set"
                continue
            options = {"base_url": settings.GATES_BASE_URL, "token": settings.GATES_TOKEN}
        run = run_gate(name, options=options, trigger="beat")
        results[name] = run.status
    return results


@shared_task(name="gates.tasks.worker_heartbeat")
def worker_heartbeat(queue: str) -> None:
    """Sent by beat to each queue every minute: the worker that takes it proves the queue is
    served (attendance_worker_heartbeat_age_seconds, the AttendanceWorkerDown alert)."""
    from gates.metrics import record_heartbeat

    record_heartbeat(queue)
