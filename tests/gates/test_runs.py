"""The run framework: every run stored, a pass only with the end marker reached, failures
classified, a broken runner an error, drills stored and labelled."""

from __future__ import annotations

import pytest

from gates.choices import FailureKind, OwnerRole, RunStatus
from gates.models import GateRun
from gates.services import registry, run_gate
from gates.services.runs import CheckFailed

pytestmark = pytest.mark.django_db


def _register(monkeypatch, runner) -> str:
    name = "test-gate"
    monkeypatch.setitem(
        registry.GATES,
        name,
        registry.GateSpec(name, "P0", f"{__name__}:{runner.__name__}", "a test gate"),
    )
    return name


def passing(ctx):
    ctx.check("first", lambda: "fine")
    ctx.figures["rows"] = 3
    ctx.finish()


def silent(ctx):
    ctx.check("first", lambda: "fine")  # never reaches finish()


def failing(ctx):
    ctx.check("fine", lambda: None)

    def broken():
        raise CheckFailed("the secret is short", kind=FailureKind.CONFIG, evidence={"len": 5})

    ctx.check("secret", broken, remediation="Set SECRET_KEY.", owner=OwnerRole.OPS, stop=True)
    ctx.check("never", lambda: "not reached")
    ctx.finish()


def crashing(ctx):
    raise RuntimeError("the runner itself broke")


def warning_only(ctx):
    ctx.check("advisory", lambda: 1 / 0, blocking=False)
    ctx.warn("no webhook configured")
    ctx.finish()


def test_a_run_that_reaches_its_end_passes_with_its_evidence(monkeypatch):
    run = run_gate(_register(monkeypatch, passing), options={"token": "att_secret", "rows": 3})
    run.refresh_from_db()
    assert run.status == RunStatus.PASS
    assert run.evidence["endMarker"] == "gate-complete"
    assert run.evidence["checks"][0]["name"] == "first"
    assert run.summary == {"rows": 3, "checks": 1, "failed": 0, "warnings": 0}
    assert run.options == {"rows": 3}  # the token is never stored
    assert run.finished_at >= run.started_at and run.app_version
    assert "gate-complete" in run.log


def test_a_run_that_never_reaches_its_end_fails_although_nothing_failed(monkeypatch):
    run = run_gate(_register(monkeypatch, silent))
    assert run.status == RunStatus.FAIL
    assert run.failed_check == "end-marker"
    assert run.evidence["endMarker"] is None


def test_a_failing_check_stops_the_run_and_classifies_it(monkeypatch):
    run = run_gate(_register(monkeypatch, failing))
    assert run.status == RunStatus.FAIL
    assert (run.failed_check, run.failure_kind, run.remediation_owner) == (
        "secret",
        FailureKind.CONFIG,
        OwnerRole.OPS,
    )
    assert run.remediation == "Set SECRET_KEY."
    names = [check["name"] for check in run.evidence["checks"]]
    assert names == ["fine", "secret"]  # stopped there
    assert run.evidence["checks"][1]["evidence"] == {"len": 5}


def test_a_broken_runner_is_an_error_with_its_traceback(monkeypatch):
    run = run_gate(_register(monkeypatch, crashing))
    assert run.status == RunStatus.ERROR
    assert run.failed_check == "runner"
    assert "RuntimeError: the runner itself broke" in run.log


def test_a_non_blocking_failure_and_a_warning_do_not_fail_the_run(monkeypatch):
    run = run_gate(_register(monkeypatch, warning_only))
    assert run.status == RunStatus.PASS
    assert run.summary["failed"] == 1 and run.evidence["warnings"] == ["no webhook configured"]


def test_a_drill_is_stored_and_labelled(monkeypatch):
    run = run_gate(_register(monkeypatch, failing), drill=True)
    assert GateRun.objects.get(pk=run.pk).drill is True
    assert str(run).endswith("(drill)")
