"""The smoke and strict gates against a live deployment (gunicorn and a real worker on this
test's database), and their failures by really breaking things: a refused token, a stopped
worker, a proxy that answers 502 while the job is polled."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from django.core.management import call_command
from django.utils import timezone

from attendance import services
from attendance.choices import RecordStatus, RequestState
from attendance.models import AdjustmentRequest, ApiToken, AttendanceRecord, Employee
from gates.choices import FailureKind, OwnerRole, RunStatus
from gates.models import GateRun
from gates.services import run_gate
from gates.services.smoke import (
    FILE_PREFIX,
    IMPORT_ROWS,
    REQUESTER_EMPLOYEE_NO,
    issue_requester_token,
    revoke_requester_token,
)
from imports.models import ImportBatch

STEPS = [
    "livez",
    "readyz",
    "me",
    "records",
    "cleanup",
    "import-template",
    "import-upload",
    "import-preview",
    "import-commit",
    "import-retry",
    "import-batch",
    "import-export",
    "import-rollback",
    "correction-requester",
    "correction-request",
    "correction-approve",
    "correction-adjusted",
    "audit-events",
    "audit-export",
]
JOB_POLL = "/api/attendance/import/jobs/"


def _smoke(stack, gate="smoke", **options) -> GateRun:
    options = {"base_url": stack.base_url, "token": stack.token, **options}
    run = run_gate(gate, options=options)
    run.refresh_from_db()
    return run


def _names(run: GateRun) -> list[str]:
    return [check["name"] for check in run.evidence["checks"]]


def _explain(run: GateRun, stack) -> str:
    return f"{run.status} at {run.failed_check}: {run.remediation}\n{run.log}\n{stack.tail()}"


@pytest.mark.integration
def test_smoke_passes_end_to_end_and_leaves_only_the_correction(live_stack):
    run = _smoke(live_stack)

    assert run.status == RunStatus.PASS, _explain(run, live_stack)
    assert run.evidence["endMarker"] == "gate-complete"
    assert _names(run) == ["config", *STEPS]
    assert all(check["ok"] for check in run.evidence["checks"])
    figures = run.summary
    assert figures["rows"] == IMPORT_ROWS and figures["pollRetries"] == 0
    assert set(figures["stepsMs"]) == set(STEPS) - {"cleanup"}
    assert run.evidence["polling"]["retries"] == 0
    assert "token" not in run.options and run.base_url == live_stack.base_url

    # The import left nothing: its batch rolled back, its employees gone.
    batch = ImportBatch.objects.get(pk=figures["batchId"])
    assert batch.status == ImportBatch.Status.ROLLED_BACK
    assert not Employee.objects.filter(employee_no__startswith="GS-").exists()
    # The correction stays, on the synthetic employee, whose run token is revoked.
    request = AdjustmentRequest.objects.get(pk=figures["correctionId"])
    assert request.state == RequestState.APPROVED
    assert request.employee.employee_no == REQUESTER_EMPLOYEE_NO
    assert request.decided_by == live_stack.admin.user
    day = AttendanceRecord.objects.get(employee=request.employee, work_date=request.work_date)
    assert day.status == RecordStatus.ADJUSTED
    assert not ApiToken.objects.filter(user=request.employee.user, revoked_at__isnull=True)


@pytest.mark.integration
def test_strict_passes_only_after_two_smokes_in_a_row(live_stack):
    run = _smoke(live_stack, gate="strict")

    assert run.status == RunStatus.PASS, _explain(run, live_stack)
    assert run.evidence["endMarker"] == "gate-complete"
    names = _names(run)
    assert names == [
        "config",
        *(f"first: {step}" for step in STEPS),
        *(f"second: {step}" for step in STEPS),
    ]
    first, second = run.summary["first"], run.summary["second"]
    assert run.summary["passes"] == 2
    assert first["batchId"] != second["batchId"]
    # Consecutive smokes correct different days.
    assert first["correctionDay"] != second["correctionDay"]
    assert AdjustmentRequest.objects.filter(state=RequestState.APPROVED).count() == 2


@pytest.mark.django_db
def test_a_smoke_without_address_or_token_fails_as_config():
    run = run_gate("smoke", options={})
    assert (run.status, run.failed_check, run.failure_kind) == (
        RunStatus.FAIL,
        "config",
        FailureKind.CONFIG,
    )
    assert run.evidence["checks"][0]["detail"] == "Missing: --base-url, --token."
    assert run.evidence["endMarker"] is None


@pytest.mark.integration
def test_a_refused_token_fails_the_smoke_as_config(live_stack):
    run = _smoke(live_stack, token="att_not-a-token-of-this-deployment")

    assert run.status == RunStatus.FAIL
    assert (run.failed_check, run.failure_kind, run.remediation_owner) == (
        "me",
        FailureKind.CONFIG,
        OwnerRole.OPS,
    )
    assert "issue_token" in run.remediation
    failed = run.evidence["checks"][-1]
    assert failed["evidence"]["status"] == 401 and failed["evidence"]["code"] == "UNAUTHENTICATED"
    assert _names(run) == ["config", "livez", "readyz", "me"]  # stopped there


@pytest.mark.integration
def test_a_stopped_worker_fails_the_smoke_when_its_job_never_runs(live_stack, settings):
    settings.GATES_POLL_TIMEOUT_SECONDS = 2
    os.killpg(live_stack.worker.pid, signal.SIGTERM)
    live_stack.worker.wait(timeout=20)

    run = _smoke(live_stack)

    assert run.status == RunStatus.FAIL
    assert (run.failed_check, run.failure_kind, run.remediation_owner) == (
        "import-commit",
        FailureKind.DEPENDENCY,
        OwnerRole.OPS,
    )
    failed = run.evidence["checks"][-1]
    assert "still queued after 2 s" in failed["detail"]
    assert "worker" in run.remediation
    assert run.summary["pollRetries"] == 0  # it answered; nobody ran the job


class FaultyRelay:
    """An HTTP relay in front of the live stack, as a proxy would be, that answers the job
    polls with the given faults (status, headers) first, or with 502 forever (``always``),
    and forwards everything else."""

    def __init__(self, upstream: str, faults=(), *, always: bool = False):
        self.upstream = upstream
        self.faults = list(faults)
        self.always = always
        self.polls: list[tuple[float, int]] = []  # (monotonic time, status answered)
        self._lock = threading.Lock()
        # One client for every forward: a new one per request costs an SSL context.
        self.client = httpx.Client(base_url=upstream, timeout=60)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _RelayHandler)
        self.server.daemon_threads = True
        self.server.relay = self
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.client.close()

    def fault_for(self, path: str):
        if not path.startswith(JOB_POLL):
            return None
        with self._lock:
            if self.always:
                fault = (502, {})
            elif self.faults:
                fault = self.faults.pop(0)
            else:
                fault = None
            self.polls.append((time.monotonic(), fault[0] if fault else 200))
        return fault

    @property
    def faults_answered(self) -> int:
        return sum(1 for _, status in self.polls if status != 200)


HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "host",
}


class _RelayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one segment: Nagle's algorithm would hold the body back
    # until the client's delayed ACK of the headers (~40 ms per request).
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # the test's output stays readable
        pass

    def _relay(self):
        relay: FaultyRelay = self.server.relay
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault = relay.fault_for(self.path)
        if fault is not None:
            status, headers = fault
            payload = b"<html><body>Bad gateway</body></html>"
            self.send_response(status)
            for name, value in {"Content-Type": "text/html", **headers}.items():
                self.send_header(name, value)
        else:
            forwarded = {
                name: value
                for name, value in self.headers.items()
                if name.lower() not in HOP_BY_HOP
            }
            forwarded["Accept-Encoding"] = "identity"
            answer = relay.client.request(self.command, self.path, content=body, headers=forwarded)
            payload = answer.content
            self.send_response(answer.status_code)
            for name, value in answer.headers.multi_items():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _relay


@pytest.mark.integration
def test_transient_answers_while_polling_are_retried_and_counted(live_stack):
    faults = [(502, {}), (429, {"Retry-After": "1"}), (503, {})]
    with FaultyRelay(live_stack.base_url, faults) as relay:
        run = _smoke(live_stack, base_url=relay.base_url)

    assert run.status == RunStatus.PASS, _explain(run, live_stack)
    assert relay.faults_answered == 3
    assert run.summary["pollRetries"] == 3
    assert run.evidence["polling"]["retries"] == 3
    # The 429's Retry-After was honoured before the next poll.
    (after_429, _), (next_poll, _) = relay.polls[1], relay.polls[2]
    assert next_poll - after_429 >= 0.95


@pytest.mark.integration
def test_a_proxy_that_keeps_answering_502_while_polling_fails_the_smoke(live_stack, settings):
    settings.GATES_POLL_RETRIES = 2
    with FaultyRelay(live_stack.base_url, always=True) as relay:
        run = _smoke(live_stack, base_url=relay.base_url)

    assert run.status == RunStatus.FAIL
    assert (run.failed_check, run.failure_kind, run.remediation_owner) == (
        "import-commit",
        FailureKind.DEPENDENCY,
        OwnerRole.OPS,
    )
    assert relay.faults_answered == 3  # the first answer and its two retries, no more
    assert run.summary["pollRetries"] == 2
    failed = run.evidence["checks"][-1]
    assert failed["evidence"]["status"] == 502
    assert "after 2 transient answers retried" in failed["detail"]
    assert "502" in run.remediation
    assert run.evidence["endMarker"] is None


def _wait_for(find, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"no {what} in {timeout:.0f} s")


@pytest.mark.integration
def test_the_next_smoke_cleans_up_what_a_stopped_one_left(live_stack, settings):
    """A smoke stopped while polling leaves its job to the worker, which commits the batch;
    one stopped between asking and approving leaves a pending request. The next smoke
    rolls such a batch back and cancels such a request (both older than LEFTOVER_AGE)."""
    settings.GATES_POLL_RETRIES = 0
    with FaultyRelay(live_stack.base_url, always=True) as relay:
        stopped = _smoke(live_stack, base_url=relay.base_url)
    assert stopped.failed_check == "import-commit"
    leftover = _wait_for(
        lambda: ImportBatch.objects.filter(filename__startswith=FILE_PREFIX).first(),
        "batch committed by the worker",
    )
    an_hour_ago = timezone.now() - dt.timedelta(hours=1)
    ImportBatch.objects.filter(pk=leftover.pk).update(created_at=an_hour_ago)
    # The synthetic requester's pending request on the very day the smoke picks next (its
    # second request: two days back).
    organisation = live_stack.admin.organisation
    token, _, admin = issue_requester_token(live_stack.token, organisation_id=organisation.pk)
    revoke_requester_token(token, actor=admin)
    requester = Employee.objects.get(employee_no=REQUESTER_EMPLOYEE_NO)
    day = timezone.localdate(timezone=organisation.tz) - dt.timedelta(days=2)
    pending = services.adjustment_request_create(
        actor=requester.user, employee=requester, work_date=day, reason="stopped", status="leave"
    )
    AdjustmentRequest.objects.filter(pk=pending.pk).update(created_at=an_hour_ago)

    run = _smoke(live_stack)

    assert run.status == RunStatus.PASS, _explain(run, live_stack)
    checks = {check["name"]: check for check in run.evidence["checks"]}
    assert checks["cleanup"]["evidence"] == {"rolledBack": [leftover.pk]}
    assert checks["correction-requester"]["evidence"]["cancelledStale"] == [pending.pk]
    assert run.summary["correctionDay"] == day.isoformat()
    # The leftover named, beside the escalation's "no webhook configured" (the stopped run
    # opened one, this run closes it).
    assert any(str(leftover.pk) in warning for warning in run.evidence["warnings"])
    leftover.refresh_from_db()
    pending.refresh_from_db()
    assert leftover.status == ImportBatch.Status.ROLLED_BACK
    assert pending.state == RequestState.CANCELLED
    assert not Employee.objects.filter(employee_no__startswith="GS-").exists()


@pytest.mark.integration
def test_manage_py_gates_smoke_exits_0_on_pass_and_1_on_fail(live_stack, make_person, capsys):
    employee = make_person(live_stack.admin.organisation, "employee")
    _, requester_token = services.api_token_issue(actor=None, user=employee.user, name="t")

    with pytest.raises(SystemExit) as passed:
        call_command(
            "gates",
            "smoke",
            "--base-url",
            live_stack.base_url,
            "--token",
            live_stack.token,
            "--requester-token",
            requester_token,
        )
    output = capsys.readouterr().out
    assert passed.value.code == 0, output + live_stack.tail()
    assert "smoke run #" in output and "PASS" in output
    run = GateRun.objects.latest("pk")
    assert run.options == {"base_url": live_stack.base_url}  # neither token stored
    requester = next(c for c in run.evidence["checks"] if c["name"] == "correction-requester")
    assert requester["evidence"]["source"] == "option"
    assert not Employee.objects.filter(employee_no=REQUESTER_EMPLOYEE_NO).exists()

    with pytest.raises(SystemExit) as failed:
        call_command("gates", "smoke", "--base-url", live_stack.base_url, "--token", "att_no")
    assert failed.value.code == 1
    assert "me (config)" in capsys.readouterr().out
