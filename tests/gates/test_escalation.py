"""Escalations: a failing P0/P1 run opens one (after GATES_ESCALATE_AFTER_FAILURES failing
runs in a row) or updates the open one, the next passing run closes it, never two open for a
gate (also when two runs finish together), and every change is told to the webhooks: a real
HTTP receiver on 127.0.0.1 records the Slack- and DingTalk-style bodies, answers 500 to prove
the bounded retries, and nothing is sent for a drill.

The gates run through ``run_gate`` with the real gates' names and test runners in their
place (nothing real runs: no HTTP to a deployment, no worker)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from gates.choices import EscalationStatus, FailureKind, OwnerRole, RunStatus
from gates.models import GateEscalation, GateNotification, GateRun
from gates.services import registry, run_gate
from gates.services.escalation import after_run
from gates.services.runs import CheckFailed
from gates.services.webhooks import (
    DINGTALK,
    SLACK,
    Webhook,
    WebhookConfigError,
    configured_webhooks,
    mask_url,
    parse_webhook,
)

SECRET = "T0001/B0002/xoxb-very-secret"


# --- runners standing in for the real gates --------------------------------------------


def passing(ctx):
    ctx.check("probe", lambda: "fine")
    ctx.figures["phases"] = ctx.options.get("phases") or {}
    ctx.figures["regressions"] = ctx.options.get("regressions") or []
    if "phases" in ctx.options:
        ctx.evidence["baseline"] = {"regressions": ctx.figures["regressions"]}
    ctx.finish()


def failing(ctx):
    def broken():
        raise CheckFailed("the database refused the connection", kind=FailureKind.DEPENDENCY)

    ctx.check("health", broken, remediation="Start the database.", owner=OwnerRole.OPS, stop=True)
    ctx.finish()


def crashing(ctx):
    raise RuntimeError("the runner itself broke")


def use_runner(monkeypatch, gate: str, runner) -> None:
    """``gate`` (a real gate's name and priority) runs ``runner`` instead of its own."""
    spec = dataclasses.replace(registry.GATES[gate], runner=f"{__name__}:{runner.__name__}")
    monkeypatch.setitem(registry.GATES, gate, spec)


def set_age(run: GateRun, hours: float) -> GateRun:
    """Make ``run`` look as if it finished ``hours`` ago (started two seconds before)."""
    finished = timezone.now() - dt.timedelta(hours=hours)
    GateRun.objects.filter(pk=run.pk).update(
        started_at=finished - dt.timedelta(seconds=2), finished_at=finished
    )
    run.refresh_from_db()
    return run


# --- a real webhook receiver -------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        # Recorded before answering: once the sender has its answer, the body is here.
        self.server.received.append(
            {
                "path": self.path,
                "contentType": self.headers.get("Content-Type"),
                "body": json.loads(raw),
            }
        )
        status, body = self.server.answers.get(self.path.partition("?")[0], (200, b"ok"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output clean
        pass


class Receiver:
    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
        self.server.received, self.server.answers = [], {}
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, path: str, status: int, body: bytes | dict = b"ok") -> None:
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        self.server.answers[path] = (status, body)

    @property
    def received(self) -> list[dict]:
        return self.server.received

    def bodies(self, path: str) -> list[dict]:
        return [item["body"] for item in self.received if item["path"].startswith(path)]


@pytest.fixture
def receiver():
    receiver = Receiver()
    receiver.thread.start()
    receiver.answer("/dingtalk/robot/send", 200, {"errcode": 0, "errmsg": "ok"})
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def webhooks(settings, receiver):
    """A Slack- and a DingTalk-style webhook on the receiver; escalate at the first failure."""
    settings.GATES_WEBHOOKS = [
        f"slack={receiver.base}/slack/services/{SECRET}",
        f"dingtalk={receiver.base}/dingtalk/robot/send?access_token={SECRET}",
    ]
    settings.GATES_WEBHOOK_ATTEMPTS = 3
    settings.GATES_WEBHOOK_TIMEOUT_SECONDS = 5
    settings.GATES_ESCALATE_AFTER_FAILURES = 1
    settings.GATES_BASE_URL = "https://attendance.example.com"
    return receiver


@pytest.fixture
def gate(django_capture_on_commit_callbacks):
    """gate(name, drill=…) → the stored run, its after-commit notifications sent."""

    def run(name: str, **options):
        with django_capture_on_commit_callbacks(execute=True):
            return run_gate(name, **options)

    return run


def open_escalations(gate_name: str) -> list[GateEscalation]:
    return list(GateEscalation.objects.filter(gate=gate_name, status=EscalationStatus.OPEN))


def events(escalation: GateEscalation) -> list[tuple[str, str, str]]:
    return sorted(
        (n.event, n.channel, n.status)
        for n in GateNotification.objects.filter(escalation=escalation)
    )


# --- open, update, close -----------------------------------------------------------------


@pytest.mark.django_db
def test_a_failing_p0_opens_an_escalation_and_tells_slack_and_dingtalk(monkeypatch, webhooks, gate):
    use_runner(monkeypatch, "smoke", failing)
    run = gate("smoke")

    assert run.status == RunStatus.FAIL  # the escalation changes nothing about the run
    [escalation] = open_escalations("smoke")
    assert (escalation.priority, escalation.failures) == ("P0", 1)
    assert escalation.first_run_id == escalation.last_run_id == run.pk
    assert "health" in escalation.reason and "Start the database." in escalation.reason

    [slack] = webhooks.bodies("/slack/")
    assert set(slack) == {"text"}
    assert f"smoke is failing: escalation #{escalation.pk} opened" in slack["text"]
    assert "Start the database." in slack["text"]
    assert f"<https://attendance.example.com/gates/runs/{run.pk}/|Run #{run.pk}>" in slack["text"]
    [dingtalk] = webhooks.bodies("/dingtalk/")
    assert dingtalk["msgtype"] == "markdown"
    assert set(dingtalk["markdown"]) == {"title", "text"}
    assert f"escalation #{escalation.pk} opened" in dingtalk["markdown"]["title"]
    assert dingtalk["markdown"]["text"].startswith("### [P0] smoke is failing")
    assert f"(https://attendance.example.com/gates/runs/{run.pk}/)" in dingtalk["markdown"]["text"]
    assert {item["contentType"] for item in webhooks.received} == {"application/json"}

    notifications = {n.channel: n for n in GateNotification.objects.filter(escalation=escalation)}
    assert set(notifications) == {SLACK, DINGTALK}
    for notification in notifications.values():
        assert (notification.event, notification.status, notification.attempts) == (
            "opened",
            "sent",
            1,
        )
        assert notification.response_status == 200 and notification.run_id == run.pk
        # The webhook's path and query are its credential: never stored.
        assert notification.target == f"{webhooks.base}/***"
        assert SECRET not in notification.target + notification.error
    opened = AuditEvent.objects.get(action="gates.escalation.opened")
    assert (opened.target_type, opened.target_id, opened.actor_id) == (
        "gates.gateescalation",
        str(escalation.pk),
        None,
    )
    assert opened.data["runId"] == run.pk and opened.organisation_id is None
    assert GateRun.objects.get(pk=run.pk).evidence["warnings"] == []


@pytest.mark.django_db
def test_the_next_failure_updates_it_and_the_next_pass_closes_it(monkeypatch, webhooks, gate):
    use_runner(monkeypatch, "preflight", failing)
    first = gate("preflight")
    use_runner(monkeypatch, "preflight", crashing)  # an error counts as a failure
    second = gate("preflight")
    assert second.status == RunStatus.ERROR

    [escalation] = open_escalations("preflight")
    assert escalation.failures == 2
    assert (escalation.first_run_id, escalation.last_run_id) == (first.pk, second.pk)
    assert "runner" in escalation.reason and escalation.updated_at > escalation.opened_at
    updated = webhooks.bodies("/slack/")[-1]["text"]
    assert f"preflight is still failing: escalation #{escalation.pk} updated" in updated
    assert f"2 failing runs since {escalation.opened_at.isoformat(timespec='seconds')}" in updated

    use_runner(monkeypatch, "preflight", passing)
    closing = gate("preflight")
    escalation.refresh_from_db()
    assert escalation.status == EscalationStatus.CLOSED
    assert escalation.closed_by_run_id == closing.pk and escalation.closed_at is not None
    assert open_escalations("preflight") == []
    closed = webhooks.bodies("/slack/")[-1]["text"]
    assert f"preflight passes again: escalation #{escalation.pk} closed" in closed
    assert f"Run #{closing.pk} passed" in closed and "with 2 failing run(s)" in closed
    assert "closed" in webhooks.bodies("/dingtalk/")[-1]["markdown"]["title"]
    assert events(escalation) == [
        ("closed", "dingtalk", "sent"),
        ("closed", "slack", "sent"),
        ("opened", "dingtalk", "sent"),
        ("opened", "slack", "sent"),
        ("updated", "dingtalk", "sent"),
        ("updated", "slack", "sent"),
    ]
    audit = AuditEvent.objects.get(action="gates.escalation.closed")
    assert audit.data["closedByRunId"] == closing.pk

    # Another pass closes nothing and tells nobody; a new failure opens a new escalation.
    sent = len(webhooks.received)
    gate("preflight")
    assert len(webhooks.received) == sent
    use_runner(monkeypatch, "preflight", failing)
    gate("preflight")
    assert GateEscalation.objects.filter(gate="preflight").count() == 2
    assert len(open_escalations("preflight")) == 1


@pytest.mark.django_db
def test_with_a_threshold_of_two_only_two_failures_in_a_row_open_one(
    monkeypatch, settings, webhooks, gate
):
    settings.GATES_ESCALATE_AFTER_FAILURES = 2
    use_runner(monkeypatch, "metrics", failing)
    first = gate("metrics")
    assert open_escalations("metrics") == [] and webhooks.received == []

    use_runner(monkeypatch, "metrics", passing)
    gate("metrics")
    use_runner(monkeypatch, "metrics", failing)
    after_pass = gate("metrics")
    assert open_escalations("metrics") == []  # the pass between them broke the row

    gate("metrics", drill=True)  # a drill between them neither breaks nor extends the row
    use_runner(monkeypatch, "metrics", passing)
    gate("metrics", drill=True)
    use_runner(monkeypatch, "metrics", failing)
    second = gate("metrics")
    [escalation] = open_escalations("metrics")
    assert escalation.priority == "P1" and escalation.failures == 2
    assert (escalation.first_run_id, escalation.last_run_id) == (after_pass.pk, second.pk)
    assert first.pk != escalation.first_run_id
    assert "2 failing run(s) in a row" in webhooks.bodies("/slack/")[0]["text"]

    gate("metrics")
    escalation.refresh_from_db()
    assert escalation.failures == 3


@pytest.mark.django_db
def test_a_failing_p2_gate_never_escalates(monkeypatch, webhooks, gate):
    use_runner(monkeypatch, "perf-scale", failing)
    gate("perf-scale")
    assert not GateEscalation.objects.exists() and webhooks.received == []


# --- drills ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_failing_drill_never_notifies_and_never_opens(monkeypatch, webhooks, gate):
    use_runner(monkeypatch, "smoke", failing)
    drill = gate("smoke", drill=True)

    assert drill.drill is True and drill.status == RunStatus.FAIL
    assert not GateEscalation.objects.exists()
    assert not GateNotification.objects.exists()
    assert webhooks.received == []
    assert GateRun.objects.get(pk=drill.pk).evidence["warnings"] == []  # not even a warning
    assert not AuditEvent.objects.filter(action__startswith="gates.escalation").exists()


@pytest.mark.django_db
def test_a_passing_drill_does_not_close_an_open_escalation(monkeypatch, webhooks, gate):
    use_runner(monkeypatch, "strict", failing)
    gate("strict")
    sent = len(webhooks.received)
    use_runner(monkeypatch, "strict", passing)
    gate("strict", drill=True)
    assert len(open_escalations("strict")) == 1 and len(webhooks.received) == sent


# --- webhooks that fail ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "attempts"),
    [(500, 3), (503, 3), (429, 3), (404, 1), (403, 1)],
    ids=["500-retried", "503-retried", "429-retried", "404-final", "403-final"],
)
def test_a_failing_webhook_is_retried_boundedly_and_recorded(
    monkeypatch, settings, webhooks, gate, status, attempts
):
    settings.GATES_WEBHOOKS = [
        f"{webhooks.base}/broken/{SECRET}",  # a bare URL is Slack-style
        f"slack={webhooks.base}/slack/{SECRET}",
    ]
    webhooks.answer(f"/broken/{SECRET}", status, b"the webhook is unwell")
    use_runner(monkeypatch, "smoke", failing)
    run = gate("smoke")

    assert run.status == RunStatus.FAIL  # a webhook error never changes the run
    assert len(webhooks.bodies("/broken/")) == attempts
    assert len(webhooks.bodies("/slack/")) == 1  # the other webhook is still told
    failed = GateNotification.objects.get(status="failed")
    assert (failed.channel, failed.event, failed.attempts, failed.response_status) == (
        SLACK,
        "opened",
        attempts,
        status,
    )
    assert f"attempt {attempts}: HTTP {status} the webhook is unwell" in failed.error
    assert failed.error.count("attempt ") == attempts
    assert SECRET not in failed.error and failed.target == f"{webhooks.base}/***"
    assert GateNotification.objects.get(status="sent").attempts == 1
    [warning] = GateRun.objects.get(pk=run.pk).evidence["warnings"]
    assert f"failed after {attempts} attempt(s)" in warning and SECRET not in warning


@pytest.mark.django_db
def test_an_unreachable_webhook_is_retried_boundedly_and_recorded(
    monkeypatch, settings, webhooks, gate
):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.GATES_WEBHOOKS = [f"dingtalk=http://127.0.0.1:{port}/robot/send?access_token={SECRET}"]
    use_runner(monkeypatch, "smoke", failing)
    run = gate("smoke")
    notification = GateNotification.objects.get()
    assert (notification.status, notification.attempts, notification.response_status) == (
        "failed",
        3,
        None,
    )
    assert "ConnectError" in notification.error and SECRET not in notification.error
    assert notification.target == f"http://127.0.0.1:{port}/***"
    assert run.status == RunStatus.FAIL and len(open_escalations("smoke")) == 1


@pytest.mark.django_db
def test_a_dingtalk_refusal_in_a_200_answer_is_a_failure(monkeypatch, webhooks, gate):
    webhooks.answer("/dingtalk/robot/send", 200, {"errcode": 310000, "errmsg": "keywords"})
    use_runner(monkeypatch, "smoke", failing)
    gate("smoke")
    refused = GateNotification.objects.get(channel=DINGTALK)
    assert (refused.status, refused.attempts, refused.response_status) == ("failed", 1, 200)
    assert "DingTalk errcode 310000: keywords" in refused.error
    assert GateNotification.objects.get(channel=SLACK).status == "sent"


@pytest.mark.django_db
def test_no_webhook_configured_is_a_warning_in_the_run_not_a_failure(
    monkeypatch, settings, webhooks, gate
):
    settings.GATES_WEBHOOKS = []
    use_runner(monkeypatch, "smoke", failing)
    run = gate("smoke")
    stored = GateRun.objects.get(pk=run.pk)
    [warning] = stored.evidence["warnings"]
    assert "No webhook is configured (GATES_WEBHOOKS)" in warning
    assert stored.summary["warnings"] == 1 and "warning: No webhook" in stored.log
    assert stored.status == RunStatus.FAIL  # as it was: the warning is not the failure
    assert len(open_escalations("smoke")) == 1  # escalated all the same
    assert not GateNotification.objects.exists() and webhooks.received == []

    use_runner(monkeypatch, "smoke", passing)
    closing = gate("smoke")
    assert closing.status == RunStatus.PASS
    assert "No webhook is configured" in closing.evidence["warnings"][0]


@pytest.mark.django_db
def test_an_unknown_webhook_kind_is_refused_clearly_and_the_others_are_told(
    monkeypatch, settings, webhooks, gate
):
    settings.GATES_WEBHOOKS = [f"teams=https://example.invalid/{SECRET}", f"{webhooks.base}/slack/"]
    use_runner(monkeypatch, "smoke", failing)
    run = gate("smoke")
    [warning] = run.evidence["warnings"]
    assert "GATES_WEBHOOKS entry 1 has the unknown kind 'teams'" in warning
    assert SECRET not in warning
    assert len(webhooks.bodies("/slack/")) == 1


# --- parsing the configuration -----------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "kind", "target"),
    [
        ("slack=https://hooks.slack.com/services/T/B/x", SLACK, "https://hooks.slack.com/***"),
        ("https://hooks.slack.com/services/T/B/x", SLACK, "https://hooks.slack.com/***"),
        (
            " DingTalk = https://oapi.dingtalk.com/robot/send?access_token=abc ",
            DINGTALK,
            "https://oapi.dingtalk.com/***",
        ),
        # A bare URL whose query holds "=" stays a bare (Slack-style) URL.
        ("https://chat.example.com/hook?token=abc", SLACK, "https://chat.example.com/***"),
        ("slack=http://[::1]:8080/x", SLACK, "http://[::1]:8080/***"),
        ("slack=https://chat.example.com", SLACK, "https://chat.example.com"),
    ],
)
def test_webhook_entries_are_parsed_and_masked(entry, kind, target):
    webhook = parse_webhook(entry)
    assert (webhook.kind, webhook.target) == (kind, target)
    assert webhook.url.startswith("http") and webhook.url in entry
    assert "abc" not in repr(webhook) and "abc" not in str(webhook)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("teams=https://example.com/x", "unknown kind 'teams'"),
        ("slack=ftp://example.com/x", "is not an http(s) URL"),
        ("dingtalk=", "is not an http(s) URL"),
        ("not a url", "is not an http(s) URL"),
        ("https://", "is not an http(s) URL"),
        ("   ", "is empty"),
    ],
)
def test_bad_webhook_entries_are_refused_with_a_clear_message(entry, message):
    with pytest.raises(WebhookConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_webhook(entry)


def test_the_configuration_keeps_the_good_entries_and_names_the_bad_ones():
    webhooks, problems = configured_webhooks(
        "slack=https://a.example/x,,teams=https://b.example/y, dingtalk=https://c.example/z,"
    )
    assert webhooks == [
        Webhook(SLACK, "https://a.example/x"),
        Webhook(DINGTALK, "https://c.example/z"),
    ]
    assert len(problems) == 1 and "entry 3" in problems[0] and "'teams'" in problems[0]


def test_an_unparseable_url_is_masked_whole():
    assert mask_url("http://[not-an-ip/x") == "***"
    assert mask_url("") == "***"


# --- concurrency -------------------------------------------------------------------------


def _failing_run(gate_name: str) -> GateRun:
    spec = registry.GATES[gate_name]
    now = timezone.now()
    return GateRun.objects.create(
        gate=gate_name,
        priority=spec.priority,
        status=RunStatus.FAIL,
        started_at=now,
        finished_at=now,
        failed_check="health",
        failure_kind=FailureKind.DEPENDENCY,
        remediation="Start the database.",
        evidence={"warnings": []},
    )


def race(runs: list[GateRun]) -> tuple[list, list]:
    """``after_run`` of each run in a thread of its own (its own database connection), all
    released together by a barrier; returns (changes, errors)."""
    barrier = threading.Barrier(len(runs))
    changes, errors = [], []

    def finish(run):
        try:
            barrier.wait(timeout=10)
            changes.append(after_run(run))
        except Exception as exc:  # reported by the test
            errors.append(exc)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=finish, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(not thread.is_alive() for thread in threads)
    return changes, errors


def test_two_failures_finishing_together_never_open_two_escalations(transactional_db, webhooks):
    """Each round: two failing runs of a gate finishing together. Without the gate's lock
    both see no open escalation and both open one (the constraint refuses the second, and
    its run is told the escalation could not be recorded)."""
    for gate_name in ("smoke", "strict", "preflight", "perf", "metrics"):
        runs = [_failing_run(gate_name), _failing_run(gate_name)]
        changes, errors = race(runs)
        assert errors == [], gate_name
        for run in runs:  # no run was told its escalation could not be recorded
            assert GateRun.objects.get(pk=run.pk).evidence["warnings"] == [], gate_name
        assert sorted(change.event for change in changes if change) == ["opened", "updated"]
        [escalation] = GateEscalation.objects.filter(gate=gate_name)
        assert escalation.status == "open" and escalation.failures == 2
        assert escalation.last_run_id in {run.pk for run in runs}
        assert events(escalation) == [
            ("opened", "dingtalk", "sent"),
            ("opened", "slack", "sent"),
            ("updated", "dingtalk", "sent"),
            ("updated", "slack", "sent"),
        ]
