"""The gates dashboard: each gate's latest real run, its age and effective status, its latest
drill apart, the open escalations, the perf phases over time and the recent history.

The same data feeds ``/gates/``, ``GET /api/gates/dashboard`` and ``manage.py gates
dashboard`` (JSON as it is, or :func:`dashboard_markdown`). It is JSON-able as returned:
instants are ISO 8601 strings in UTC.

Status. A gate's *effective status* is its latest finished non-drill run's ``pass``,
``fail`` or ``error``; ``stale`` when that run passed but finished longer ago than the gate's
:attr:`~gates.services.registry.GateSpec.stale_after` (a failure stays a failure, and is
flagged ``stale`` beside it); ``missing`` without any such run. Drills never count for
status or staleness: they are shown apart (``latestDrill``) and in the history, labelled.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from gates.choices import RunStatus
from gates.models import GateRun
from gates.selectors import latest_runs, open_escalations, run_as_dict
from gates.services.registry import GATES, GateSpec

PERF_GATES = ("perf", "perf-scale")
PERF_PHASES = ("previewMs", "commitMs", "exportMs", "rollbackMs")
PERF_HISTORY_RUNS = 30
HISTORY_RUNS = 50
TIME_KEYS = ("startedAt", "finishedAt")


def iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return str(value)


def run_summary(run: GateRun | None) -> dict | None:
    """A run as the dashboard and the decision show it: no log, instants as ISO text."""
    if run is None:
        return None
    data = run_as_dict(run, log=False)
    for key in TIME_KEYS:
        data[key] = iso(data[key])
    return data


def run_age_hours(run: GateRun, now: dt.datetime) -> float:
    """Hours since the run finished (since it started, for one that never finished)."""
    moment = run.finished_at or run.started_at
    return round(max(0.0, (now - moment).total_seconds() / 3600), 2)


def is_stale(spec: GateSpec, run: GateRun, now: dt.datetime) -> bool:
    return now - (run.finished_at or run.started_at) > spec.stale_after


def effective_status(spec: GateSpec, run: GateRun | None, now: dt.datetime) -> str:
    if run is None:
        return "missing"
    if run.status == RunStatus.PASS and is_stale(spec, run, now):
        return "stale"
    return run.status


def gate_states(now: dt.datetime) -> list[dict]:
    """Each registered gate, in the registry's order, with its latest real run and drill."""
    latest, drills = latest_runs(drill=False), latest_runs(drill=True)
    states = []
    for spec in GATES.values():
        run = latest.get(spec.name)
        states.append(
            {
                "gate": spec.name,
                "priority": spec.priority,
                "description": str(spec.description),
                "latest": run_summary(run),
                "ageHours": run_age_hours(run, now) if run else None,
                "stale": bool(run and is_stale(spec, run, now)),
                "effectiveStatus": effective_status(spec, run, now),
                "latestDrill": run_summary(drills.get(spec.name)),
            }
        )
    return states


def escalation_summaries() -> list[dict]:
    return [
        {
            "id": escalation.pk,
            "gate": escalation.gate,
            "priority": escalation.priority,
            "status": escalation.status,
            "openedAt": iso(escalation.opened_at),
            "updatedAt": iso(escalation.updated_at),
            "failures": escalation.failures,
            "reason": escalation.reason,
            "firstRunId": escalation.first_run_id,
            "lastRunId": escalation.last_run_id,
        }
        for escalation in open_escalations().order_by("-opened_at", "-id")
    ]


def perf_history() -> list[dict]:
    """The last perf runs (both perf gates, drills apart), oldest first, with the phases the
    perf gate stored in ``summary["phases"]`` (a phase a run did not reach is None)."""
    runs = (
        GateRun.objects.filter(gate__in=PERF_GATES, drill=False)
        .exclude(status=RunStatus.RUNNING)
        .order_by("-started_at", "-id")
        .only("id", "gate", "started_at", "status", "summary")[:PERF_HISTORY_RUNS]
    )
    points = []
    for run in reversed(list(runs)):
        phases = (run.summary or {}).get("phases") if isinstance(run.summary, dict) else None
        phases = phases if isinstance(phases, dict) else {}
        points.append(
            {
                "runId": run.pk,
                "gate": run.gate,
                "startedAt": iso(run.started_at),
                "status": run.status,
                "phases": {
                    key: value if isinstance(value, int | float) else None
                    for key in PERF_PHASES
                    for value in [phases.get(key)]
                },
            }
        )
    return points


def history() -> list[dict]:
    runs = GateRun.objects.select_related("triggered_by").order_by("-started_at", "-id")
    return [run_summary(run) for run in runs[:HISTORY_RUNS]]


def dashboard() -> dict:
    now = timezone.now()
    return {
        "generatedAt": iso(now),
        "gates": gate_states(now),
        "escalations": escalation_summaries(),
        "perfHistory": perf_history(),
        "history": history(),
    }


