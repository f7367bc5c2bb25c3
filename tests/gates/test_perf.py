"""The perf gate through a live deployment (gunicorn and a real worker): it passes within its
budgets and leaves the deployment as it found it, fails as a regression when a phase is
really over its budget, and fails when it is much slower than the median of the last good
runs, which are the passing non-drill runs of the same gate and row count only."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from attendance.models import AttendanceRecord, Employee
from gates.choices import FailureKind, RunStatus
from gates.models import GateRun
from gates.services import run_gate
from gates.services.perf import PHASES, find_regressions, generate_rows
from imports.models import ImportBatch

ROWS = 300


def perf(stack, **options) -> GateRun:
    run = run_gate(
        "perf", options={"base_url": stack.base_url, "token": stack.token, "rows": ROWS, **options}
    )
    run.refresh_from_db()
    return run


def checks(run: GateRun) -> dict[str, dict]:
    return {check["name"]: check for check in run.evidence["checks"]}


def assert_left_as_found(stack, run: GateRun) -> None:
    """The batch is rolled back and the employees the import created are gone."""
    batch = ImportBatch.objects.get(pk=run.evidence["batchId"])
    assert batch.status == ImportBatch.Status.ROLLED_BACK
    assert batch.rollback_stats["employeesDeleted"] == len(batch.created_employee_ids) == 3
    assert not Employee.objects.filter(employee_no__startswith="gate-perf-").exists()
    assert not AttendanceRecord.objects.filter(organisation=stack.admin.organisation).exists()


def seed(*, phases: dict, minutes_ago: int, rows: int = ROWS, **fields) -> GateRun:
    started = timezone.now() - dt.timedelta(minutes=minutes_ago)
    return GateRun.objects.create(
        gate=fields.pop("gate", "perf"),
        priority="P1",
        status=fields.pop("status", RunStatus.PASS),
        started_at=started,
        finished_at=started + dt.timedelta(seconds=5),
        summary={"rows": rows, "phases": phases},
        **fields,
    )


@pytest.mark.integration
def test_perf_passes_within_budgets_and_leaves_the_deployment_as_found(live_stack):
    employees_before = Employee.objects.count()
    run = perf(live_stack)
    assert run.status == RunStatus.PASS, (run.failed_check, run.remediation, live_stack.tail())
    assert run.summary["rows"] == ROWS
    assert set(run.summary["phases"]) == set(PHASES)
    assert all(ms > 0 for ms in run.summary["phases"].values())
    assert run.summary["regressions"] == [] and run.summary["commitMode"] == "sync"
    found = checks(run)
    for name in ("upload", "preview", "commit", "export", "rollback", "cleanup"):
        assert found[name]["ok"], found[name]
    for phase in ("preview", "commit", "export", "rollback"):
        assert found[f"{phase}-budget"]["ok"]
    assert found["export"]["evidence"]["lines"] == ROWS + 1
    # The first run of its size has nothing to compare with, and says so.
    assert "No baseline yet" in found["regression"]["detail"]
    assert run.evidence["baseline"]["baselineRuns"] == []
    assert_left_as_found(live_stack, run)
    assert Employee.objects.count() == employees_before


@pytest.mark.integration
def test_perf_above_the_sync_threshold_commits_as_a_polled_job(live_stack, settings):
    settings.IMPORT_SYNC_MAX_ROWS = ROWS - 1
    run = perf(live_stack)
    assert run.status == RunStatus.PASS, (run.failed_check, run.remediation, live_stack.tail())
    assert run.summary["commitMode"] == "async"
    assert run.evidence["commitJob"]
    assert_left_as_found(live_stack, run)


@pytest.mark.integration
def test_a_phase_over_its_budget_fails_as_a_regression_and_still_rolls_back(live_stack, settings):
    settings.GATES_PERF_MAX_COMMIT_MS = 1
    run = perf(live_stack)
    assert run.status == RunStatus.FAIL
    assert (run.failed_check, run.failure_kind) == ("commit-budget", FailureKind.REGRESSION)
    budget = checks(run)["commit-budget"]["evidence"]
    assert budget["ms"] > budget["budgetMs"] == 1
    assert "GATES_PERF_MAX_COMMIT_MS" in checks(run)["commit-budget"]["detail"]
    assert checks(run)["preview-budget"]["ok"] and checks(run)["cleanup"]["ok"]
    assert run.evidence["endMarker"] == "gate-complete"  # it failed on evidence, at its end
    assert_left_as_found(live_stack, run)


@pytest.mark.integration
def test_a_commit_job_the_gate_stopped_waiting_for_is_still_rolled_back(live_stack, settings):
    settings.IMPORT_SYNC_MAX_ROWS = 1
    settings.GATES_POLL_TIMEOUT_SECONDS = 0.001  # the job cannot end before the first poll
    run = perf(live_stack, rows=1000)
    assert run.status == RunStatus.FAIL
    assert run.failed_check == "commit"
    assert (
        "still queued" in checks(run)["commit"]["detail"]
        or "still running" in (checks(run)["commit"]["detail"])
    )
    assert checks(run)["rollback"]["ok"] and checks(run)["cleanup"]["ok"]
    assert "after the gate stopped waiting" in run.log
    batch = ImportBatch.objects.get(pk=run.evidence["batchId"])
    assert batch.status == ImportBatch.Status.ROLLED_BACK and batch.row_count == 1000
    assert not Employee.objects.filter(employee_no__startswith="gate-perf-").exists()


@pytest.mark.integration
def test_a_run_much_slower_than_the_median_of_good_runs_lists_its_regressions(live_stack):
    tiny = dict.fromkeys(PHASES, 1)
    huge = dict.fromkeys(PHASES, 10**9)
    good = [seed(phases=tiny, minutes_ago=60 + minute) for minute in range(5)]
    seed(phases=tiny, minutes_ago=500)  # a sixth, older good run: beyond the last five
    # Newer than the good ones, and each would make the median huge if it counted.
    not_baselines = [
        seed(phases=huge, minutes_ago=30, drill=True),
        seed(phases=huge, minutes_ago=29, status=RunStatus.FAIL),
        seed(phases=huge, minutes_ago=28, status=RunStatus.ERROR),
        seed(phases=huge, minutes_ago=27, rows=ROWS + 1),
        seed(phases=huge, minutes_ago=26, gate="perf-scale"),
        seed(phases=huge, minutes_ago=25, drill=True),
    ]
    assert len(not_baselines) > 5

    run = perf(live_stack)

    assert run.status == RunStatus.FAIL
    assert (run.failed_check, run.failure_kind) == ("regression", FailureKind.REGRESSION)
    assert run.evidence["baseline"]["baselineRuns"] == [seeded.pk for seeded in good]
    assert run.summary["baselineRuns"] == 5
    regressions = {item["phase"]: item for item in run.summary["regressions"]}
    assert set(regressions) == set(PHASES)
    for phase, item in regressions.items():
        assert item["baselineMedianMs"] == 1
        assert item["ms"] == run.summary["phases"][phase] and item["ratio"] > 1.5
    assert run.evidence["regressions"] == run.summary["regressions"]
    assert "median of the last 5 good runs" in checks(run)["regression"]["detail"]
    assert all(checks(run)[f"{phase}-budget"]["ok"] for phase in ("preview", "export"))
    assert_left_as_found(live_stack, run)


@pytest.mark.django_db
def test_without_a_deployment_the_gate_fails_as_configuration():
    run = run_gate("perf", options={"rows": 10})
    assert run.status == RunStatus.FAIL
    assert (run.failed_check, run.failure_kind, run.remediation_owner) == (
        "target",
        FailureKind.CONFIG,
        "ops",
    )


@pytest.mark.django_db
def test_perf_scale_is_the_same_runner_with_its_own_row_count(settings):
    settings.GATES_PERF_SCALE_ROWS = 1234
    run = run_gate("perf-scale", options={})
    assert run.gate == "perf-scale" and run.priority == "P2"
    assert run.summary["rows"] == 1234 and run.failed_check == "target"


def test_the_median_and_the_ratio_decide_a_regression():
    baseline = [(1, {"commitMs": ms, "previewMs": 100}) for ms in (100, 110, 90, 1000, 95)]
    medians, found = find_regressions({"commitMs": 150, "previewMs": 151}, baseline, 1.5)
    assert medians == {"commitMs": 100, "previewMs": 100}  # one outlier does not move it
    assert found == [
        {"phase": "previewMs", "ms": 151, "baselineMedianMs": 100, "ratio": 1.51}
    ]  # 1.5 times is not more than 1.5 times
    # A phase no earlier run measured has no baseline; a zero median counts as 1 ms.
    medians, found = find_regressions({"exportMs": 2}, [(1, {"exportMs": 0})], 1.5)
    assert found[0]["ratio"] == 2.0


def test_the_generated_rows_name_the_runs_own_employees_on_past_dates():
    lines = generate_rows(42, 201).decode().splitlines()
    assert lines[0] == "employee_no,name,work_date,first_in,last_out,status"
    assert len(lines) == 202
    assert lines[1].startswith("gate-perf-42-00000,Gate perf 42 #0,2020-01-06,")
    assert lines[201].startswith("gate-perf-42-00002,")
    assert len({line.split(",")[0] for line in lines[1:]}) == 3
