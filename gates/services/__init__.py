"""Gates: each gate is a runner (a function of a :class:`~gates.services.runs.GateContext`)
registered in :mod:`gates.services.registry`; :func:`run_gate` stores every run."""

from gates.services.runs import GateContext, GateStopped, run_gate

__all__ = ["GateContext", "GateStopped", "run_gate"]
