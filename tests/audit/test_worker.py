"""The beat task that keeps audit partitions ready, run by a real Celery worker."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from django.db import connection

from audit.tasks import ensure_audit_partitions
from tests.support import start_celery_worker


def _partition_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return cursor.fetchone()[0]


@pytest.mark.integration
@pytest.mark.xdist_group("celery-worker")
def test_a_real_worker_creates_future_audit_partitions(transactional_db):
    months_ahead = 14
    target = dt.date.today().replace(day=1)
    index = target.year * 12 + target.month - 1 + months_ahead
    name = f"audit_auditevent_y{index // 12}m{index % 12 + 1:02d}"
    if _partition_exists(name):  # left by an earlier run against the same database
        with connection.cursor() as cursor:
            cursor.execute(f'DROP TABLE "{name}"')
    queue = f"test-{uuid.uuid4().hex[:8]}"
    worker = start_celery_worker(queue, AUDIT_PARTITION_MONTHS_AHEAD=str(months_ahead))
    try:
        ensure_audit_partitions.apply_async(queue=queue)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _partition_exists(name):
            assert worker.poll() is None, "the worker exited"
            time.sleep(0.3)
        assert _partition_exists(name), "the worker did not run the task within 60 s"
    finally:
        worker.terminate()
        worker.wait(timeout=30)
