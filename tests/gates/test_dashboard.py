"""The dashboard: each gate's latest real run, its age and effective status (stale after
36 h for P0/P1 and 10 days for P2, a failure staying a failure), the latest drill apart and
never counted, the open escalations, the perf phases over time and the recent history; as
JSON and Markdown, also through ``manage.py gates dashboard``."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from gates.choices import RunStatus
from gates.models import GateRun
from gates.services import run_gate
from gates.services.dashboard import (
    HISTORY_RUNS,
    PERF_HISTORY_RUNS,
    dashboard,
    dashboard_markdown,
)
from gates.services.registry import GATES
from tests.gates.test_escalation import failing, passing, set_age, use_runner

pytestmark = pytest.mark.django_db


@pytest.fixture
def gate(monkeypatch, settings, django_capture_on_commit_callbacks):
    """gate(name, runner, drill=…, **options) → a run of the real gate ``name`` by ``runner``
    (escalating at the first failure, no webhook)."""
    settings.GATES_WEBHOOKS = []
    settings.GATES_ESCALATE_AFTER_FAILURES = 1

    def run(name, runner=passing, *, drill=False, **options):
        use_runner(monkeypatch, name, runner)
        with django_capture_on_commit_callbacks(execute=True):
            return run_gate(name, options=options, drill=drill)

    return run


def states(data: dict) -> dict:
    return {state["gate"]: state for state in data["gates"]}


def test_every_gate_is_listed_with_its_latest_real_run(gate):
    first = gate("preflight")
    latest = gate("preflight")
    failed = gate("smoke", failing)
    data = dashboard()
    by_gate = states(data)
    assert [state["gate"] for state in data["gates"]] == list(GATES)
    preflight = by_gate["preflight"]
    assert preflight["latest"]["id"] == latest.pk != first.pk
    assert (preflight["priority"], preflight["description"]) == (
        "P0",
        GATES["preflight"].description,
    )
    assert preflight["effectiveStatus"] == "pass" and preflight["stale"] is False
    assert 0 <= preflight["ageHours"] < 0.1
    assert "log" not in preflight["latest"]  # the summary, not the whole run
    assert by_gate["smoke"]["effectiveStatus"] == "fail"
    assert by_gate["smoke"]["latest"]["failure"]["check"] == failed.failed_check == "health"
    assert by_gate["metrics"]["latest"] is None
    assert (by_gate["metrics"]["effectiveStatus"], by_gate["metrics"]["ageHours"]) == (
        "missing",
        None,
    )
    assert by_gate["metrics"]["stale"] is False


@pytest.mark.parametrize(
    ("name", "hours", "stale"),
    [
        ("smoke", 35, False),
        ("smoke", 37, True),
        ("metrics", 37, True),  # P1: the same 36 h
        ("perf-scale", 9 * 24, False),  # P2: 10 days
        ("perf-scale", 11 * 24, True),
    ],
)
def test_a_passing_run_goes_stale_after_its_priority_s_limit(gate, name, hours, stale):
    set_age(gate(name), hours)
    state = states(dashboard())[name]
    assert state["stale"] is stale
    assert state["effectiveStatus"] == ("stale" if stale else "pass")
    assert state["ageHours"] == pytest.approx(hours, abs=0.01)


def test_the_staleness_limit_is_the_setting(gate, settings):
    run = set_age(gate("smoke"), 11)
    assert states(dashboard())["smoke"]["stale"] is False
    settings.GATES_STALE_HOURS = 10
    state = states(dashboard())["smoke"]
    assert (state["stale"], state["effectiveStatus"], state["latest"]["id"]) == (
        True,
        "stale",
        run.pk,
    )


def test_an_old_failure_stays_a_failure_and_is_flagged_stale(gate):
    set_age(gate("strict", failing), 40)
    state = states(dashboard())["strict"]
    assert (state["effectiveStatus"], state["stale"]) == ("fail", True)


def test_drills_never_count_for_status_or_staleness(gate):
    real = set_age(gate("smoke"), 37)  # stale
    drill = gate("smoke", failing, drill=True)  # newer, failing: changes nothing
    fresh_drill = gate("metrics", drill=True)  # the only metrics run is a drill
    by_gate = states(dashboard())
    smoke = by_gate["smoke"]
    assert smoke["latest"]["id"] == real.pk and smoke["latestDrill"]["id"] == drill.pk
    assert smoke["latestDrill"]["drill"] is True
    assert (smoke["effectiveStatus"], smoke["stale"]) == ("stale", True)
    metrics = by_gate["metrics"]
    assert (metrics["latest"], metrics["effectiveStatus"]) == (None, "missing")
    assert metrics["latestDrill"]["id"] == fresh_drill.pk
    assert dashboard()["escalations"] == []  # the failing drill escalated nothing


def test_open_escalations_are_listed(gate):
    first = gate("smoke", failing)
    second = gate("smoke", failing)
    gate("preflight", failing)
    gate("preflight")  # closed again
    [escalation] = dashboard()["escalations"]
    assert escalation["gate"] == "smoke" and escalation["status"] == "open"
    assert (escalation["firstRunId"], escalation["lastRunId"], escalation["failures"]) == (
        first.pk,
        second.pk,
        2,
    )
    assert escalation["priority"] == "P0" and "health" in escalation["reason"]
    assert dt.datetime.fromisoformat(escalation["openedAt"]) <= dt.datetime.fromisoformat(
        escalation["updatedAt"]
    )


def test_the_perf_history_has_the_phases_of_real_perf_runs_oldest_first(gate):
    phases = {"previewMs": 120, "commitMs": 900, "exportMs": 80, "rollbackMs": 300}
    first = gate("perf", phases=phases)
    gate("perf", drill=True, phases={"previewMs": 1})  # a drill is not history
    partial = gate("perf", failing)  # failed before measuring: no phases
    scale = gate("perf-scale", phases={**phases, "commitMs": 9000})
    gate("smoke")  # not a perf gate
    history = dashboard()["perfHistory"]
    assert [point["runId"] for point in history] == [first.pk, partial.pk, scale.pk]
    assert history[0] == {
        "runId": first.pk,
        "gate": "perf",
        "startedAt": first.started_at.astimezone(dt.UTC).isoformat(),
        "status": "pass",
        "phases": phases,
    }
    assert history[1]["phases"] == dict.fromkeys(phases)
    assert history[1]["status"] == "fail"
    assert (history[2]["gate"], history[2]["phases"]["commitMs"]) == ("perf-scale", 9000)


def _bulk_runs(gate_name: str, count: int, **columns) -> list[GateRun]:
    now = timezone.now()
    return GateRun.objects.bulk_create(
        GateRun(
            gate=gate_name,
            priority=GATES[gate_name].priority,
            status=RunStatus.PASS,
            started_at=now - dt.timedelta(minutes=count - index),
            finished_at=now - dt.timedelta(minutes=count - index),
            **columns,
        )
        for index in range(count)
    )


def test_the_perf_history_keeps_the_last_30_runs():
    runs = _bulk_runs("perf", PERF_HISTORY_RUNS + 5, summary={"phases": {"commitMs": 5}})
    history = dashboard()["perfHistory"]
    assert [point["runId"] for point in history] == [run.pk for run in runs[-PERF_HISTORY_RUNS:]]


def test_the_history_is_the_last_50_runs_newest_first_drills_included(gate):
    _bulk_runs("preflight", HISTORY_RUNS)
    drill = gate("smoke", failing, drill=True)
    real = gate("smoke")
    history = dashboard()["history"]
    assert len(history) == HISTORY_RUNS
    assert [run["id"] for run in history[:2]] == [real.pk, drill.pk]
    assert [run["drill"] for run in history[:3]] == [False, True, False]
    assert history[1]["failure"]["check"] == "health"


def test_the_dashboard_is_json_as_it_is(gate):
    gate("preflight")
    gate("smoke", failing)
    gate("perf", phases={"commitMs": 10})
    gate("metrics", drill=True)
    data = dashboard()
    text = json.dumps(data)  # no default= needed: instants are ISO text
    assert json.loads(text) == data
    dt.datetime.fromisoformat(data["generatedAt"])
    for run in data["history"]:
        assert dt.datetime.fromisoformat(run["startedAt"]).tzinfo is not None
        assert dt.datetime.fromisoformat(run["finishedAt"]).tzinfo is not None


def test_the_markdown_is_a_readable_table(gate):
    gate("preflight")
    set_age(gate("smoke"), 40)
    gate("strict", failing)
    gate("metrics", failing, drill=True)
    gate("perf", phases={"previewMs": 7, "commitMs": 8, "exportMs": 9, "rollbackMs": 10})
    markdown = dashboard_markdown(dashboard())
    lines = markdown.splitlines()
    assert lines[0] == "# Gates"
    assert "| Gate | Priority | Status | Age | Latest run | Failure |" in lines
    assert any(line.startswith("| preflight | P0 | ✅ pass | 0.0 h | #") for line in lines)
    assert any(line.startswith("| smoke | P0 | ⏳ stale | 40.0 h |") for line in lines)
    assert any(
        line.startswith("| strict | P0 | ❌ fail |") and "health (dependency)" in line
        for line in lines
    )
    assert any(line.startswith("| metrics | P1 | ❔ no run yet | — |") for line in lines)
    assert "## Latest drills (never counted)" in lines
    assert any("metrics (drill)" in line for line in lines)
    assert any(
        line.startswith("| strict | P0 |") and "Start the database." in line for line in lines
    )
    assert any(line.endswith("| 7 | 8 | 9 | 10 |") for line in lines)


def test_a_pipe_in_a_reason_does_not_break_the_table(gate, monkeypatch):
    run = gate("smoke", failing)
    GateRun.objects.filter(pk=run.pk).update(remediation="a | b\nc")
    data = dashboard()
    data["escalations"][0]["reason"] = "a | b\nc"
    assert "| a \\| b c |" in dashboard_markdown(data)


def test_the_command_writes_json_and_markdown(gate):
    gate("preflight")
    out = io.StringIO()
    call_command("gates", "dashboard", "--json", stdout=out)
    body = json.loads(out.getvalue())
    assert states(body)["preflight"]["effectiveStatus"] == "pass"
    out = io.StringIO()
    call_command("gates", "dashboard", stdout=out)
    assert out.getvalue().startswith("# Gates")
