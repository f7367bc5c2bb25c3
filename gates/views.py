"""The gates pages for administrators: the dashboard (each gate's latest run, drills apart,
open escalations, perf phases over time, history), one run in full, and the go/no-go packet
with its Markdown and JSON downloads.

Reads only, through ``gates.selectors`` and the dashboard and decision services (the same
data as the API and ``manage.py gates``). Times are shown in the organisation's time zone
(``attendance_page`` activates it). The chart is SVG drawn here, styled by classes of
``static/css/gates.css``: the content security policy allows no inline style or script.
"""

from __future__ import annotations

import datetime as dt
import json
import math

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from attendance.views import attendance_page
from common import roles
from gates.api.serializers import DecisionSerializer
from gates.choices import FailureKind, OwnerRole, Priority, RunStatus
from gates.models import GateRun
from gates.selectors import run_as_dict
from gates.services.dashboard import dashboard as dashboard_data
from gates.services.decision import decide
from gates.services.decision import render as render_packet
from gates.services.registry import GATES

admin_page = attendance_page(
    any_role=(roles.ADMIN,),
    refusal=(
        gettext_lazy("Administrators only"),
        gettext_lazy("The deployment's gates are for administrators."),
    ),
)

EFFECTIVE_LABELS = {
    "pass": gettext_lazy("Pass"),
    "fail": gettext_lazy("Fail"),
    "error": gettext_lazy("Error"),
    "stale": gettext_lazy("Stale"),
    "missing": gettext_lazy("No run yet"),
}
STATUS_LABELS = dict(RunStatus.choices)
KIND_LABELS = dict(FailureKind.choices)
OWNER_LABELS = dict(OwnerRole.choices)
PRIORITY_LABELS = dict(Priority.choices)
# The perf phases, in the order the import runs them (chart series and legend).
PHASES = (
    ("previewMs", gettext_lazy("Preview"), "GATES_PERF_MAX_PREVIEW_MS"),
    ("commitMs", gettext_lazy("Commit"), "GATES_PERF_MAX_COMMIT_MS"),
    ("exportMs", gettext_lazy("Export"), "GATES_PERF_MAX_EXPORT_MS"),
    ("rollbackMs", gettext_lazy("Rollback"), "GATES_PERF_MAX_ROLLBACK_MS"),
)


# --- small helpers -------------------------------------------------------------------------


def _instant(value) -> dt.datetime | None:
    """An aware datetime from a datetime or its ISO text (a service may hand either)."""
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def age_label(hours: float | None) -> str:
    if hours is None:
        return "—"
    minutes = max(0, round(hours * 60))
    if minutes < 60:
        return _("%(minutes)d min ago") % {"minutes": minutes}
    if hours < 48:
        return _("%(hours).1f h ago") % {"hours": hours}
    return _("%(days).1f days ago") % {"days": hours / 24}


def _hours_between(earlier: dt.datetime | None, later: dt.datetime | None) -> float | None:
    if earlier is None or later is None:
        return None
    return (later - earlier).total_seconds() / 3600