# --- Markdown ----------------------------------------------------------------------------


def cell(value) -> str:
    """A Markdown table cell: one line, pipes escaped."""
    if value is None or value == "":
        return "—"
    return " ".join(str(value).split()).replace("|", "\\|")


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = [
        "| " + " | ".join(cell(title) for title in header) + " |",
        "|" + "|".join("---" for _title in header) + "|",
    ]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return lines


def short_time(value: str | None) -> str:
    """An ISO instant as ``YYYY-MM-DD HH:MM`` in UTC (the Markdown says its times are UTC)."""
    if not value:
        return "—"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")


def age_text(hours: float | None) -> str:
    if hours is None:
        return "—"
    if hours < 48:
        return _("%(hours).1f h") % {"hours": hours}
    return _("%(days).1f days") % {"days": hours / 24}


STATUS_TEXT = {
    "pass": ("✅", gettext_lazy("pass")),
    "fail": ("❌", gettext_lazy("fail")),
    "error": ("💥", gettext_lazy("error")),
    "stale": ("⏳", gettext_lazy("stale")),
    "missing": ("❔", gettext_lazy("no run yet")),
    "running": ("…", gettext_lazy("running")),
}


def status_text(status: str) -> str:
    """A status with a mark that reads in any Markdown viewer, and its translated word."""
    if status not in STATUS_TEXT:
        return status
    mark, label = STATUS_TEXT[status]
    return f"{mark} {label}"


def _failure(run: dict | None) -> str:
    failure = (run or {}).get("failure")
    if not failure:
        return ""
    return f"{failure['check']} ({failure['kind'] or '-'})"


def dashboard_markdown(data: dict) -> str:
    lines = [
        "# " + _("Gates"),
        "",
        _("Generated at %(when)s (times in UTC). Drills are listed apart and never counted.")
        % {"when": short_time(data["generatedAt"])},
        "",
        "## " + _("Latest run per gate"),
        "",
    ]
    rows = []
    for state in data["gates"]:
        latest = state["latest"]
        status = status_text(state["effectiveStatus"])
        if state["stale"] and state["effectiveStatus"] != "stale":
            status += " · " + _("stale")
        rows.append(
            [
                state["gate"],
                state["priority"],
                status,
                age_text(state["ageHours"]),
                f"#{latest['id']} {short_time(latest['startedAt'])}" if latest else "",
                _failure(latest),
            ]
        )
    lines += table(
        [_("Gate"), _("Priority"), _("Status"), _("Age"), _("Latest run"), _("Failure")], rows
    )
    drills = [state for state in data["gates"] if state["latestDrill"]]
    if drills:
        lines += ["", "## " + _("Latest drills (never counted)"), ""]
        lines += table(
            [_("Gate"), _("Run"), _("Status"), _("Started")],
            [
                [
                    state["gate"],
                    f"#{state['latestDrill']['id']}",
                    status_text(state["latestDrill"]["status"]),
                    short_time(state["latestDrill"]["startedAt"]),
                ]
                for state in drills
            ],
        )
    lines += ["", "## " + _("Open escalations"), ""]
    if data["escalations"]:
        lines += table(
            [_("Gate"), _("Priority"), _("Opened"), _("Updated"), _("Failing runs"), _("Reason")],
            [
                [
                    escalation["gate"],
                    escalation["priority"],
                    short_time(escalation["openedAt"]),
                    short_time(escalation["updatedAt"]),
                    escalation["failures"],
                    escalation["reason"],
                ]
                for escalation in data["escalations"]
            ],
        )
    else:
        lines.append(_("None."))
    if data["perfHistory"]:
        lines += ["", "## " + _("Import phases (ms), oldest first"), ""]
        lines += table(
            [_("Run"), _("Gate"), _("Started"), _("Status"), *PERF_PHASES],
            [
                [
                    f"#{point['runId']}",
                    point["gate"],
                    short_time(point["startedAt"]),
                    status_text(point["status"]),
                    *(point["phases"].get(key) for key in PERF_PHASES),
                ]
                for point in data["perfHistory"]
            ],
        )
    lines += ["", "## " + _("History (newest first)"), ""]
    if data["history"]:
        lines += table(
            [_("Run"), _("Gate"), _("Status"), _("Started"), _("Duration (ms)"), _("Failure")],
            [
                [
                    f"#{run['id']}",
                    run["gate"] + (" " + _("(drill)") if run["drill"] else ""),
                    status_text(run["status"]),
                    short_time(run["startedAt"]),
                    run["durationMs"],
                    _failure(run),
                ]
                for run in data["history"]
            ],
        )
    else:
        lines.append(_("No runs yet."))
    return "\n".join(lines) + "\n"
