"""Writing audit events. Every write service calls :func:`audit_record` inside its own
transaction, so the event exists exactly when the change does."""

from __future__ import annotations

import re

from audit.models import AuditEvent
from common import context

_SECRET_KEY = re.compile(r"pass(word)?|secret|token|api[_-]?key|authorization|cookie", re.I)
MASK = "***"


def mask_secrets(value):
    """Replace the values of secret-looking keys, at any depth, with ``***``."""
    if isinstance(value, dict):
        return {
            key: MASK if _SECRET_KEY.search(str(key)) else mask_secrets(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_secrets(item) for item in value]
    return value


def _actor_label(actor) -> str:
    if actor is None:
        return "system"
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
    """Append one audit event. ``target`` (a model instance) fills type and id."""
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or target.pk
    request = context.current()
    return AuditEvent.objects.create(
        organisation=organisation,
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=_actor_label(actor)[:200],
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        request_id=request.request_id,
        ip=request.ip,
        user_agent=request.user_agent,
        data=mask_secrets(data or {}),
    )
