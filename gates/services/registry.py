"""Which gates exist, their priority, and the runner that performs each."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib import import_module

from django.conf import settings
from django.utils.translation import gettext_lazy

from gates.choices import Priority


@dataclass(frozen=True)
class GateSpec:
    name: str
    priority: str
    runner: str  # "module:function", imported when the gate runs
    description: str  # lazy: read in the reader's language

    def load(self):
        module, _, function = self.runner.partition(":")
        return getattr(import_module(module), function)

    @property
    def stale_after(self) -> dt.timedelta:
        """A run older than this no longer speaks for the deployment (P0/P1: 36 h, P2: 10 days
        by default, GATES_STALE_HOURS / GATES_STALE_HOURS_P2)."""
        if self.priority == Priority.P2:
            return dt.timedelta(hours=settings.GATES_STALE_HOURS_P2)
        return dt.timedelta(hours=settings.GATES_STALE_HOURS)


GATES: dict[str, GateSpec] = {
    spec.name: spec
    for spec in (
        GateSpec(
            "preflight",
            Priority.P0,
            "gates.services.preflight:run",
            gettext_lazy("Configuration, dependencies and storage are fit for production."),
        ),
        GateSpec(
            "smoke",
            Priority.P0,
            "gates.services.smoke:run",
            gettext_lazy("The API's main paths work end to end against a running deployment."),
        ),
        GateSpec(
            "strict",
            Priority.P0,
            "gates.services.smoke:run_strict",
            gettext_lazy("The smoke gate twice in a row; both must pass."),
        ),
        GateSpec(
            "perf",
            Priority.P1,
            "gates.services.perf:run",
            gettext_lazy(
                "An import through the API within its time budgets and without regression."
            ),
        ),
        GateSpec(
            "perf-scale",
            Priority.P2,
            "gates.services.perf:run",
            gettext_lazy("The perf gate at high scale (500,000 rows by default)."),
        ),
        GateSpec(
            "metrics",
            Priority.P1,
            "gates.services.metrics:run",
            gettext_lazy("/metrics answers with the application's own series."),
        ),
    )
}


def gate_spec(name: str) -> GateSpec:
    try:
        return GATES[name]
    except KeyError:
        raise KeyError(f"unknown gate {name!r}; one of: {', '.join(GATES)}") from None
