"""The go/no-go decision: each criterion's status, blocking or not, the score and the
verdict matrix (GO; CONDITIONAL for a stale P0, a failing P1 or a perf regression; NO-GO for
a failing or missing P0, an open P0 escalation, a pending migration, a tampered audit log
or an old backup), drills never counted, rendered as Markdown and HTML, and ``manage.py
gates decide`` exiting 0 only on GO."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import time

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_seal
from gates.models import GateEscalation, GateRun
from gates.services import run_gate
from gates.services.decision import DECISION_EXIT_CODES, decide, render
from gates.services.registry import GATES
from tests.common.test_csp import inline_findings
from tests.gates.test_escalation import failing, passing, set_age, use_runner
from tests.support import owner_connection

PHASES = {"previewMs": 100, "commitMs": 1000, "exportMs": 90, "rollbackMs": 400}
P0_GATES = [name for name, spec in GATES.items() if spec.priority == "P0"]
# The P0 gates, the open P0 escalations, the migrations and the audit chain.
BLOCKING = len(P0_GATES) + 3


@pytest.fixture
def gate(monkeypatch, settings, django_capture_on_commit_callbacks):
    """gate(name, runner, drill=…, **options) → a run of the real gate ``name`` by
    ``runner`` (escalating at the first failure, no webhook)."""
    settings.GATES_WEBHOOKS = []
    settings.GATES_ESCALATE_AFTER_FAILURES = 1
    settings.GATES_BACKUP_STAMP = ""

    def run(name, runner=passing, *, drill=False, **options):
        use_runner(monkeypatch, name, runner)
        if name == "perf" and runner is passing:
            options.setdefault("phases", PHASES)
        with django_capture_on_commit_callbacks(execute=True):
            return run_gate(name, options=options, drill=drill)

    return run


@pytest.fixture
def all_pass(gate):
    """A fresh passing run of every gate; returns them by name."""
    return {name: gate(name) for name in GATES}


def criteria(packet: dict) -> dict[str, dict]:
    return {criterion["key"]: criterion for criterion in packet["criteria"]}


def exit_code(*arguments) -> int:
    out = io.StringIO()
    try:
        call_command("gates", "decide", *arguments, stdout=out)
    except SystemExit as exit_:
        return exit_.code
    return 0


def decide_json() -> tuple[int, dict]:
    out = io.StringIO()
    code = 0
    try:
        call_command("gates", "decide", "--json", stdout=out)
    except SystemExit as exit_:
        code = exit_.code
    return code, json.loads(out.getvalue())


# --- GO --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_gate_passing_and_fresh_is_go(all_pass):
    packet = decide()
    assert packet["verdict"] == "GO"
    assert (packet["met"], packet["total"], packet["score"]) == (
        BLOCKING,
        BLOCKING,
        f"{BLOCKING}/{BLOCKING}",
    )
    by_key = criteria(packet)
    assert list(by_key) == [
        *(f"gate.{name}" for name in GATES),
        "escalations.p0",
        "escalations.p1",
        "perf.regressions",
        "migrations",
        "audit.chain",
        "backup.age",
    ]
    smoke = by_key["gate.smoke"]
    assert (smoke["blocking"], smoke["status"], smoke["ok"]) == (True, "met", True)
    assert smoke["evidence"] == {
        "runId": all_pass["smoke"].pk,
        "url": f"/gates/runs/{all_pass['smoke'].pk}/",
    }
    assert 0 <= smoke["ageHours"] < 0.1
    assert by_key["gate.metrics"]["blocking"] is False  # P1
    assert by_key["gate.perf-scale"]["blocking"] is False  # P2
    assert by_key["migrations"]["status"] == "met" and by_key["migrations"]["blocking"]
    assert by_key["audit.chain"]["status"] == "met" and by_key["audit.chain"]["blocking"]
    # Backup age not configured: said, not counted.
    backup = by_key["backup.age"]
    assert (backup["status"], backup["blocking"], backup["ok"]) == ("warning", False, False)
    assert "GATES_BACKUP_STAMP" in backup["detail"]
    assert packet["rationale"][0].startswith(f"GO: all {BLOCKING} blocking criteria are met")
    assert packet["app"]["version"] and set(packet["app"]) >= {"version", "commit", "host"}
    assert any("5xx" in trigger for trigger in packet["rollbackTriggers"])
    assert any("attendance_import_queue_age_seconds" in item for item in packet["monitoring"])
    dt.datetime.fromisoformat(packet["generatedAt"])
    json.dumps(packet)  # JSON as it is
    assert exit_code("--json") == DECISION_EXIT_CODES["GO"] == 0


@pytest.mark.django_db
def test_drills_never_count(all_pass, gate):
    gate("smoke", failing, drill=True)
    gate("metrics", failing, drill=True)
    packet = decide()
    assert packet["verdict"] == "GO"
    assert criteria(packet)["gate.smoke"]["evidence"]["runId"] == all_pass["smoke"].pk


@pytest.mark.django_db
def test_a_failing_p2_gate_is_information_only(all_pass, gate):
    run = gate("perf-scale", failing)
    packet = decide()
    assert packet["verdict"] == "GO"
    scale = criteria(packet)["gate.perf-scale"]
    assert (scale["status"], scale["blocking"], scale["evidence"]["runId"]) == (
        "warning",
        False,
        run.pk,
    )
    assert any(line.startswith("For information: Gate perf-scale") for line in packet["rationale"])


# --- CONDITIONAL -----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_stale_p0_counts_as_a_p1_failure_conditional(all_pass):
    set_age(all_pass["smoke"], 40)
    packet = decide()
    assert packet["verdict"] == "CONDITIONAL"
    smoke = criteria(packet)["gate.smoke"]
    assert (smoke["status"], smoke["blocking"], smoke["ok"]) == ("stale", False, False)
    assert smoke["ageHours"] == pytest.approx(40, abs=0.01)
    assert "counts as a P1 failure" in smoke["detail"]
    assert packet["total"] == BLOCKING - 1 and packet["met"] == packet["total"]
    assert any("counts as a P1 failure" in line for line in packet["rationale"])
    assert any("Gate smoke (P0)" in trigger for trigger in packet["rollbackTriggers"])
    code, body = decide_json()
    assert (code, body["verdict"]) == (DECISION_EXIT_CODES["CONDITIONAL"], "CONDITIONAL")
    assert code == 3


@pytest.mark.django_db
def test_a_failing_p1_is_conditional(all_pass, gate):
    run = gate("metrics", failing)
    packet = decide()
    assert packet["verdict"] == "CONDITIONAL"
    by_key = criteria(packet)
    metrics = by_key["gate.metrics"]
    assert (metrics["status"], metrics["blocking"], metrics["evidence"]["runId"]) == (
        "unmet",
        False,
        run.pk,
    )
    assert "health" in metrics["detail"] and "Start the database." in metrics["detail"]
    # Its escalation is open, and a P1's does not block.
    p1 = by_key["escalations.p1"]
    assert (p1["status"], p1["blocking"], p1["evidence"]["runId"]) == ("unmet", False, run.pk)
    assert packet["met"] == packet["total"] == BLOCKING
    assert packet["rationale"][0].startswith("CONDITIONAL: all")
    assert exit_code() == 3


@pytest.mark.django_db
def test_a_missing_p1_is_conditional(gate):
    for name in GATES:
        if name != "metrics":
            gate(name)
    packet = decide()
    assert packet["verdict"] == "CONDITIONAL"
    assert criteria(packet)["gate.metrics"]["status"] == "missing"
    assert criteria(packet)["gate.metrics"]["evidence"] is None


@pytest.mark.django_db
def test_a_perf_regression_is_conditional(all_pass, gate):
    regression = {"phase": "commitMs", "ms": 2400, "baselineMedianMs": 1000, "ratio": 2.4}
    run = gate("perf", regressions=[regression])
    packet = decide()
    assert packet["verdict"] == "CONDITIONAL"
    perf = criteria(packet)["perf.regressions"]
    assert (perf["status"], perf["blocking"], perf["evidence"]["runId"]) == ("unmet", False, run.pk)
    assert "commitMs 2400 ms, 2.4× the median 1000 ms" in perf["detail"]


# --- NO-GO -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_failing_p0_is_no_go(all_pass, gate):
    run = gate("strict", failing)
    packet = decide()
    assert packet["verdict"] == "NO-GO"
    by_key = criteria(packet)
    strict = by_key["gate.strict"]
    assert (strict["status"], strict["blocking"], strict["ok"]) == ("unmet", True, False)
    assert by_key["escalations.p0"]["status"] == "unmet"
    assert packet["met"] == BLOCKING - 2 and packet["score"] == f"{BLOCKING - 2}/{BLOCKING}"
    assert packet["rationale"][0] == f"NO-GO: 2 of {BLOCKING} blocking criteria are not met."
    assert any(
        line.startswith("Gate strict (P0) is not met:") and f"#{run.pk}" in line
        for line in packet["rationale"]
    )
    code, body = decide_json()
    assert (code, body["verdict"], body["score"]) == (1, "NO-GO", packet["score"])


@pytest.mark.django_db
def test_an_old_failing_p0_still_blocks(all_pass, gate):
    set_age(all_pass["preflight"], 101)
    set_age(gate("preflight", failing), 100)  # the latest run, failed long ago
    packet = decide()
    preflight = criteria(packet)["gate.preflight"]
    assert (preflight["status"], preflight["blocking"]) == ("unmet", True)  # not "stale"
    assert packet["verdict"] == "NO-GO"


@pytest.mark.django_db
def test_a_p0_gate_that_never_ran_is_no_go(gate):
    for name in GATES:
        if name != "strict":
            gate(name)
    packet = decide()
    assert packet["verdict"] == "NO-GO"
    strict = criteria(packet)["gate.strict"]
    assert (strict["status"], strict["blocking"], strict["evidence"]) == ("missing", True, None)
    assert exit_code() == 1


@pytest.mark.django_db
def test_an_open_p0_escalation_is_no_go_although_the_gate_passes(all_pass):
    earlier = GateRun.objects.create(
        gate="smoke",
        priority="P0",
        status="fail",
        started_at=timezone.now() - dt.timedelta(hours=2),
        finished_at=timezone.now() - dt.timedelta(hours=2),
        failed_check="health",
    )
    escalation = GateEscalation.objects.create(
        gate="smoke",
        priority="P0",
        opened_at=earlier.finished_at,
        updated_at=earlier.finished_at,
        first_run=earlier,
        last_run=earlier,
        failures=3,
        reason="the database refused",
    )
    packet = decide()
    assert packet["verdict"] == "NO-GO"
    by_key = criteria(packet)
    assert by_key["gate.smoke"]["status"] == "met"
    p0 = by_key["escalations.p0"]
    assert (p0["status"], p0["blocking"], p0["evidence"]["runId"]) == ("unmet", True, earlier.pk)
    assert f"escalation #{escalation.pk}" in p0["detail"] and "3 failing run(s)" in p0["detail"]
    assert p0["ageHours"] == pytest.approx(2, abs=0.01)
    assert packet["score"] == f"{BLOCKING - 1}/{BLOCKING}"


@pytest.fixture
def unapplied_migration():
    """The gates app's migration unrecorded (as the owner, committed), so the application
    sees it pending; recorded again afterwards."""
    with owner_connection() as owner:
        applied = owner.execute(
            "DELETE FROM django_migrations WHERE app = 'gates' AND name = '0001_gate_runs'"
            " RETURNING applied"
        ).fetchone()[0]
    try:
        yield "gates.0001_gate_runs"
    finally:
        with owner_connection() as owner:
            owner.execute(
                "INSERT INTO django_migrations (app, name, applied) VALUES ('gates',"
                " '0001_gate_runs', %s)",
                [applied],
            )


@pytest.mark.django_db
def test_a_pending_migration_is_no_go(all_pass, unapplied_migration):
    packet = decide()
    assert packet["verdict"] == "NO-GO"
    migrations = criteria(packet)["migrations"]
    assert (migrations["status"], migrations["blocking"]) == ("unmet", True)
    assert (
        unapplied_migration in migrations["detail"] and "manage.py migrate" in migrations["detail"]
    )
    assert exit_code("--json") == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("age_hours", "verdict", "status"),
    [(2, "GO", "met"), (30, "NO-GO", "unmet"), (None, "NO-GO", "unmet")],
    ids=["recent", "too-old", "missing"],
)
def test_the_backup_age_blocks_when_configured(
    all_pass, settings, tmp_path, age_hours, verdict, status
):
    stamp = tmp_path / "last-backup"
    if age_hours is not None:
        stamp.write_text("2026-01-01T00:00:00Z\n")
        moment = time.time() - age_hours * 3600
        os.utime(stamp, (moment, moment))
    settings.GATES_BACKUP_STAMP = str(stamp)
    settings.GATES_BACKUP_MAX_AGE_HOURS = 26
    packet = decide()
    backup = criteria(packet)["backup.age"]
    assert (packet["verdict"], backup["status"], backup["blocking"]) == (verdict, status, True)
    assert packet["total"] == BLOCKING + 1
    if age_hours is not None:
        assert backup["ageHours"] == pytest.approx(age_hours, abs=0.01)
    else:
        assert "cannot be read" in backup["detail"]


def _this_hour() -> dt.datetime:
    return timezone.now().astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def test_a_tampered_audit_log_is_no_go(transactional_db, all_pass):
    """Events sealed in the last hours, then one edited as the owner with the triggers out
    of the way (session_replication_role = replica), as a DBA or an attacker could."""
    sealed_hour = _this_hour() - dt.timedelta(hours=2)
    with connection.cursor() as cursor:  # the month's partition (idempotent)
        cursor.execute("SELECT * FROM audit_ensure_partition(%s)", [sealed_hour.date()])
    events = [
        AuditEvent.objects.create(
            occurred_at=sealed_hour + dt.timedelta(minutes=minute), action="test.sealed"
        )
        for minute in (5, 35)
    ]
    audit_seal(until=_this_hour())
    packet = decide()
    assert packet["verdict"] == "GO"
    audit = criteria(packet)["audit.chain"]
    assert audit["status"] == "met" and "match the table" in audit["detail"]

    with owner_connection() as owner:
        owner.execute("SET session_replication_role = replica")
        owner.execute(
            "UPDATE audit_auditevent SET actor_label = 'someone else' WHERE id = %s",
            [events[1].pk],
        )
    packet = decide()
    assert packet["verdict"] == "NO-GO"
    audit = criteria(packet)["audit.chain"]
    assert (audit["status"], audit["blocking"]) == ("unmet", True)
    assert "1 problem(s) (edited 1)" in audit["detail"]
    assert exit_code() == 1


# --- rendering -------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_markdown_packet(all_pass, gate):
    gate("metrics", failing)
    packet = decide()
    markdown = render(packet, "markdown")
    lines = markdown.splitlines()
    assert lines[0] == "# Go/no-go decision: CONDITIONAL"
    assert f"Score: {packet['score']} blocking criteria met." in lines
    assert "| Status | Criterion | Blocking | Detail | Age | Evidence |" in lines
    smoke = all_pass["smoke"].pk
    assert any(
        line.startswith("| ✅ met | Gate smoke (P0) | yes |")
        and f"[#{smoke}](/gates/runs/{smoke}/)" in line
        for line in lines
    )
    assert any(line.startswith("| ❌ not met | Gate metrics (P1) | no |") for line in lines)
    for heading in ("## Rationale", "## Rollback triggers", "## Post-rollout monitoring"):
        assert heading in lines
    assert sum(line.startswith("- [ ] ") for line in lines) == len(packet["monitoring"])
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("gates", "decide", stdout=out)
    assert exit_.value.code == 3 and out.getvalue().startswith("# Go/no-go decision:")


@pytest.mark.django_db
def test_the_html_packet_is_a_standalone_document_the_policy_can_show(all_pass, settings):
    settings.GATES_BASE_URL = "https://attendance.example.com"
    packet = decide()
    html = render(packet, "html")
    assert html.startswith("<!DOCTYPE html>")
    assert '<html lang="en">' in html and "</html>" in html
    assert html.count("data-verdict=") == 1 and 'data-verdict="GO"' in html
    assert 'href="https://attendance.example.com/static/css/gates.css"' in html
    for criterion in packet["criteria"]:
        assert f'data-criterion="{criterion["key"]}"' in html
    smoke = all_pass["smoke"].pk
    assert f'href="https://attendance.example.com/gates/runs/{smoke}/"' in html
    assert packet["score"] in html and packet["rollbackTriggers"][0] in html
    assert inline_findings(html) == []
    out = io.StringIO()
    call_command("gates", "decide", "--html", stdout=out)
    assert out.getvalue().startswith("<!DOCTYPE html>")


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown format 'pdf'"):
        render({"verdict": "GO"}, "pdf")
