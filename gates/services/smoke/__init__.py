"""The ``smoke`` gate: the API's main paths, end to end, against a running deployment
(``base_url``) as one of its admins (``token``); and ``strict``: the smoke twice in a row.

One pass, each step a check that stops the run when it fails (checks never retry):

1. ``livez``, ``readyz``; ``me`` (the token's user must be an admin); ``records``.
2. ``cleanup`` (advisory): batches a broken earlier smoke left committed are rolled back.
3. The import round trip on generated rows: ``import-template`` (its header is the file's),
   ``import-upload``, ``import-preview``, ``import-commit`` (``commit-async`` with an
   idempotency key, the job polled), ``import-retry`` (the same key again: the same batch,
   ``idempotent: true``), ``import-batch``, ``import-export`` (the batch's CSV),
   ``import-rollback``.
4. A correction: ``correction-requester``, ``correction-request``, ``correction-approve``,
   ``correction-adjusted`` (the day is ``adjusted`` in records, with the asked times).
5. ``audit-events`` (the audit-logs API lists the batch's and the request's events) and
   ``audit-export`` (the audit CSV holds them).

:class:`SmokePass` runs them in that order; each concern is a module of this package, whose
docstring gives the judgements made there, and why:

- :mod:`.basics`: health, the token's user, the records list;
- :mod:`.cleanup`: what an earlier smoke stopped midway left behind;
- :mod:`.round_trip`: the import round trip, and the days it uses;
- :mod:`.correction`: the correction, who asks for it (the synthetic requester employee
  and its token) and on which day;
- :mod:`.audit_trail`: the audit events of the batch and the request;
- :mod:`.common`: what the steps share (a wrong answer, the CSV answers, moments).

Polling a job is the only place that tolerates transient answers (429/5xx, bounded by
GATES_POLL_RETRIES, counted in the figures and the evidence as ``pollRetries``).

**Failure kinds.** Unreachable, 429, 502/503/504 or a job no worker finished: dependency
(ops). A refused token (401), a missing role or the IP allowlist (403), a bad or missing
URL or token, an address without /livez: config (ops). 500 (the application failed) and
wrong answers: defect (developers). The statuses are read by
:func:`gates.services.http.classify`, as for the other gates.
"""

from __future__ import annotations

import time
import uuid

from django.conf import settings
from django.utils.translation import gettext as _

from gates.choices import FailureKind, OwnerRole
from gates.services.http import GateClient, classified, deployment_client
from gates.services.runs import GateContext
from gates.services.smoke.audit_trail import AuditTrail
from gates.services.smoke.basics import Basics
from gates.services.smoke.cleanup import LEFTOVER_AGE, roll_back_leftover_batches
from gates.services.smoke.correction import (
    REQUESTER_EMPLOYEE_NO,
    Correction,
    issue_requester_token,
    revoke_requester_token,
)
from gates.services.smoke.round_trip import FILE_PREFIX, IMPORT_ROWS, ImportRoundTrip

__all__ = [
    "FILE_PREFIX",
    "IMPORT_ROWS",
    "LEFTOVER_AGE",
    "REQUESTER_EMPLOYEE_NO",
    "SmokePass",
    "issue_requester_token",
    "revoke_requester_token",
    "run",
    "run_strict",
]


def run(ctx: GateContext) -> None:
    client = _configured_client(ctx)
    smoke = SmokePass(ctx, client)
    try:
        smoke.run()
    finally:
        ctx.figures.update(smoke.figures)
        _count_poll_retries(ctx, client)
        client.close()
    ctx.finish()


def run_strict(ctx: GateContext) -> None:
    """The smoke twice in a row in one run (checks prefixed ``first:`` and ``second:``);
    the end marker only after both passed."""
    client = _configured_client(ctx)
    passed = 0
    try:
        for label in ("first", "second"):
            smoke = SmokePass(ctx, client, label=label)
            try:
                smoke.run()
                passed += 1
            finally:
                ctx.figures[label] = smoke.figures
    finally:
        ctx.figures["passes"] = passed
        _count_poll_retries(ctx, client)
        client.close()
    ctx.finish()


def _count_poll_retries(ctx: GateContext, client: GateClient) -> None:
    ctx.figures["pollRetries"] = client.poll_retries_used
    ctx.evidence["polling"] = {
        "retries": client.poll_retries_used,
        "retriesAllowedPerJob": settings.GATES_POLL_RETRIES,
        "timeoutSeconds": settings.GATES_POLL_TIMEOUT_SECONDS,
    }


def _configured_client(ctx: GateContext) -> GateClient:
    return deployment_client(
        ctx,
        check="config",
        remediation=_(
            "Give the deployment's address and an admin's bearer token: --base-url and "
            "--token (or GATES_BASE_URL and GATES_TOKEN); a token comes from "
            "manage.py issue_token <username>."
        ),
        describe=lambda base_url: _("%(url)s, with an admin token") % {"url": base_url},
    )


class SmokePass:
    """One smoke pass: its steps in order, the state they hand on, and its figures."""

    def __init__(self, ctx: GateContext, client: GateClient, *, label: str = ""):
        self.ctx = ctx
        self.client = client
        self.prefix = f"{label}: " if label else ""
        self.tag = uuid.uuid4().hex[:10]
        self.figures: dict = {"rows": IMPORT_ROWS, "stepsMs": {}}
        # Until /livez answered, a 404 says the base URL is not the application's root.
        self.root_confirmed = False
        # The token's user (``me``) and the organisation's today, from the basics.
        self.me: dict = {}
        self.today = None

    def run(self) -> None:
        started = time.perf_counter()
        correction = Correction(self)
        try:
            Basics(self).run()
            self.ctx.check(
                self.prefix + "cleanup",
                lambda: roll_back_leftover_batches(self.client, self.ctx),
                blocking=False,
                remediation=_("Roll the listed batches back by hand (they hold synthetic rows)."),
            )
            round_trip = ImportRoundTrip(self)
            round_trip.run()
            correction.run()
            AuditTrail(
                self, batch_id=round_trip.batch_id, request_id=correction.request["id"]
            ).run()
        finally:
            correction.release()
            self.figures["totalMs"] = round((time.perf_counter() - started) * 1000, 1)

    def step(self, name: str, probe, *, remediation: str, owner: str = OwnerRole.DEVELOPER):
        value = self.ctx.check(
            self.prefix + name,
            classified(probe, self.client.base_url, root_confirmed=self.root_confirmed),
            kind=FailureKind.DEFECT,
            remediation=remediation,
            owner=owner,
            stop=True,
        )
        self.figures["stepsMs"][name] = round(self.ctx.checks[-1].elapsed_ms, 1)
        return value
