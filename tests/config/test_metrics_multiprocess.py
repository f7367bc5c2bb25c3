"""/metrics with several gunicorn workers: with PROMETHEUS_MULTIPROC_DIR every scrape sums
all the workers' counts, whichever worker answers it, and keeps the scrape-time series."""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gates.conftest import free_port
from tests.support import PYTHON, ROOT, child_env, stop_process_group

REQUESTS = 60


def unauthenticated_count(text: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name == "attendance_api_errors":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels == {"code": "UNAUTHENTICATED"}:
                    return sample.value
    return 0.0


def start_gunicorn(tmp_path, **env) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = (tmp_path / "web.log").open("wb")
    process = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "config.wsgi", "--config", "config/gunicorn.py"],
        cwd=ROOT,
        env=child_env(
            GUNICORN_BIND=f"127.0.0.1:{port}",
            WEB_CONCURRENCY="2",
            DEBUG="false",
            ATTENDANCE_DATA_DIR=str(tmp_path / "data"),
            **env,
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / "web.log").read_text()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/livez", timeout=2).status_code == 200:
                return process, base
        time.sleep(0.1)
    pytest.fail("gunicorn did not start:\n" + (tmp_path / "web.log").read_text())


def scrape_after_requests(base: str) -> list[float]:
    with httpx.Client(base_url=base, timeout=10) as client:
        for _ in range(REQUESTS):  # new connections: spread over both workers
            assert httpx.get(f"{base}/api/attendance/me", timeout=10).status_code == 401
        return [unauthenticated_count(client.get("/metrics").text) for _ in range(10)]


@pytest.mark.integration
@pytest.mark.django_db
def test_every_scrape_sums_both_workers(tmp_path):
    directory = tmp_path / "metrics"
    (directory / "stale.db").parent.mkdir()
    (directory / "stale.db").write_bytes(b"left by an earlier run")
    process, base = start_gunicorn(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(directory))
    try:
        counts = scrape_after_requests(base)
        files = sorted(path.name for path in directory.iterdir())
        text = httpx.get(f"{base}/metrics").text
    finally:
        stop_process_group(process)
    assert "stale.db" not in files  # a new master starts from zero
    assert len([name for name in files if name.startswith("counter_")]) == 2, files
    assert counts == [REQUESTS] * 10
    # The scrape-time series are in the multiprocess registry too.
    assert "# TYPE attendance_gate_status gauge" in text
    assert "# TYPE attendance_import_queue_age_seconds gauge" in text


def _worker_series(url: str, family: str, labels: dict) -> float | None:
    with contextlib.suppress(httpx.HTTPError):
        for metric in text_string_to_metric_families(httpx.get(url, timeout=2).text):
            if metric.name == family:
                for sample in metric.samples:
                    if sample.name == f"{family}_total" and sample.labels == labels:
                        return sample.value
    return None


@pytest.mark.integration
def test_a_worker_serves_what_its_import_jobs_counted(
    transactional_db, organisation, make_person, settings, tmp_path
):
    """An import job counts in the worker's process: its pool writes to its own
    PROMETHEUS_MULTIPROC_DIR and the worker serves the sum at CELERY_METRICS_PORT."""
    from rest_framework.test import APIClient

    from tests.support import start_celery_worker

    importer = make_person(organisation, "employee", "importer", employee_no="MP-1")
    queue = f"test-worker-metrics-{uuid.uuid4().hex[:8]}"
    settings.IMPORT_TASK_QUEUE = queue
    port = free_port()
    worker = start_celery_worker(
        queue,
        log_path=tmp_path / "worker.log",
        IMPORT_TASK_QUEUE=queue,
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "worker-metrics"),
        CELERY_METRICS_PORT=str(port),
        CELERY_METRICS_ADDR="127.0.0.1",
        **({"REDIS_URL": settings.REDIS_URL} if settings.REDIS_URL else {}),
    )
    try:
        client = APIClient()
        client.force_authenticate(importer.user)
        rows = "\n".join(f"MP-1,,2025-03-{day:02d},09:00,18:00,,,," for day in range(3, 8))
        token = client.post("/api/attendance/import/prepare").json()["data"]["commitToken"]
        queued = client.post(
            "/api/attendance/import/commit-async",
            {
                "commitToken": token,
                "format": "standard",
                "csvText": "employee_no,name,work_date,first_in,last_out,status,"
                "work_minutes,late_minutes,early_leave_minutes\n" + rows,
            },
            format="json",
        )
        assert queued.status_code == 202, queued.content
        url = f"http://127.0.0.1:{port}/metrics"
        labels = {"format": "standard", "action": "insert"}
        deadline = time.monotonic() + 90
        inserted = None
        while time.monotonic() < deadline and inserted != 5:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            inserted = _worker_series(url, "attendance_import_rows", labels)
            time.sleep(0.2)
        assert inserted == 5, (tmp_path / "worker.log").read_text()
        audit = _worker_series(url, "attendance_audit_events", {"domain": "imports"})
        assert audit is not None and audit >= 1
    finally:
        stop_process_group(worker)
