"""The go/no-go packet: is this deployment fit to ship, and on what evidence.

Criteria, each blocking or not, with a status (``met``, ``unmet``, ``stale``, ``missing``
or ``warning``), a detail, an age and an evidence link:

- each registered gate's latest finished non-drill run (drills never count):
  - P0: blocking; a failure or no run at all is unmet. A P0 that passed longer ago than its
    staleness limit (GATES_STALE_HOURS) counts as a P1 failure: non-blocking, ``stale``;
  - P1: non-blocking; failing, stale or missing is not met;
  - P2: informational (high-scale evidence, run rarely): ``warning`` when not met, which
    never changes the verdict;
- open escalations: of a P0 gate blocking, of a P1 gate not;
- perf regressions, from the latest perf run's ``summary["regressions"]`` (non-blocking);
- pending migrations (blocking; :func:`gates.checks.check_migrations`);
- the audit chain (blocking): :func:`audit.services.audit_verify` over the last
  ``AUDIT_WINDOW`` of sealed hours (every digest's chain link is checked whatever the
  window; the window bounds the events recomputed, so the packet stays fast);
- the last backup's age when GATES_BACKUP_STAMP is set (blocking; the file's modification
  time within GATES_BACKUP_MAX_AGE_HOURS); without it a ``warning`` that it is not checked.

Verdict: NO-GO when a blocking criterion is not met; CONDITIONAL when every blocking one is
met but a non-blocking one is ``unmet``, ``stale`` or ``missing``; GO otherwise. The score
is ``met/total`` of the blocking criteria. ``manage.py gates decide`` exits with
:data:`DECISION_EXIT_CODES`: 0 only on GO.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from dataclasses import dataclass

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from gates.choices import Priority, RunStatus
from gates.models import GateRun
from gates.selectors import latest_runs, open_escalations
from gates.services.dashboard import cell, is_stale, iso, run_age_hours
from gates.services.registry import GATES, GateSpec
from gates.services.runs import app_commit, app_version

GO, CONDITIONAL, NO_GO = "GO", "CONDITIONAL", "NO-GO"
DECISION_EXIT_CODES = {GO: 0, NO_GO: 1, CONDITIONAL: 3}
MET, UNMET, STALE, MISSING, WARNING = "met", "unmet", "stale", "missing", "warning"
# Non-blocking statuses that make a packet CONDITIONAL (a warning is information only).
CONDITIONS = (UNMET, STALE, MISSING)
STATUS_LABELS = {
    MET: gettext_lazy("met"),
    UNMET: gettext_lazy("not met"),
    STALE: gettext_lazy("stale"),
    MISSING: gettext_lazy("missing"),
    WARNING: gettext_lazy("warning"),
}
STATUS_MARKS = {MET: "✅", UNMET: "❌", STALE: "⏳", MISSING: "❔", WARNING: "⚠️"}
HEADLINES = {
    GO: gettext_lazy("Fit to ship: every criterion is met."),
    CONDITIONAL: gettext_lazy(
        "Fit to ship only if the conditions below are accepted: every blocking criterion is"
        " met, some others are not."
    ),
    NO_GO: gettext_lazy("Not fit to ship: a blocking criterion is not met."),
}
AUDIT_WINDOW = dt.timedelta(days=7)
PERF_GATE = "perf"
FORMATS = ("markdown", "html")


@dataclass
class Criterion:
    key: str
    label: str
    blocking: bool
    status: str
    detail: str = ""
    age_hours: float | None = None
    run_id: int | None = None
    priority: str = ""  # a gate's, for the rationale

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "label": self.label,
            "blocking": self.blocking,
            "status": self.status,
            "statusLabel": str(STATUS_LABELS[self.status]),
            "ok": self.status == MET,
            "detail": self.detail,
            "ageHours": self.age_hours,
            "evidence": (
                {"runId": self.run_id, "url": run_url(self.run_id)}
                if self.run_id is not None
                else None
            ),
        }


def run_url(run_id: int) -> str:
    try:
        return reverse("gates:run", args=[run_id])
    except NoReverseMatch:
        return f"/gates/runs/{run_id}/"


def _hours(value: float) -> str:
    return f"{value:.1f}"


def _failure_detail(run: GateRun) -> str:
    values = {
        "run": run.pk,
        "status": RunStatus(run.status).label if run.status in RunStatus.values else run.status,
        "check": run.failed_check or "-",
        "kind": run.failure_kind or "-",
        "remediation": run.remediation or "-",
        "owner": run.remediation_owner or "-",
    }
    return (
        _("Run #%(run)s: %(status)s at %(check)s (%(kind)s). %(remediation)s (owner: %(owner)s)")
        % values
    )


# --- criteria ----------------------------------------------------------------------------


def gate_criterion(spec: GateSpec, run: GateRun | None, now: dt.datetime) -> Criterion:
    label = _("Gate %(gate)s (%(priority)s)") % {"gate": spec.name, "priority": spec.priority}
    informational = spec.priority == Priority.P2
    blocking = spec.priority == Priority.P0
    key = f"gate.{spec.name}"
    if run is None:
        return Criterion(
            key,
            label,
            blocking,
            WARNING if informational else MISSING,
            _("No real run yet (drills never count): run manage.py gates %(gate)s.")
            % {"gate": spec.name},
        )
    age = run_age_hours(run, now)
    limit = spec.stale_after.total_seconds() / 3600
    if run.status == RunStatus.PASS:
        if not is_stale(spec, run, now):
            detail = _("Run #%(run)s passed %(age)s h ago.") % {"run": run.pk, "age": _hours(age)}
            return Criterion(key, label, blocking, MET, detail, age, run.pk)
        detail = _(
            "Run #%(run)s passed %(age)s h ago, longer than %(limit)s h: its evidence is too old;"
            " run the gate again."
        ) % {"run": run.pk, "age": _hours(age), "limit": _hours(limit)}
        if blocking:
            detail += " " + _("A stale P0 gate counts as a P1 failure.")
        # A stale P0 is a P1 failure: it no longer blocks, it conditions the release.
        status = WARNING if informational else STALE
        return Criterion(key, label, False, status, detail, age, run.pk, spec.priority)
    status = WARNING if informational else UNMET
    return Criterion(key, label, blocking, status, _failure_detail(run), age, run.pk)


def escalation_criteria() -> list[Criterion]:
    escalations = list(open_escalations().order_by("opened_at", "id"))
    criteria = []
    for priority, blocking in ((Priority.P0, True), (Priority.P1, False)):
        open_ones = [escalation for escalation in escalations if escalation.priority == priority]
        label = _("No open escalation of a %(priority)s gate") % {"priority": priority}
        key = f"escalations.{priority.lower()}"
        if not open_ones:
            criteria.append(Criterion(key, label, blocking, MET, _("None is open.")))
            continue
        detail = " ".join(
            _(
                "%(gate)s: escalation #%(id)s open since %(opened)s, %(failures)d failing run(s);"
                " %(reason)s"
            )
            % {
                "gate": escalation.gate,
                "id": escalation.pk,
                "opened": escalation.opened_at.astimezone(dt.UTC).isoformat(timespec="minutes"),
                "failures": escalation.failures,
                "reason": escalation.reason or "-",
            }
            for escalation in open_ones
        )
        oldest = open_ones[0]
        age = round((timezone.now() - oldest.opened_at).total_seconds() / 3600, 2)
        criteria.append(Criterion(key, label, blocking, UNMET, detail, age, oldest.last_run_id))
    return criteria


def perf_criterion(run: GateRun | None, now: dt.datetime) -> Criterion:
    key, label = "perf.regressions", _("No perf regression")
    if run is None:
        return Criterion(
            key,
            label,
            False,
            MISSING,
            _("No real perf run yet: run manage.py gates perf."),
        )
    summary = run.summary if isinstance(run.summary, dict) else {}
    regressions = [item for item in summary.get("regressions") or [] if isinstance(item, dict)]
    age = run_age_hours(run, now)
    if regressions:
        listed = "; ".join(
            _("%(phase)s %(ms)s ms, %(ratio)s× the median %(median)s ms")
            % {
                "phase": item.get("phase", "?"),
                "ms": item.get("ms", "?"),
                "ratio": item.get("ratio", "?"),
                "median": item.get("baselineMedianMs", "?"),
            }
            for item in regressions
        )
        detail = _("Run #%(run)s is slower than its baseline: %(list)s.") % {
            "run": run.pk,
            "list": listed,
        }
        return Criterion(key, label, False, UNMET, detail, age, run.pk)
    evidence = run.evidence if isinstance(run.evidence, dict) else {}
    if "baseline" not in evidence:
        detail = _(
            "Run #%(run)s did not reach its regression check (see the perf gate's criterion)."
        ) % {"run": run.pk}
        return Criterion(key, label, False, WARNING, detail, age, run.pk)
    detail = _("Run #%(run)s: no phase more than %(ratio)s× slower than its baseline.") % {
        "run": run.pk,
        "ratio": settings.GATES_PERF_REGRESSION_RATIO,
    }
    return Criterion(key, label, False, MET, detail, age, run.pk)


def migrations_criterion() -> Criterion:
    from gates.checks import check_migrations

    key, label = "migrations", _("Every migration is applied")
    result = check_migrations()
    if result.ok:
        return Criterion(key, label, True, MET, _("No migration is pending."))
    pending = result.evidence.get("pending") or []
    if pending:
        detail = _("%(count)d migration(s) not applied: %(list)s. Run manage.py migrate.") % {
            "count": len(pending),
            "list": ", ".join(pending[:10]) + (" …" if len(pending) > 10 else ""),
        }
    else:
        detail = _("The migrations could not be read: %(error)s") % {"error": result.detail}
    return Criterion(key, label, True, UNMET, detail)


def audit_criterion(now: dt.datetime) -> Criterion:
    from audit.services import audit_verify

    key, label = "audit.chain", _("The audit log verifies against its digests")
    since = now - AUDIT_WINDOW
    try:
        report = audit_verify(start=since)
    except Exception as exc:  # a broken verification is not a verified log
        return Criterion(
            key,
            label,
            True,
            UNMET,
            _("The verification failed: %(error)s") % {"error": f"{type(exc).__name__}: {exc}"},
        )
    if not report.ok:
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(report.counts.items()))
        return Criterion(
            key,
            label,
            True,
            UNMET,
            _(
                "%(count)d problem(s) (%(kinds)s): the log was changed outside the application."
                " Run manage.py audit_verify for the list."
            )
            % {"count": sum(report.counts.values()), "kinds": kinds},
        )
    if not report.digests:
        detail = _("Nothing is sealed yet: no digest to verify (audit_seal runs every hour).")
    else:
        detail = _(
            "%(digests)d digest(s) chain to %(head)s; %(hours)d sealed hour(s) since %(since)s"
            " (%(events)d event(s)) match the table."
        ) % {
            "digests": report.digests,
            "head": report.chain_head[:16],
            "hours": report.checked_hours,
            "since": since.astimezone(dt.UTC).isoformat(timespec="minutes"),
            "events": report.checked_events,
        }
    return Criterion(key, label, True, MET, detail)


def backup_criterion(now: dt.datetime) -> Criterion:
    key, label = "backup.age", _("A recent backup")
    stamp = settings.GATES_BACKUP_STAMP
    limit = settings.GATES_BACKUP_MAX_AGE_HOURS
    if not stamp:
        return Criterion(
            key,
            label,
            False,
            WARNING,
            _("Not checked: GATES_BACKUP_STAMP names no backup stamp file."),
        )
    try:
        modified = os.stat(stamp).st_mtime
    except OSError as exc:
        return Criterion(
            key,
            label,
            True,
            UNMET,
            _("The backup stamp %(path)s cannot be read (%(error)s): no backup is known.")
            % {"path": stamp, "error": exc.strerror or type(exc).__name__},
        )
    age = round(max(0.0, now.timestamp() - modified) / 3600, 2)
    values = {"age": _hours(age), "limit": _hours(limit)}
    if age > limit:
        detail = (
            _(
                "The last backup is %(age)s h old, older than %(limit)s h"
                " (GATES_BACKUP_MAX_AGE_HOURS): take one before shipping."
            )
            % values
        )
        return Criterion(key, label, True, UNMET, detail, age)
    detail = _("The last backup is %(age)s h old (at most %(limit)s h).") % values
    return Criterion(key, label, True, MET, detail, age)


def criteria(now: dt.datetime) -> list[Criterion]:
    latest = latest_runs(drill=False)
    found = [gate_criterion(spec, latest.get(spec.name), now) for spec in GATES.values()]
    found += escalation_criteria()
    found.append(perf_criterion(latest.get(PERF_GATE), now))
    found.append(migrations_criterion())
    found.append(audit_criterion(now))
    found.append(backup_criterion(now))
    return found


# --- the verdict and what goes with it ---------------------------------------------------


def verdict_of(found: list[Criterion]) -> str:
    if any(criterion.blocking and criterion.status != MET for criterion in found):
        return NO_GO
    if any(not criterion.blocking and criterion.status in CONDITIONS for criterion in found):
        return CONDITIONAL
    return GO


def rationale(verdict: str, found: list[Criterion], met: int, total: int) -> list[str]:
    unmet_blocking = [c for c in found if c.blocking and c.status != MET]
    conditions = [c for c in found if not c.blocking and c.status in CONDITIONS]
    warnings = [c for c in found if c.status == WARNING]
    lines = []
    if verdict == NO_GO:
        lines.append(
            _("NO-GO: %(unmet)d of %(total)d blocking criteria are not met.")
            % {"unmet": len(unmet_blocking), "total": total}
        )
        lines += [
            _("%(label)s is %(status)s: %(detail)s")
            % {"label": c.label, "status": STATUS_LABELS[c.status], "detail": c.detail}
            for c in unmet_blocking
        ]
    elif verdict == CONDITIONAL:
        lines.append(
            _(
                "CONDITIONAL: all %(total)d blocking criteria are met, but %(count)d other"
                " criterion(s) are not; ship only if the release owner accepts them and their"
                " fixes are scheduled."
            )
            % {"total": total, "count": len(conditions)}
        )
    else:
        lines.append(
            _(
                "GO: all %(total)d blocking criteria are met and no other criterion is unmet,"
                " stale or missing."
            )
            % {"total": total}
        )
    lines += [
        _("%(label)s is %(status)s (not blocking): %(detail)s")
        % {"label": c.label, "status": STATUS_LABELS[c.status], "detail": c.detail}
        for c in conditions
    ]
    if any(c.status == STALE and c.priority == Priority.P0 for c in found):
        lines.append(
            _(
                "A P0 gate that passed too long ago counts as a P1 failure: it does not block,"
                " but its pass no longer speaks for this deployment; run it again before"
                " shipping."
            )
        )
    lines += [
        _("For information: %(label)s: %(detail)s") % {"label": c.label, "detail": c.detail}
        for c in warnings
    ]
    lines.append(
        _("Drills are never counted; only the latest real run of each gate is (%(met)s/%(total)s).")
        % {"met": met, "total": total}
    )
    return lines


def rollback_triggers(found: list[Criterion]) -> list[str]:
    stale_hours = _hours(settings.GATES_STALE_HOURS)
    triggers = [
        _(
            "Server errors: the share of 5xx answers is above 2%, measured over 5 minutes"
            " (alert AttendanceHigh5xxRate, django_http_responses_total_by_status_total)."
        ),
        _(
            "/readyz answers 503 on a web node for more than 2 minutes after the rollout"
            " (database, broker or migrations)."
        ),
        _(
            "Imports: an import that passed before the rollout fails after it"
            " (attendance_import_failures_total rising), or the commit p95 is above 2 minutes"
            " (alert AttendanceImportSlow)."
        ),
        _(
            "Background work: the oldest queued import job waits more than 5 minutes (alert"
            " AttendanceImportQueueStuck), or a queue's worker heartbeat is older than"
            " 5 minutes (alert AttendanceWorkerDown)."
        ),
        _(
            "A P0 gate (preflight, smoke, strict) fails against the new release (alert"
            " AttendanceP0GateFailing), or an escalation opens for one."
        ),
        _(
            "An import rollback refuses or fails, or the smoke's import round trip"
            " (commit → export → rollback) does not return the rows it wrote."
        ),
        _(
            "audit_verify names any problem, or audit events stop being written"
            " (attendance_audit_events_total flat while people work)."
        ),
        _("A migration of the release fails or does not finish within its window."),
    ]
    accepted = [c for c in found if not c.blocking and c.status in CONDITIONS]
    if accepted:
        triggers.append(
            _("A condition accepted for this release gets worse: %(list)s.")
            % {"list": "; ".join(c.label for c in accepted)}
        )
    triggers.append(
        _("No P0 gate run passes within %(hours)s h of the rollout (alert AttendanceP0GateStale).")
        % {"hours": stale_hours}
    )
    return triggers


def monitoring_checklist() -> list[str]:
    return [
        _(
            "Right after the rollout: manage.py gates smoke --base-url <deployment> passes;"
            " then manage.py gates decide again."
        ),
        _("/readyz answers 200 on every web node; /metrics answers."),
        _(
            '5xx rate (django_http_responses_total_by_status_total{status=~"5.."}) below 2%,'
            " through the first 30 minutes and the first business peak."
        ),
        _(
            "API errors by code (attendance_api_errors_total) and rate-limited requests"
            " (attendance_rate_limited_total) at their level before the rollout."
        ),
        _(
            "Import failures (attendance_import_failures_total) flat; import durations"
            " (attendance_import_duration_seconds) within the perf gate's budgets."
        ),
        _(
            "Queue age (attendance_import_queue_age_seconds) below 300 s and every queue's"
            " worker heartbeat (attendance_worker_heartbeat_age_seconds) below 300 s."
        ),
        _(
            "Gate status: attendance_gate_status is 1 for every P0 and P1 gate; none stale"
            " (attendance_gate_last_run_timestamp_seconds); no escalation opened on /gates/."
        ),
        _(
            "Audit: events still written (attendance_audit_events_total) and audit_verify"
            " clean after the next hourly seal; audit partitions two months ahead"
            " (attendance_audit_partition_months_ahead)."
        ),
        _("The next scheduled backup completes (GATES_BACKUP_STAMP updated)."),
    ]


def app_info() -> dict:
    return {
        "version": app_version(),
        "commit": app_commit(),
        "host": socket.gethostname(),
        "baseUrl": settings.GATES_BASE_URL,
    }


def decide() -> dict:
    """The packet, computed now from the stored runs (see the module's docstring)."""
    now = timezone.now()
    found = criteria(now)
    blocking = [criterion for criterion in found if criterion.blocking]
    met = sum(1 for criterion in blocking if criterion.status == MET)
    verdict = verdict_of(found)
    return {
        "verdict": verdict,
        "headline": str(HEADLINES[verdict]),
        "score": f"{met}/{len(blocking)}",
        "met": met,
        "total": len(blocking),
        "generatedAt": iso(now.replace(microsecond=0)),
        "app": app_info(),
        "criteria": [criterion.as_dict() for criterion in found],
        "rationale": rationale(verdict, found, met, len(blocking)),
        "rollbackTriggers": rollback_triggers(found),
        "monitoring": monitoring_checklist(),
    }


# --- rendering ---------------------------------------------------------------------------


def render(packet: dict, fmt: str) -> str:
    """The packet as Markdown or as a standalone HTML document."""
    if fmt == "markdown":
        return render_markdown(packet)
    if fmt == "html":
        return render_to_string(
            "gates/decision_packet.html",
            {
                "packet": packet,
                "generated_at": _instant(packet.get("generatedAt")),
                "asset_base": (settings.GATES_BASE_URL or "").rstrip("/"),
            },
        )
    raise ValueError(f"unknown format {fmt!r}; one of: {', '.join(FORMATS)}")


def _instant(value) -> dt.datetime | None:
    if isinstance(value, dt.datetime) or value is None:
        return value
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def render_markdown(packet: dict) -> str:
    app = packet.get("app") or {}
    lines = [
        "# " + _("Go/no-go decision: %(verdict)s") % {"verdict": packet["verdict"]},
        "",
        f"**{packet['verdict']}** — {packet.get('headline', '')}",
        "",
        _("Score: %(score)s blocking criteria met.") % {"score": packet["score"]},
        "",
        _("Generated at %(when)s on %(host)s; version %(version)s, commit %(commit)s.")
        % {
            "when": packet["generatedAt"],
            "host": app.get("host") or "-",
            "version": app.get("version") or "-",
            "commit": app.get("commit") or "-",
        },
        "",
        "## " + _("Criteria"),
        "",
        "| "
        + " | ".join(
            [_("Status"), _("Criterion"), _("Blocking"), _("Detail"), _("Age"), _("Evidence")]
        )
        + " |",
        "|---|---|---|---|---|---|",
    ]
    for criterion in packet["criteria"]:
        evidence = criterion.get("evidence") or {}
        label = criterion.get("statusLabel") or criterion["status"]
        age = criterion.get("ageHours")
        lines.append(
            "| "
            + " | ".join(
                cell(value)
                for value in (
                    f"{STATUS_MARKS.get(criterion['status'], '')} {label}".strip(),
                    criterion["label"],
                    _("yes") if criterion["blocking"] else _("no"),
                    criterion["detail"],
                    _("%(hours)s h") % {"hours": _hours(age)} if age is not None else "",
                    f"[#{evidence['runId']}]({evidence['url']})" if evidence.get("url") else "",
                )
            )
            + " |"
        )
    for title, key, bullet in (
        (_("Rationale"), "rationale", "-"),
        (_("Rollback triggers"), "rollbackTriggers", "-"),
        (_("Post-rollout monitoring"), "monitoring", "- [ ]"),
    ):
        lines += ["", "## " + title, ""]
        lines += [f"{bullet} {item}" for item in packet.get(key) or []]
    return "\n".join(lines) + "\n"
