"""The operational series read at scrape time: the import queue's age, each queue's worker
heartbeat (taken by a real worker) and the audit partitions' horizon."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from django.conf import settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from audit.services.partitions import audit_partition_health
from gates.metrics import HEARTBEAT_KEY
from gates.tasks import worker_heartbeat
from imports.models import ImportJob
from tests.support import start_celery_worker


def samples(client, family: str) -> dict[tuple, float]:
    text = client.get("/metrics").content.decode()
    for metric in text_string_to_metric_families(text):
        if metric.name == family:
            return {tuple(sorted(s.labels.items())): s.value for s in metric.samples}
    raise AssertionError(f"{family} is not exposed")


@pytest.mark.django_db
def test_the_queue_age_is_the_oldest_queued_jobs_wait(client, organisation):
    assert samples(client, "attendance_import_queue_age_seconds") == {(): 0.0}

    waiting = timezone.now() - dt.timedelta(minutes=10)
    ImportJob.objects.create(
        organisation=organisation, kind=ImportJob.Kind.COMMIT, heartbeat_at=waiting
    )
    ImportJob.objects.create(  # a running job is no longer waiting
        organisation=organisation,
        kind=ImportJob.Kind.COMMIT,
        status=ImportJob.Status.RUNNING,
        heartbeat_at=waiting - dt.timedelta(hours=1),
    )
    ImportJob.objects.create(organisation=organisation, kind=ImportJob.Kind.COMMIT)

    age = samples(client, "attendance_import_queue_age_seconds")[()]
    assert 600 <= age < 660


@pytest.mark.django_db
def test_the_audit_horizon_is_the_partitions_months_ahead(client):
    exposed = samples(client, "attendance_audit_partition_months_ahead")[()]
    assert exposed == audit_partition_health()["monthsAhead"] >= 2


@pytest.mark.integration
@pytest.mark.django_db
def test_a_worker_taking_the_heartbeat_makes_its_queue_young(client, settings_override, tmp_path):
    queue = settings_override
    heartbeat = "attendance_worker_heartbeat_age_seconds"
    from django.core.cache import cache

    cache.delete(HEARTBEAT_KEY.format(queue=queue))
    never = samples(client, heartbeat)[(("queue", queue),)]
    assert never == float("inf")

    extra = {"REDIS_URL": settings.REDIS_URL} if settings.REDIS_URL else {}
    worker = start_celery_worker(queue, log_path=tmp_path / "worker.log", **extra)
    try:
        worker_heartbeat.apply_async(args=[queue], queue=queue)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            age = samples(client, heartbeat)[(("queue", queue),)]
            if age < 60:
                break
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            time.sleep(0.2)
        assert age < 60, (tmp_path / "worker.log").read_text()
    finally:
        worker.terminate()
        worker.wait(timeout=30)


@pytest.fixture
def settings_override(settings):
    """The imports queue of this test: one no other test's worker takes."""
    settings.IMPORT_TASK_QUEUE = f"test-heartbeat-{uuid.uuid4().hex[:8]}"
    return settings.IMPORT_TASK_QUEUE
