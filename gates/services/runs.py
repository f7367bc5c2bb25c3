"""Running a gate: one :class:`~gates.models.GateRun` per run, written when it starts (so a
run that dies leaves a trace) and completed with its checks, figures, log and, for a
failure, which check failed, what kind of failure it is and who should act.

A run passes only when its runner reached its last step (:meth:`GateContext.finish`, the
end marker in the evidence) and no blocking check failed; it never passes because nothing
failed."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
import traceback
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from django.utils import timezone

from gates.choices import FailureKind, OwnerRole, RunStatus
from gates.models import GateRun
from gates.services.registry import gate_spec

logger = logging.getLogger("attendance.gates")
ROOT = Path(__file__).resolve().parents[2]
END_MARKER = "gate-complete"


class GateStopped(Exception):
    """Raised by :meth:`GateContext.check` with ``stop=True`` when the check failed: the steps
    after it depend on it, so the run ends there (as a failure)."""


class CheckFailed(Exception):
    """A probe's way to fail with a classification and evidence (any other exception fails
    the check as a defect)."""

    def __init__(
        self,
        detail: str,
        *,
        kind: str | None = None,
        evidence: dict | None = None,
        remediation: str = "",
        owner: str | None = None,
    ):
        super().__init__(detail)
        self.detail = detail
        self.kind = kind
        self.evidence = evidence or {}
        # A probe that knows what went wrong (a refused token, a 502) knows the hint and
        # who acts on it better than the check's defaults.
        self.remediation = remediation
        self.owner = owner


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""
    kind: str = FailureKind.DEFECT
    remediation: str = ""
    owner: str = OwnerRole.DEVELOPER
    blocking: bool = True
    elapsed_ms: float = 0.0
    evidence: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["elapsed_ms"] = round(self.elapsed_ms, 1)
        return data


class GateContext:
    """What a runner works with: its options, a log, checks and summary figures."""

    def __init__(self, run: GateRun, options: dict):
        self.run = run
        self.options = options
        self.checks: list[Check] = []
        self.figures: dict = {}
        self.evidence: dict = {}
        self.warnings: list[str] = []
        self.completed = False
        self._log: list[str] = []

    def log(self, message: str) -> None:
        stamp = timezone.now().strftime("%H:%M:%S.%f")[:-3]
        self._log.append(f"{stamp} {message}")
        logger.info("gate %s #%s: %s", self.run.gate, self.run.pk, message)

    def warn(self, message: str) -> None:
        """Something an operator should know that does not fail the run."""
        self.warnings.append(message)
        self.log(f"warning: {message}")

    def check(
        self,
        name: str,
        probe,
        *,
        kind: str = FailureKind.DEFECT,
        remediation: str = "",
        owner: str = OwnerRole.DEVELOPER,
        blocking: bool = True,
        stop: bool = False,
    ):
        """Run ``probe()`` once (checks never retry) and record it. The probe returns a
        detail string, a ``(detail, evidence)`` pair or None; it fails by raising
        (:class:`CheckFailed` to classify the failure). Returns the probe's value (None
        when it failed); with ``stop`` a failure ends the run (:class:`GateStopped`)."""
        started = time.perf_counter()
        value, evidence = None, {}
        try:
            value = probe()
            ok, detail = True, "ok"
            if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
                detail, evidence = value
            elif isinstance(value, str):
                detail = value
        except GateStopped:
            raise
        except CheckFailed as failure:
            ok, detail, evidence = False, failure.detail, failure.evidence
            kind = failure.kind or kind
            remediation = failure.remediation or remediation
            owner = failure.owner or owner
        except Exception as exc:  # a check reports any failure of its probe
            ok, detail = False, f"{type(exc).__name__}: {exc}".strip()
        self.record(
            name,
            ok,
            str(detail)[:2000],
            kind=kind,
            remediation=remediation,
            owner=owner,
            blocking=blocking,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            evidence=evidence,
        )
        if not ok and stop:
            raise GateStopped(name)
        return value if ok else None

    def record(self, name: str, ok: bool, detail: str = "", **attributes) -> Check:
        """Record a check whose outcome is already known."""
        check = Check(name, ok, detail, **attributes)
        self.checks.append(check)
        self.log(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
        return check

    def finish(self) -> None:
        """The runner reached its last step: the end marker in the evidence."""
        self.completed = True
        self.log(END_MARKER)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.ok and check.blocking]


def app_version() -> str:
    try:
        return version("attendance")
    except PackageNotFoundError:
        return "unknown"


def app_commit() -> str:
    """APP_COMMIT (set by the image build), else the checkout's HEAD, else empty."""
    commit = os.environ.get("APP_COMMIT", "")
    if commit:
        return commit[:64]
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def run_gate(
    name: str,
    *,
    options: dict | None = None,
    drill: bool = False,
    user=None,
    trigger: str = "cli",
) -> GateRun:
    """Run gate ``name`` once and store the run. Never raises for the gate's own failures:
    they are the run's status (``fail``: a check failed or the end was not reached;
    ``error``: the runner itself broke)."""
    spec = gate_spec(name)
    options = dict(options or {})
    run = GateRun.objects.create(
        gate=spec.name,
        priority=spec.priority,
        drill=drill,
        triggered_by=user if getattr(user, "pk", None) else None,
        trigger=trigger,
        host=socket.gethostname()[:255],
        base_url=str(options.get("base_url") or "")[:500],
        app_version=app_version(),
        app_commit=app_commit(),
        # Tokens are never stored (the admin's --token, the smoke's --requester-token).
        options={key: value for key, value in options.items() if not key.endswith("token")},
        started_at=timezone.now(),
    )
    context = GateContext(run, options)
    context.log(f"{spec.name} ({spec.priority}){' drill' if drill else ''} started on {run.host}")
    crashed = None
    try:
        spec.load()(context)
    except GateStopped as stopped:
        context.log(f"stopped after the failing check {stopped}")
    except Exception as exc:  # the runner broke: the run is an error, with its traceback
        crashed = exc
        context.log("".join(traceback.format_exception(exc)).rstrip())
    _complete(run, context, crashed)
    if not drill:
        from gates.services.escalation import after_run

        after_run(run)
    return run


