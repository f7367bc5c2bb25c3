"""Escalations: opened, updated and closed by non-drill runs; webhooks notified."""

from __future__ import annotations


def after_run(run) -> None:
    """Open, update or close ``run.gate``'s escalation (a non-drill run only)."""
