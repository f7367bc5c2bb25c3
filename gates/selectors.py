"""Reading gate runs and escalations for the dashboard, the decision and the API."""

from __future__ import annotations

from gates.models import GateEscalation, GateRun


def run_as_dict(run: GateRun, *, log: bool = True) -> dict:
    data = {
        "id": run.pk,
        "gate": run.gate,
        "priority": run.priority,
        "status": run.status,
        "drill": run.drill,
        "trigger": run.trigger,
        "triggeredBy": run.triggered_by.get_username() if run.triggered_by_id else None,
        "host": run.host,
        "baseUrl": run.base_url,
        "appVersion": run.app_version,
        "appCommit": run.app_commit,
        "options": run.options,
        "startedAt": run.started_at,
        "finishedAt": run.finished_at,
        "durationMs": run.duration_ms,
        "summary": run.summary,
        "evidence": run.evidence,
        "failure": (
            {
                "check": run.failed_check,
                "kind": run.failure_kind,
                "remediation": run.remediation,
                "owner": run.remediation_owner,
            }
            if run.failed_check
            else None
        ),
    }
    if log:
        data["log"] = run.log
    return data


def latest_runs(*, drill: bool = False) -> dict[str, GateRun]:
    """The latest finished run of each gate (drills apart)."""
    runs = (
        GateRun.objects.filter(drill=drill)
        .exclude(status="running")
        .order_by("gate", "-started_at", "-id")
        .distinct("gate")
    )
    return {run.gate: run for run in runs}


def open_escalations():
    return GateEscalation.objects.filter(status="open").select_related("first_run", "last_run")
