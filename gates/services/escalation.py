"""Escalations: opened, updated and closed by non-drill runs; webhooks notified.

- A failing (``fail`` or ``error``) run of a P0 or P1 gate opens an escalation when the last
  ``GATES_ESCALATE_AFTER_FAILURES`` finished non-drill runs of that gate all failed, or
  updates the gate's open one (one more failing run, the latest run and its reason).
- The next passing non-drill run closes it.
- Drills never get here (``run_gate`` skips them) and are never counted among the last runs.

One open escalation per gate: the database refuses a second (a partial unique constraint),
and each run's change is made under the gate's advisory lock (``LockSpace.GATE_ESCALATION``),
so two runs finishing together wait for each other instead of both opening one.

Opening and closing are audited (``gates.escalation.opened`` / ``closed``, by the system)
in the same transaction. The webhooks are told after the commit (open, update, close), each
delivery recorded as a :class:`~gates.models.GateNotification`. Nothing here fails or
raises into the run: no webhook configured, a bad entry, a webhook that refuses or never
answers, even a database error while escalating are warnings in the run's evidence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.services import audit_record
from common.locking import LockSpace, xact_lock
from gates.choices import (
    EscalationStatus,
    NotificationEvent,
    NotificationStatus,
    Priority,
    RunStatus,
)
from gates.models import GateEscalation, GateNotification, GateRun
from gates.services import webhooks

logger = logging.getLogger("attendance.gates")

ESCALATED_PRIORITIES = (Priority.P0, Priority.P1)
FAILING = (RunStatus.FAIL, RunStatus.ERROR)
REASON_MAX_CHARS = 2000


@dataclass
class Change:
    """What a run did to its gate's escalation (notified once committed)."""

    event: str
    escalation: GateEscalation
    run: GateRun


def after_run(run: GateRun) -> Change | None:
    """Open, update or close ``run.gate``'s escalation (a finished non-drill run only) and,
    once that is committed, notify the webhooks. Never raises."""
    if run.drill or run.status == RunStatus.RUNNING:
        return None
    try:
        change = _escalate(run)
    except Exception as exc:  # the run is stored; its escalation must not break it
        logger.exception("gate %s #%s: the escalation could not be recorded", run.gate, run.pk)
        add_run_warning(
            run,
            _("The escalation could not be recorded (%(error)s).")
            % {"error": f"{type(exc).__name__}: {exc}"[:500]},
        )
        return None
    return change


def failures_needed() -> int:
    return max(1, int(settings.GATES_ESCALATE_AFTER_FAILURES))


def _escalate(run: GateRun) -> Change | None:
    with transaction.atomic():
        xact_lock(LockSpace.GATE_ESCALATION, run.gate)
        escalation = (
            GateEscalation.objects.select_for_update()
            .filter(gate=run.gate, status=EscalationStatus.OPEN)
            .first()
        )
        if run.status == RunStatus.PASS:
            change = _close(escalation, run) if escalation else None
        elif run.status in FAILING and run.priority in ESCALATED_PRIORITIES:
            change = _update(escalation, run) if escalation else _open(run)
        else:
            change = None
        if change is not None:
            transaction.on_commit(lambda: notify(change), robust=True)
    return change


def _open(run: GateRun) -> Change | None:
    needed = failures_needed()
    # The runs up to this one: a run that finished meanwhile is the next one's business.
    recent = list(
        GateRun.objects.filter(gate=run.gate, drill=False)
        .filter(Q(started_at__lt=run.started_at) | Q(started_at=run.started_at, id__lte=run.pk))
        .exclude(status=RunStatus.RUNNING)
        .order_by("-started_at", "-id")
        .only("id", "status", "started_at")[:needed]
    )
    if len(recent) < needed or any(earlier.status not in FAILING for earlier in recent):
        return None
    now = timezone.now()
    escalation = GateEscalation.objects.create(
        gate=run.gate,
        priority=run.priority,
        status=EscalationStatus.OPEN,
        opened_at=now,
        updated_at=now,
        first_run_id=recent[-1].pk,
        last_run=run,
        failures=needed,
        reason=failure_reason(run),
    )
    audit_record(
        actor=None,
        action="gates.escalation.opened",
        target=escalation,
        data={
            "gate": run.gate,
            "priority": run.priority,
            "runId": run.pk,
            "firstRunId": escalation.first_run_id,
            "failures": escalation.failures,
            "reason": escalation.reason,
        },
    )
    logger.warning("gate %s: escalation #%s opened by run #%s", run.gate, escalation.pk, run.pk)
    return Change(NotificationEvent.OPENED, escalation, run)


def _update(escalation: GateEscalation, run: GateRun) -> Change:
    escalation.failures += 1
    escalation.last_run = run
    escalation.reason = failure_reason(run)
    escalation.updated_at = timezone.now()
    escalation.save(update_fields=["failures", "last_run", "reason", "updated_at"])
    return Change(NotificationEvent.UPDATED, escalation, run)


def _close(escalation: GateEscalation, run: GateRun) -> Change:
    now = timezone.now()
    escalation.status = EscalationStatus.CLOSED
    escalation.closed_at = now
    escalation.closed_by_run = run
    escalation.updated_at = now
    escalation.save(update_fields=["status", "closed_at", "closed_by_run", "updated_at"])
    audit_record(
        actor=None,
        action="gates.escalation.closed",
        target=escalation,
        data={
            "gate": run.gate,
            "priority": escalation.priority,
            "closedByRunId": run.pk,
            "failures": escalation.failures,
            "openedAt": escalation.opened_at.isoformat(),
        },
    )
    logger.info("gate %s: escalation #%s closed by run #%s", run.gate, escalation.pk, run.pk)
    return Change(NotificationEvent.CLOSED, escalation, run)


