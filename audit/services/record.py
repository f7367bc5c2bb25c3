"""Writing audit events. Every write service calls :func:`audit_record` inside its own
transaction, so the event exists exactly when the change does."""

from __future__ import annotations

from django.db import transaction
from prometheus_client import Counter

from audit.masking import MASK, mask_secrets
from audit.models import AuditEvent
from common import context

AUDIT_EVENTS = Counter(
    "attendance_audit_events_total",
    "Audit events written (counted when their transaction commits), by the action's domain",
    ["domain"],
)

__all__ = ["MASK", "audit_record", "mask_secrets"]


def _actor_label(actor) -> str:
    if actor is None:
        return "system"
    if not getattr(actor, "is_authenticated", True):
        return "anonymous"  # a failed login, a denied anonymous request
    employee = getattr(actor, "employee", None)
    if employee is not None:
        return f"{actor.get_username()} ({employee.name})"
    return actor.get_username()


def audit_record(
    *,
    actor,
    action: str,
    organisation=None,
    target=None,
    target_type: str = "",
    target_id: str | int = "",
    data: dict | None = None,
) -> AuditEvent:
    """Append one audit event. ``target`` (a model instance) fills type and id; ``data`` is
    stored with its secrets masked (:mod:`audit.masking`). ``actor`` None is the system (a
    beat task, a command); an anonymous user is recorded as "anonymous"."""
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or target.pk
    request = context.current()
    domain = action.partition(".")[0]  # "imports", "attendance", …: a bounded label
    transaction.on_commit(lambda: AUDIT_EVENTS.labels(domain=domain).inc())
    return AuditEvent.objects.create(
        organisation=organisation,
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=_actor_label(actor)[:200],
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        request_id=request.request_id,
        ip=request.ip,
        user_agent=request.user_agent.replace("\x00", ""),  # text refuses NUL
        data=mask_secrets(data or {}),
    )