def _figure(value) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _pretty(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _run_row(run: dict) -> dict:
    """A run dict with what a table row shows (times as datetimes, labels)."""
    failure = run.get("failure")
    return {
        **run,
        "startedAt": _instant(run["startedAt"]),
        "finishedAt": _instant(run.get("finishedAt")),
        "status_label": STATUS_LABELS.get(run["status"], run["status"]),
        "failure_kind_label": KIND_LABELS.get(failure["kind"], failure["kind"]) if failure else "",
    }


# --- the perf chart --------------------------------------------------------------------------

CHART_WIDTH, CHART_HEIGHT = 720, 240
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 14, 40
MAX_X_LABELS = 6


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 × 10ⁿ at or above ``value`` (the y axis' top)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        ceiling = step * 10**exponent
        if ceiling >= value:
            return float(ceiling)
    return float(10 ** (exponent + 1))


def _ms_label(ms: float) -> str:
    if ms >= 10_000:
        return _("%(seconds)g s") % {"seconds": round(ms / 1000, 1)}
    return _("%(ms)d ms") % {"ms": round(ms)}


def _label_anchor(index: int, last: int) -> str:
    """The labels at the chart's edges run inwards, not off it."""
    if last == 0:
        return "middle"
    if index == 0:
        return "start"
    return "end" if index == last else "middle"


def perf_chart(points: list[dict], gate: str) -> dict:
    """One gate's perf phases over its runs (oldest left, equal spacing per run) as SVG
    geometry: a polyline per phase (broken where a run lacks the phase), a dot per value
    with its tooltip, y gridlines with labels, some run dates on the x axis."""
    points = sorted(points, key=lambda point: (_instant(point["startedAt"]), point["runId"]))
    inner_width = CHART_WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    inner_height = CHART_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    values = [
        value
        for point in points
        for key, _label, _budget in PHASES
        if (value := (point.get("phases") or {}).get(key)) is not None
    ]
    top = _nice_ceiling(max(values, default=0))

    def x_of(index: int) -> float:
        if len(points) == 1:
            return MARGIN_LEFT + inner_width / 2
        return MARGIN_LEFT + inner_width * index / (len(points) - 1)

    def y_of(value: float) -> float:
        return MARGIN_TOP + inner_height * (1 - value / top)

    series = []
    for key, label, _budget in PHASES:
        segments, current, dots = [], [], []
        for index, point in enumerate(points):
            value = (point.get("phases") or {}).get(key)
            if value is None:
                if current:
                    segments.append(current)
                current = []
                continue
            x, y = round(x_of(index), 1), round(y_of(value), 1)
            current.append(f"{x},{y}")
            started = timezone.localtime(_instant(point["startedAt"]))
            dots.append(
                {
                    "x": x,
                    "y": y,
                    "failed": point["status"] != RunStatus.PASS,
                    "title": _("%(phase)s: %(value)s · run #%(run)s · %(when)s")
                    % {
                        "phase": label,
                        "value": _ms_label(value),
                        "run": point["runId"],
                        "when": started.strftime("%Y-%m-%d %H:%M"),
                    },
                }
            )
        if current:
            segments.append(current)
        series.append(
            {
                "key": key,
                "label": label,
                "polylines": [" ".join(segment) for segment in segments if len(segment) > 1],
                "dots": dots,
            }
        )
    gridlines = [
        {"y": round(y_of(top * step / 4), 1), "label": _ms_label(top * step / 4)}
        for step in range(5)
    ]
    every = max(1, math.ceil(len(points) / MAX_X_LABELS))
    last = len(points) - 1
    x_labels = [
        {
            "x": round(x_of(index), 1),
            "label": timezone.localtime(_instant(point["startedAt"])).strftime("%m-%d %H:%M"),
            "anchor": _label_anchor(index, last),
        }
        for index, point in enumerate(points)
        if index % every == 0 or index == last
    ]
    return {
        "gate": gate,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": MARGIN_LEFT,
        "y_label_x": MARGIN_LEFT - 6,
        "right": CHART_WIDTH - MARGIN_RIGHT,
        "bottom": CHART_HEIGHT - MARGIN_BOTTOM,
        "label_y": CHART_HEIGHT - MARGIN_BOTTOM + 18,
        "series": series,
        "gridlines": gridlines,
        "x_labels": x_labels,
        "runs": len(points),
    }


def perf_charts(perf_history: list[dict]) -> list[dict]:
    """A chart per perf gate (the 10,000-row and the high-scale runs are not comparable)."""
    by_gate: dict[str, list[dict]] = {}
    for point in perf_history:
        by_gate.setdefault(point["gate"], []).append(point)
    return [perf_chart(points, gate) for gate, points in sorted(by_gate.items())]


# --- pages -----------------------------------------------------------------------------------


@require_GET
@admin_page
def dashboard(request):
    data = dashboard_data()
    generated_at = _instant(data["generatedAt"])
    gates, drills = [], []
    for state in data["gates"]:
        latest = _run_row(state["latest"]) if state["latest"] else None
        drill = _run_row(state["latestDrill"]) if state["latestDrill"] else None
        status = state["effectiveStatus"]
        gates.append(
            {
                **state,
                "latest": latest,
                "status_label": EFFECTIVE_LABELS.get(status, status),
                "age_label": age_label(state["ageHours"]),
                # Stale shown beside a failure too: both are true and both matter.
                "also_stale": state["stale"] and status != "stale",
            }
        )
        if drill is not None:
            drills.append(
                {
                    "gate": state["gate"],
                    "priority": state["priority"],
                    "run": drill,
                    "age_label": age_label(
                        _hours_between(drill["finishedAt"] or drill["startedAt"], generated_at)
                    ),
                }
            )
    escalations = [
        {
            **escalation,
            "openedAt": _instant(escalation["openedAt"]),
            "updatedAt": _instant(escalation["updatedAt"]),
        }
        for escalation in data["escalations"]
    ]
    context = {
        "generated_at": generated_at,
        "gates": gates,
        "drills": drills,
        "escalations": escalations,
        "history": [_run_row(run) for run in data["history"]],
        "charts": perf_charts(data["perfHistory"]),
        "legend": [
            {"key": key, "label": label, "budget": _ms_label(getattr(settings, budget))}
            for key, label, budget in PHASES
        ],
        "time_zone": request.employee.organisation.time_zone,
    }
    return render(request, "gates/dashboard.html", context)


@require_GET
@admin_page
def run_detail(request, run_id: int):
    run = get_object_or_404(GateRun.objects.select_related("triggered_by"), pk=run_id)
    data = _run_row(run_as_dict(run))
    evidence = data["evidence"] or {}
    checks = [
        {
            **check,
            "kind_label": KIND_LABELS.get(check.get("kind"), check.get("kind") or ""),
            "owner_label": OWNER_LABELS.get(check.get("owner"), check.get("owner") or ""),
            "evidence_pretty": _pretty(check["evidence"]) if check.get("evidence") else "",
        }
        for check in evidence.get("checks") or []
        if isinstance(check, dict)
    ]
    failure = data["failure"]
    spec = GATES.get(run.gate)
    context = {
        "run": data,
        "description": str(spec.description) if spec else "",
        "priority_label": PRIORITY_LABELS.get(run.priority, run.priority),
        "failure": failure,
        "failure_kind_label": KIND_LABELS.get(failure["kind"], failure["kind"]) if failure else "",
        "failure_owner_label": OWNER_LABELS.get(failure["owner"], failure["owner"])
        if failure
        else "",
        "checks": checks,
        "warnings": evidence.get("warnings") or [],
        "completed": bool(evidence.get("completed")),
        "figures": [
            {"name": name, "value": _figure(value)}
            for name, value in sorted((data["summary"] or {}).items())
        ],
        "evidence_pretty": _pretty(evidence),
        "options_pretty": _pretty(data["options"]) if data["options"] else "",
        "time_zone": request.employee.organisation.time_zone,
    }
    return render(request, "gates/run_detail.html", context)


def _local_packet() -> dict:
    """The packet with its instant (UTC text) in the organisation's zone, as pages show it."""
    packet = decide()
    packet["generatedAt"] = timezone.localtime(_instant(packet["generatedAt"])).isoformat()
    return packet


def _download_stamp() -> str:
    return timezone.localtime(timezone.now()).strftime("%Y%m%d-%H%M%S")


@require_GET
@admin_page
def decision(request):
    context = {"packet": _local_packet(), "time_zone": request.employee.organisation.time_zone}
    return render(request, "gates/decision.html", context)


@require_GET
@admin_page
def decision_markdown(request):
    response = HttpResponse(
        render_packet(_local_packet(), "markdown"), content_type="text/markdown; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="go-no-go-{_download_stamp()}.md"'
    return response


@require_GET
@admin_page
def decision_json(request):
    body = DecisionSerializer(decide(), context={"tz": request.employee.organisation.tz}).data
    response = HttpResponse(
        json.dumps(body, indent=2, ensure_ascii=False), content_type="application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="go-no-go-{_download_stamp()}.json"'
    return response