def failure_reason(run: GateRun) -> str:
    if run.failed_check:
        reason = _("Run #%(run)s: %(status)s at %(check)s (%(kind)s): %(remediation)s") % {
            "run": run.pk,
            "status": _status_label(run.status),
            "check": run.failed_check,
            "kind": run.failure_kind or "-",
            "remediation": run.remediation or "-",
        }
    else:
        reason = _("Run #%(run)s: %(status)s") % {
            "run": run.pk,
            "status": _status_label(run.status),
        }
    return reason[:REASON_MAX_CHARS]


def _status_label(status: str) -> str:
    try:
        return str(RunStatus(status).label)
    except ValueError:
        return status


# --- the run's warnings -----------------------------------------------------------------


def add_run_warning(run: GateRun, message: str) -> None:
    """A warning in a finished run's evidence (as the runner's own ``ctx.warn``: evidence,
    summary count and log), saved at once."""
    evidence = run.evidence if isinstance(run.evidence, dict) else {}
    warnings = evidence.setdefault("warnings", [])
    warnings.append(message)
    run.evidence = evidence
    summary = run.summary if isinstance(run.summary, dict) else {}
    summary["warnings"] = len(warnings)
    run.summary = summary
    stamp = timezone.now().strftime("%H:%M:%S.%f")[:-3]
    run.log = f"{run.log}\n{stamp} warning: {message}" if run.log else f"{stamp} warning: {message}"
    try:
        run.save(update_fields=["evidence", "summary", "log"])
    except Exception:  # the warning is logged even when the run cannot take it
        logger.exception("gate %s #%s: a warning could not be saved", run.gate, run.pk)
    logger.warning("gate %s #%s: %s", run.gate, run.pk, message)


# --- notifications ------------------------------------------------------------------------


def run_link(run: GateRun) -> str:
    """The run's page on the deployment (GATES_BASE_URL), or nothing without one."""
    base = (settings.GATES_BASE_URL or "").rstrip("/")
    if not base:
        return ""
    try:
        path = reverse("gates:run", args=[run.pk])
    except NoReverseMatch:
        path = f"/gates/runs/{run.pk}/"
    return f"{base}{path}"


def _hours(delta) -> str:
    return f"{delta.total_seconds() / 3600:.1f}"


def notice_for(change: Change) -> webhooks.Notice:
    escalation, run = change.escalation, change.run
    values = {
        "priority": escalation.priority,
        "gate": escalation.gate,
        "id": escalation.pk,
        "failures": escalation.failures,
        "run": run.pk,
        "host": run.host or "-",
        "version": run.app_version or "-",
        "commit": run.app_commit or "-",
        "opened": escalation.opened_at.isoformat(timespec="seconds"),
    }
    where = _("Host %(host)s, version %(version)s, commit %(commit)s.") % values
    if change.event == NotificationEvent.OPENED:
        title = _("[%(priority)s] %(gate)s is failing: escalation #%(id)s opened") % values
        lines = [
            _("%(failures)d failing run(s) in a row; the latest is run #%(run)s.") % values,
            escalation.reason,
            where,
        ]
    elif change.event == NotificationEvent.UPDATED:
        title = _("[%(priority)s] %(gate)s is still failing: escalation #%(id)s updated") % values
        lines = [
            _("%(failures)d failing runs since %(opened)s; the latest is run #%(run)s.") % values,
            escalation.reason,
            where,
        ]
    else:
        title = _("[%(priority)s] %(gate)s passes again: escalation #%(id)s closed") % values
        lines = [
            _(
                "Run #%(run)s passed. The escalation was open %(hours)s h, with %(failures)d"
                " failing run(s)."
            )
            % {**values, "hours": _hours(escalation.closed_at - escalation.opened_at)},
            where,
        ]
    return webhooks.Notice(
        title=title,
        lines=[line for line in lines if line],
        link=run_link(run),
        link_label=_("Run #%(run)s") % values,
    )


def notify(change: Change) -> list[GateNotification]:
    """Tell every configured webhook about ``change``; each delivery is recorded. Never
    raises (called after the commit)."""
    try:
        return _notify(change)
    except Exception as exc:
        logger.exception("gate %s: the %s notification failed", change.run.gate, change.event)
        add_run_warning(
            change.run,
            _("The escalation's webhooks could not be notified (%(error)s).")
            % {"error": f"{type(exc).__name__}: {exc}"[:500]},
        )
        return []


def _notify(change: Change) -> list[GateNotification]:
    configured, problems = webhooks.configured_webhooks()
    for problem in problems:
        add_run_warning(change.run, problem)
    if not configured:
        if not problems:
            add_run_warning(
                change.run,
                _(
                    "No webhook is configured (GATES_WEBHOOKS): the escalation of %(gate)s"
                    " (%(event)s) was not sent anywhere."
                )
                % {"gate": change.escalation.gate, "event": change.event},
            )
        return []
    notice = notice_for(change)
    recorded = []
    for webhook in configured:
        delivery = webhooks.deliver(webhook, webhooks.body_for(webhook, notice))
        recorded.append(
            GateNotification.objects.create(
                escalation=change.escalation,
                run=change.run,
                event=change.event,
                channel=webhook.kind,
                target=webhook.target[:300],
                status=NotificationStatus.SENT if delivery.sent else NotificationStatus.FAILED,
                attempts=delivery.attempts,
                response_status=delivery.response_status,
                error=delivery.error,
            )
        )
        if not delivery.sent:
            add_run_warning(
                change.run,
                _(
                    "The %(event)s notification to %(target)s failed after %(attempts)d"
                    " attempt(s): %(error)s"
                )
                % {
                    "event": change.event,
                    "target": webhook,
                    "attempts": delivery.attempts,
                    "error": delivery.error,
                },
            )
    return recorded
