"""The metrics gate and the series it requires: it passes against a live deployment's
/metrics, fails against one without the application's series, with a series of the wrong
shape, or answering 500; the gate status is read from the runs at scrape time (drills
excluded, a database outage never breaking the scrape); and imports and API errors really
count."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import subprocess
import threading

import httpx
import pytest
from django.utils import timezone
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.parser import text_string_to_metric_families

from gates.choices import FailureKind, RunStatus
from gates.models import GateRun
from gates.services import run_gate
from gates.services.metrics import REQUIRED
from imports import services
from imports.models import ImportJob
from tests.imports.conftest import IMPORT_API, prepare, upload
from tests.support import PYTHON, ROOT, child_env, data, error

HEADER = "employee_no,name,work_date,first_in,last_out,status\n"
REQUIRED_NAMES = [series.name for series in REQUIRED]


def checks(run: GateRun) -> dict[str, dict]:
    return {check["name"]: check for check in run.evidence["checks"]}


def families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def finished_run(gate: str, status: str, *, minutes_ago: int, drill: bool = False) -> GateRun:
    from gates.services.registry import gate_spec

    started = timezone.now() - dt.timedelta(minutes=minutes_ago)
    return GateRun.objects.create(
        gate=gate,
        priority=gate_spec(gate).priority,
        status=status,
        drill=drill,
        started_at=started,
        finished_at=None if status == RunStatus.RUNNING else started + dt.timedelta(seconds=3),
    )


@pytest.fixture
def metrics_server():
    """metrics_server(status, body) → the base URL of a local server answering every GET
    with that status and body."""
    servers = []

    def start(status: int, body: str) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# --- the gate ------------------------------------------------------------------------------


@pytest.mark.integration
def test_the_gate_passes_against_a_live_deployments_metrics(live_stack):
    finished_run("preflight", RunStatus.PASS, minutes_ago=5)
    # An API error answered by the deployment: a sample of attendance_api_errors_total.
    assert httpx.get(f"{live_stack.base_url}/api/attendance/me").status_code == 401

    run = run_gate("metrics", options={"base_url": live_stack.base_url})

    assert run.status == RunStatus.PASS, (run.failed_check, run.remediation)
    found = checks(run)
    assert all(found[f"series {name}"]["ok"] for name in REQUIRED_NAMES)
    assert found["series attendance_api_errors_total"]["evidence"]["samples"] >= 1
    assert found["series attendance_gate_status"]["evidence"]["samples"] == 1
    # Declared without a sample yet (nothing imported on this deployment) is enough.
    assert found["series attendance_import_rows_total"]["evidence"]["samples"] == 0
    assert run.summary["missing"] == [] and run.summary["appFamilies"] >= len(REQUIRED)


@pytest.mark.django_db
def test_a_metrics_page_without_the_applications_series_fails(metrics_server):
    foreign = CollectorRegistry()
    Gauge("python_info", "Another program's series", ["version"], registry=foreign).labels(
        version="3.11"
    ).set(1)
    base_url = metrics_server(200, generate_latest(foreign).decode())

    run = run_gate("metrics", options={"base_url": base_url})

    assert run.status == RunStatus.FAIL
    assert (run.failed_check, run.failure_kind) == (
        "series attendance_import_rows_total",
        FailureKind.DEFECT,
    )
    assert checks(run)["scrape"]["ok"]
    assert run.summary["missing"] == REQUIRED_NAMES
    assert "is not declared" in checks(run)["series attendance_api_errors_total"]["detail"]
    assert run.evidence["endMarker"] == "gate-complete"


@pytest.mark.django_db
def test_a_series_of_the_wrong_shape_fails_and_a_declared_empty_one_passes(metrics_server):
    page = CollectorRegistry()
    for series in REQUIRED:
        if series.name in ("attendance_api_errors_total", "attendance_gate_status"):
            continue
        kind = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}[series.type]
        kind(series.name, "declared, never counted", list(series.labels), registry=page)
    Counter(
        "attendance_api_errors_total", "by status, not by code", ["status"], registry=page
    ).labels(status="401").inc()
    Gauge("attendance_gate_status", "not 0 or 1", ["gate", "priority"], registry=page).labels(
        gate="smoke", priority="P0"
    ).set(2)
    base_url = metrics_server(200, generate_latest(page).decode())

    run = run_gate("metrics", options={"base_url": base_url})

    assert run.status == RunStatus.FAIL
    assert run.summary["missing"] == ["attendance_api_errors_total", "attendance_gate_status"]
    found = checks(run)
    assert (
        "has the labels status, not code" in found["series attendance_api_errors_total"]["detail"]
    )
    assert "neither 0 nor 1" in found["series attendance_gate_status"]["detail"]
    assert "no sample yet" in found["series attendance_import_rows_total"]["detail"]


@pytest.mark.django_db
def test_a_metrics_endpoint_answering_500_fails_the_scrape(metrics_server):
    run = run_gate("metrics", options={"base_url": metrics_server(500, "boom")})
    assert run.status == RunStatus.FAIL
    assert (run.failed_check, run.failure_kind) == ("scrape", FailureKind.DEFECT)
    assert "answered 500" in checks(run)["scrape"]["detail"]
    assert not any(name.startswith("series ") for name in checks(run))


@pytest.mark.django_db
def test_a_page_that_is_not_prometheus_text_fails_the_scrape(metrics_server):
    run = run_gate("metrics", options={"base_url": metrics_server(200, "<html>{{{ oops")})
    assert (run.status, run.failed_check) == (RunStatus.FAIL, "scrape")
    assert "not Prometheus text" in checks(run)["scrape"]["detail"]


@pytest.mark.django_db
def test_without_a_deployment_the_gate_fails_as_configuration():
    run = run_gate("metrics", options={})
    assert (run.status, run.failed_check, run.failure_kind) == (
        RunStatus.FAIL,
        "target",
        FailureKind.CONFIG,
    )


# --- the gate status series ----------------------------------------------------------------


@pytest.mark.django_db
def test_the_gate_status_is_the_latest_non_drill_run_of_each_gate(client):
    finished_run("preflight", RunStatus.FAIL, minutes_ago=60)
    preflight = finished_run("preflight", RunStatus.PASS, minutes_ago=30)
    finished_run("preflight", RunStatus.FAIL, minutes_ago=10, drill=True)  # not counted
    finished_run("preflight", RunStatus.RUNNING, minutes_ago=1)  # not finished
    finished_run("smoke", RunStatus.PASS, minutes_ago=60)
    smoke = finished_run("smoke", RunStatus.ERROR, minutes_ago=20)
    finished_run("perf", RunStatus.PASS, minutes_ago=5, drill=True)  # only drills: no series

    exposed = families(client.get("/metrics").content.decode())

    status = {
        (sample.labels["gate"], sample.labels["priority"]): sample.value
        for sample in exposed["attendance_gate_status"].samples
    }
    assert status == {("preflight", "P0"): 1.0, ("smoke", "P0"): 0.0}
    last_run = {
        sample.labels["gate"]: sample.value
        for sample in exposed["attendance_gate_last_run_timestamp_seconds"].samples
    }
    assert last_run == {
        "preflight": pytest.approx(preflight.finished_at.timestamp()),
        "smoke": pytest.approx(smoke.finished_at.timestamp()),
    }


@pytest.mark.integration
def test_a_database_outage_leaves_metrics_answering_with_the_gate_families_declared():
    script = (
        "import django, json; django.setup();"
        "from django.test import Client; r = Client().get('/metrics');"
        "print(json.dumps([r.status_code, r.content.decode()]))"
    )
    env = child_env(DATABASE_URL="postgres://postgres@127.0.0.1:1/nowhere", DB_CONNECT_TIMEOUT="2")
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    result = subprocess.run(
        [PYTHON, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-3000:]
    status, text = json.loads(result.stdout.strip().splitlines()[-1])
    assert status == 200
    exposed = families(text)
    assert exposed["attendance_gate_status"].samples == []
    assert exposed["attendance_gate_last_run_timestamp_seconds"].type == "gauge"
    assert "the gate status series could not be read" in result.stderr


# --- the application's own series ----------------------------------------------------------


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def importer(api, people, settings, tmp_path):
    settings.IMPORT_STORAGE_DIR = tmp_path / "uploads"
    return api(people["importer"])


@pytest.mark.django_db
def test_an_import_through_the_api_counts_its_rows_and_durations(
    importer, people, django_capture_on_commit_callbacks
):
    employee_no = people["employee"].employee_no
    rows = "".join(f"{employee_no},E,2026-03-0{day},09:00,18:00,\n" for day in (2, 3, 4))
    rows += "NOBODY-1,N,2026-03-02,09:00,18:00,\n"  # an unknown employee: skipped
    rows += f"{employee_no},E,2026-03-05,25:61,18:00,\n"  # no such time: invalid
    uploaded = upload(importer, (HEADER + rows).encode())
    rows_of = "attendance_import_rows_total"
    runs_of = "attendance_import_duration_seconds_count"
    before = {
        "insert": sample(rows_of, format="standard", action="insert"),
        "skip": sample(rows_of, format="standard", action="skip"),
        "invalid": sample(rows_of, format="standard", action="invalid"),
        "preview": sample(runs_of, format="standard", phase="preview"),
        "commit": sample(runs_of, format="standard", phase="commit"),
        "rollback": sample(runs_of, format="standard", phase="rollback"),
    }

    data(importer.post(f"{IMPORT_API}/preview", {"fileId": uploaded["fileId"]}, format="json"))
    assert sample(runs_of, format="standard", phase="preview") == before["preview"] + 1
    assert sample(rows_of, format="standard", action="insert") == before["insert"]  # a preview

    with django_capture_on_commit_callbacks(execute=True):
        result = data(
            importer.post(
                f"{IMPORT_API}/commit",
                {"fileId": uploaded["fileId"], "commitToken": prepare(importer)},
                format="json",
            )
        )
    stats = result["stats"]
    assert (stats["insert"], stats["skip"], stats["invalid"]) == (3, 1, 1)
    assert sample(rows_of, format="standard", action="insert") == before["insert"] + 3
    assert sample(rows_of, format="standard", action="skip") == before["skip"] + 1
    assert sample(rows_of, format="standard", action="invalid") == before["invalid"] + 1
    assert sample(runs_of, format="standard", phase="commit") == before["commit"] + 1
    assert sample("attendance_import_duration_seconds_sum", format="standard", phase="commit") > 0

    with django_capture_on_commit_callbacks(execute=True):
        data(importer.post(f"{IMPORT_API}/rollback/{result['batchId']}"))
    assert sample(runs_of, format="standard", phase="rollback") == before["rollback"] + 1


@pytest.mark.django_db
def test_a_commit_refused_or_a_job_that_fails_counts_as_an_import_failure(
    importer, people, settings
):
    uploaded = upload(
        importer,
        (HEADER + f"{people['employee'].employee_no},E,2026-03-02,09:00,18:00,\n").encode(),
    )
    failures = "attendance_import_failures_total"
    before = sample(failures, format="standard", code="COMMIT_TOKEN_REQUIRED")
    error(
        importer.post(f"{IMPORT_API}/commit", {"fileId": uploaded["fileId"]}, format="json"),
        400,
        "COMMIT_TOKEN_REQUIRED",
    )
    # The request named no format: the upload's detected one labels the failure.
    assert sample(failures, format="standard", code="COMMIT_TOKEN_REQUIRED") == before + 1

    inline = sample(failures, format="unknown", code="UNSUPPORTED_FORMAT")
    error(
        importer.post(
            f"{IMPORT_API}/commit",
            {"csvText": "no,header\n1,2\n", "commitToken": prepare(importer)},
            format="json",
        ),
        415,
        "UNSUPPORTED_FORMAT",
    )
    assert sample(failures, format="unknown", code="UNSUPPORTED_FORMAT") == inline + 1

    # A queued job that has used up its starts fails (WORKER_LOST): counted by the job.
    queued = data(
        importer.post(
            f"{IMPORT_API}/commit-async",
            {"fileId": uploaded["fileId"], "commitToken": prepare(importer)},
            format="json",
        ),
        202,
    )
    ImportJob.objects.filter(pk=queued["job"]["id"]).update(
        attempts=settings.IMPORT_JOB_MAX_ATTEMPTS
    )
    lost = sample(failures, format="standard", code="WORKER_LOST")
    job = services.import_job_run(job_id=queued["job"]["id"])
    assert (job.status, job.error["code"]) == ("failed", "WORKER_LOST")
    assert sample(failures, format="standard", code="WORKER_LOST") == lost + 1


@pytest.mark.django_db
def test_every_error_envelope_answered_is_counted_by_its_code(client, api, people):
    unauthenticated = sample("attendance_api_errors_total", code="UNAUTHENTICATED")
    not_found = sample("attendance_api_errors_total", code="NOT_FOUND")
    forbidden = sample("attendance_api_errors_total", code="FORBIDDEN")

    error(client.get("/api/attendance/me"), 401, "UNAUTHENTICATED")
    error(client.get("/api/no-such-endpoint"), 404, "NOT_FOUND")  # outside DRF's handler
    error(api(people["employee"]).get("/api/attendance-admin/users"), 403, "FORBIDDEN")
    assert client.get("/livez").status_code == 200  # not an error: not counted

    assert sample("attendance_api_errors_total", code="UNAUTHENTICATED") == unauthenticated + 1
    assert sample("attendance_api_errors_total", code="NOT_FOUND") == not_found + 1
    assert sample("attendance_api_errors_total", code="FORBIDDEN") == forbidden + 1
    exposed = families(client.get("/metrics").content.decode())
    codes = {s.labels["code"] for s in exposed["attendance_api_errors"].samples}
    assert {"UNAUTHENTICATED", "NOT_FOUND", "FORBIDDEN"} <= codes