def _complete(run: GateRun, context: GateContext, crashed: Exception | None) -> None:
    failures = context.failures
    if crashed is not None:
        run.status = RunStatus.ERROR
        run.failed_check = "runner"
        run.failure_kind = FailureKind.DEFECT
        run.remediation = f"The gate itself failed ({type(crashed).__name__}: {crashed})."[:2000]
        run.remediation_owner = OwnerRole.DEVELOPER
    elif failures:
        first = failures[0]
        run.status = RunStatus.FAIL
        run.failed_check = first.name[:100]
        run.failure_kind = first.kind
        run.remediation = first.remediation or first.detail
        run.remediation_owner = first.owner
    elif not context.completed:
        run.status = RunStatus.FAIL
        run.failed_check = "end-marker"
        run.failure_kind = FailureKind.DEFECT
        run.remediation = "The run did not reach its last step; read its log."
        run.remediation_owner = OwnerRole.DEVELOPER
    else:
        run.status = RunStatus.PASS
    run.finished_at = timezone.now()
    run.duration_ms = int((run.finished_at - run.started_at).total_seconds() * 1000)
    run.summary = {
        **context.figures,
        "checks": len(context.checks),
        "failed": len([check for check in context.checks if not check.ok]),
        "warnings": len(context.warnings),
    }
    run.evidence = {
        **context.evidence,
        "checks": [check.as_dict() for check in context.checks],
        "warnings": context.warnings,
        "completed": context.completed,
        "endMarker": END_MARKER if context.completed else None,
    }
    run.log = "\n".join(context._log)[-200_000:]
    run.save()
    logger.info(
        "gate %s #%s finished: %s",
        run.gate,
        run.pk,
        run.status,
        extra={"gate": run.gate, "gate_run": run.pk, "status": run.status},
    )
