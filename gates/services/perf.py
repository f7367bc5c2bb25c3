"""The perf gate, and perf-scale (the same runner with GATES_PERF_SCALE_ROWS rows): an import
of generated rows through a deployment's API, timed phase by phase (preview, commit, export,
rollback) against budgets and against the median of earlier good runs.

Judgements made here, and why:

- **Whose days.** The rows name employees of the gate's own, created by the import
  (``createMissingEmployees``) with numbers unique to the run (``gate-perf-<run>-<n>``):
  the gate never replaces a real employee's day, not even for the seconds the batch
  exists, so no punch, correction or later import can meet it and make its rollback
  conflict. The rollback deletes the batch's days and those employees (nothing else uses
  them); the gate checks that it did, from the batch's rollback figures. The deployment is
  left as it was found, its audit trail aside (the record that the gate ran).
- **Rows.** The standard template, one row per employee and day, ``DAYS_PER_EMPLOYEE`` days
  each, on fixed past dates (from 2020-01-06): never ``FUTURE_DATE`` in any time zone, and
  the same work in every run, so runs compare.
- **Commit.** Synchronous up to ``IMPORT_SYNC_MAX_ROWS`` (this process's setting: the same
  configuration as the deployment's), else ``commit-async`` with the job polled. commitMs
  is what a client waits, from the request to the job's end (a deployment whose worker is
  busy is slow to commit). A rollback may answer 202 with a job
  (``IMPORT_ASYNC_ROLLBACK_ROWS``): polled likewise.
- **Budgets.** One check per phase against ``GATES_PERF_MAX_<PHASE>_MS``, a regression when
  over it.
- **Baseline.** Per phase, the median of the last ``GATES_PERF_BASELINE_RUNS`` passing
  non-drill runs of the same gate with the same row count; a phase more than
  ``GATES_PERF_REGRESSION_RATIO`` times slower regresses (a median under 1 ms counts as
  1 ms). No such run yet: the check passes and says so.
- **Failures.** An API failure is classified by its status
  (:func:`gates.services.http.classify`: no answer, 429 or a 5xx other than 500 is a
  dependency; 401/403/404 the gate's configuration; 500 a defect); a commit or rollback job
  no worker finished in time is a dependency.
- **Cleanup.** Whatever stops the run once a batch exists, the batch is rolled back (one
  attempt: checks never retry); a commit job the gate stopped waiting for is awaited a while
  longer (``CLEANUP_WAIT_SECONDS`` at least) and its batch rolled back. A batch or job left
  behind is named in the remediation.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time

from django.conf import settings
from django.utils.translation import gettext as _

from gates.choices import FailureKind, OwnerRole, RunStatus
from gates.models import GateRun
from gates.services.http import ApiFailure, GateClient, classified, deployment_client
from gates.services.import_api import IMPORT_API, csv_file, job_result, roll_back, upload_csv
from gates.services.runs import CheckFailed, GateContext

PHASES = ("previewMs", "commitMs", "exportMs", "rollbackMs")
BUDGET_SETTINGS = {
    "previewMs": "GATES_PERF_MAX_PREVIEW_MS",
    "commitMs": "GATES_PERF_MAX_COMMIT_MS",
    "exportMs": "GATES_PERF_MAX_EXPORT_MS",
    "rollbackMs": "GATES_PERF_MAX_ROLLBACK_MS",
}
DAYS_PER_EMPLOYEE = 100
FIRST_DAY = dt.date(2020, 1, 6)
HEADER = ("employee_no", "name", "work_date", "first_in", "last_out", "status")
# How long the clean-up waits at least for a commit job the gate stopped waiting for.
CLEANUP_WAIT_SECONDS = 120


def employee_count(rows: int) -> int:
    return -(-rows // DAYS_PER_EMPLOYEE)


def generate_rows(run_id: int, rows: int) -> bytes:
    """``rows`` rows of the standard template for the run's own employees (CRLF, UTF-8)."""

    def generated():
        for index in range(rows):
            number, day = divmod(index, DAYS_PER_EMPLOYEE)
            arrival = 8 * 60 + 40 + (index * 7) % 40  # 08:40–09:19: some late days
            departure = 17 * 60 + 45 + (index * 11) % 45
            yield {
                "employee_no": f"gate-perf-{run_id}-{number:05d}",
                "name": f"Gate perf {run_id} #{number}",
                "work_date": (FIRST_DAY + dt.timedelta(days=day)).isoformat(),
                "first_in": f"{arrival // 60:02d}:{arrival % 60:02d}",
                "last_out": f"{departure // 60:02d}:{departure % 60:02d}",
            }

    return csv_file(HEADER, generated())


def elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def row_count(ctx: GateContext) -> int:
    default = (
        settings.GATES_PERF_SCALE_ROWS if ctx.run.gate == "perf-scale" else settings.GATES_PERF_ROWS
    )
    return int(ctx.options.get("rows") or default)


def run(ctx: GateContext) -> None:
    rows = row_count(ctx)
    phases: dict[str, int] = {}
    regressions: list[dict] = []
    ctx.figures.update({"rows": rows, "phases": phases, "regressions": regressions})

    def target(base_url):
        if rows < 1:
            raise CheckFailed(_("The row count must be at least 1."), kind=FailureKind.CONFIG)
        return _("%(rows)d rows against %(url)s") % {"rows": rows, "url": base_url}

    client = deployment_client(
        ctx,
        check="target",
        remediation=_(
            "Pass the deployment's address and an importer's token: --base-url and --token "
            "(or set GATES_BASE_URL and GATES_TOKEN)."
        ),
        describe=target,
    )
    with client:
        flow = PerfFlow(ctx, client, rows, phases)
        try:
            flow.import_and_roll_back()
        finally:
            flow.clean_up()
        ctx.figures["pollRetries"] = client.poll_retries_used
    for phase in PHASES:
        if phase in phases:
            check_budget(ctx, phase, phases[phase])
    check_regressions(ctx, rows, phases, regressions)
    ctx.finish()


class PerfFlow:
    """The round trip, phase by phase; remembers the batch so that it is always rolled
    back."""

    def __init__(self, ctx: GateContext, client: GateClient, rows: int, phases: dict):
        self.ctx, self.client, self.rows, self.phases = ctx, client, rows, phases
        self.employees = employee_count(rows)
        self.file_id = None
        self.batch_id = None
        self.commit_job_id = None
        self.rollback_tried = False

    def step(self, name: str, probe, *, stop: bool = True, **attributes):
        attributes.setdefault("owner", OwnerRole.DEVELOPER)
        return self.ctx.check(
            name, classified(probe, self.client.base_url), stop=stop, **attributes
        )

    def import_and_roll_back(self) -> None:
        self.step("upload", self.upload)
        self.step("preview", self.preview)
        self.step(
            "commit",
            self.commit,
            remediation=_("Read the job or the web log of the deployment for the failure."),
        )
        self.step("export", self.export, stop=False)
        self.roll_back()

    def clean_up(self) -> None:
        """After a stop: the batch, if one was made, is rolled back all the same. A commit job
        the gate stopped waiting for may still make one: it is awaited (a while longer) so
        that its batch is rolled back too."""
        if self.batch_id is None and self.commit_job_id is not None:
            try:
                job = self.client.poll_job(
                    self.commit_job_id,
                    timeout=max(settings.GATES_POLL_TIMEOUT_SECONDS, CLEANUP_WAIT_SECONDS),
                )
            except CheckFailed as failure:
                self.ctx.record(
                    "rollback",
                    False,
                    _("The commit job %(job)s did not end: %(error)s")
                    % {"job": self.commit_job_id, "error": failure.detail},
                    kind=FailureKind.DEPENDENCY,
                    remediation=_(
                        "When import job %(job)s ends, roll back its batch (employees"
                        " gate-perf-%(run)s-* are the gate's)."
                    )
                    % {"job": self.commit_job_id, "run": self.ctx.run.pk},
                    owner=OwnerRole.OPS,
                )
                return
            self.batch_id = job.get("batchId")
            self.ctx.evidence["batchId"] = self.batch_id
            self.ctx.log(
                f"the commit job {self.commit_job_id} ended {job['status']}"
                f" (batch {self.batch_id}) after the gate stopped waiting"
            )
        if self.batch_id is not None and not self.rollback_tried:
            self.roll_back()

    def upload(self):
        body = generate_rows(self.ctx.run.pk, self.rows)
        started = time.perf_counter()
        upload = upload_csv(self.client, f"gate-perf-{self.ctx.run.pk}.csv", body)
        self.ctx.figures["uploadMs"] = elapsed_ms(started)
        self.ctx.figures["uploadBytes"] = len(body)
        self.file_id = upload["fileId"]
        if upload.get("format") != "standard" or upload.get("rowCount") != self.rows:
            raise CheckFailed(
                _(
                    "The upload was read as %(format)s with %(count)s rows, not standard with"
                    " %(rows)d."
                )
                % {
                    "format": upload.get("format"),
                    "count": upload.get("rowCount"),
                    "rows": self.rows,
                },
                evidence={"upload": upload},
            )
        return _("%(bytes)d bytes, %(rows)d rows") % {"bytes": len(body), "rows": self.rows}

    def import_body(self) -> dict:
        return {"fileId": self.file_id, "format": "standard", "createMissingEmployees": True}

    def preview(self):
        started = time.perf_counter()
        preview = self.client.post(
            f"{IMPORT_API}/preview", json={**self.import_body(), "previewLimit": 5}
        )
        self.phases["previewMs"] = elapsed_ms(started)
        stats = preview.get("stats") or {}
        evidence = {"stats": stats, "employeesToCreate": preview.get("employeesToCreate")}
        if stats.get("insert") != self.rows or preview.get("employeesToCreate") != self.employees:
            raise CheckFailed(
                _(
                    "The preview would insert %(insert)s days and create %(created)s employees,"
                    " not %(rows)d and %(employees)d: the generated rows are not what the"
                    " deployment reads."
                )
                % {
                    "insert": stats.get("insert"),
                    "created": preview.get("employeesToCreate"),
                    "rows": self.rows,
                    "employees": self.employees,
                },
                evidence={**evidence, "errors": preview.get("errors")},
            )
        return _("%(ms)d ms") % {"ms": self.phases["previewMs"]}, evidence

    def commit(self):
        token = self.client.post(f"{IMPORT_API}/prepare")["commitToken"]
        body = {**self.import_body(), "commitToken": token}
        asynchronous = self.rows > settings.IMPORT_SYNC_MAX_ROWS
        self.ctx.figures["commitMode"] = "async" if asynchronous else "sync"
        started = time.perf_counter()
        if asynchronous:
            job = self.client.post(f"{IMPORT_API}/commit-async", json=body)["job"]
            self.commit_job_id = self.ctx.evidence["commitJob"] = job["id"]
            job = self.client.poll_job(job["id"])
            self.phases["commitMs"] = elapsed_ms(started)
            self.batch_id = job.get("batchId")
            result = job_result(job)
        else:
            result = self.client.post(f"{IMPORT_API}/commit", json=body)
            self.phases["commitMs"] = elapsed_ms(started)
        self.batch_id = result.get("batchId") or self.batch_id
        self.ctx.evidence["batchId"] = self.batch_id
        stats = result.get("stats") or {}
        if stats.get("insert") != self.rows:
            raise CheckFailed(
                _("The commit inserted %(insert)s days, not %(rows)d.")
                % {"insert": stats.get("insert"), "rows": self.rows},
                evidence={"result": result},
            )
        detail = _("batch %(batch)s, %(mode)s, %(ms)d ms") % {
            "batch": self.batch_id,
            "mode": self.ctx.figures["commitMode"],
            "ms": self.phases["commitMs"],
        }
        return detail, {"batchId": self.batch_id, "stats": stats}

    def export(self):
        path = f"{IMPORT_API}/batches/{self.batch_id}/export.csv"
        started = time.perf_counter()
        size = lines = 0
        # Streamed: a high-scale export is tens of megabytes, none of which the gate keeps.
        try:
            with self.client.http.stream("GET", path, params={"type": "all"}) as response:
                if response.status_code != 200:
                    response.read()
                    raise ApiFailure(
                        "GET", path, response.status_code, "HTTP_ERROR", response.text[:300]
                    )
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    lines += chunk.count(b"\n")
        except ApiFailure:
            raise
        except Exception as exc:  # the connection broke mid-download
            raise ApiFailure("GET", path, None, type(exc).__name__, str(exc)) from exc
        self.phases["exportMs"] = elapsed_ms(started)
        evidence = {"bytes": size, "lines": lines}
        if lines != self.rows + 1:
            raise CheckFailed(
                _("The export has %(lines)d lines, not a header and %(rows)d rows.")
                % {"lines": lines, "rows": self.rows},
                evidence=evidence,
            )
        return _("%(bytes)d bytes, %(ms)d ms") % {"bytes": size, "ms": self.phases["exportMs"]}, (
            evidence
        )

    def roll_back(self) -> None:
        if self.batch_id is None:
            return
        self.rollback_tried = True
        left_behind = _(
            "Batch %(batch)s of the gate may still be committed: roll it back (the import's"
            " batch page or POST %(api)s/rollback/%(batch)s)."
        ) % {"batch": self.batch_id, "api": IMPORT_API}
        done = self.step("rollback", self.rollback, stop=False, remediation=left_behind)
        if done is not None:
            self.step(
                "cleanup",
                self.cleanup,
                stop=False,
                remediation=_(
                    "Employees gate-perf-%(run)s-* were left in the organisation: something"
                    " refers to them (a login, a request); remove them by hand."
                )
                % {"run": self.ctx.run.pk},
                owner=OwnerRole.OPS,
            )

    def rollback(self):
        started = time.perf_counter()
        data, asynchronous = roll_back(self.client, self.batch_id)
        self.phases["rollbackMs"] = elapsed_ms(started)
        self.ctx.figures["rollbackMode"] = "async" if asynchronous else "sync"
        if data.get("deleted") != self.rows:
            raise CheckFailed(
                _("The rollback deleted %(deleted)s days, not %(rows)d.")
                % {"deleted": data.get("deleted"), "rows": self.rows},
                evidence={"result": data},
            )
        return _("%(ms)d ms") % {"ms": self.phases["rollbackMs"]}, {"result": data}

    def cleanup(self):
        batch = self.client.get(f"{IMPORT_API}/batches/{self.batch_id}")
        created = batch.get("createdEmployees")
        deleted = (batch.get("rollback") or {}).get("employeesDeleted")
        evidence = {"status": batch.get("status"), "created": created, "deleted": deleted}
        if batch.get("status") != "rolled_back" or created != self.employees or deleted != created:
            raise CheckFailed(
                _(
                    "The batch is %(status)s; it created %(created)s employees and its rollback"
                    " removed %(deleted)s."
                )
                % evidence,
                evidence=evidence,
            )
        return _("%(deleted)s employees the gate created were removed") % evidence, evidence


def check_budget(ctx: GateContext, phase: str, ms: int) -> None:
    name = BUDGET_SETTINGS[phase]
    budget = getattr(settings, name)

    def probe():
        evidence = {"phase": phase, "ms": ms, "budgetMs": budget, "setting": name}
        if ms > budget:
            raise CheckFailed(
                _("%(phase)s %(ms)d ms is over its budget of %(budget)d ms (%(setting)s).")
                % {"phase": phase, "ms": ms, "budget": budget, "setting": name},
                kind=FailureKind.REGRESSION,
                evidence=evidence,
            )
        return _("%(ms)d ms of %(budget)d") % {"ms": ms, "budget": budget}, evidence

    ctx.check(
        f"{phase.removesuffix('Ms')}-budget",
        probe,
        kind=FailureKind.REGRESSION,
        remediation=_(
            "Find what made the %(phase)s phase slow (the deployment's load, its database, a"
            " change since the last good run) before raising %(setting)s."
        )
        % {"phase": phase.removesuffix("Ms"), "setting": name},
        owner=OwnerRole.DEVELOPER,
    )


def baseline_runs(ctx: GateContext, rows: int) -> list[tuple[int, dict]]:
    """(id, phases) of the last good runs this one compares with: passing, not drills, of the
    same gate and row count."""
    runs = (
        GateRun.objects.filter(
            gate=ctx.run.gate, drill=False, status=RunStatus.PASS, summary__rows=rows
        )
        .exclude(pk=ctx.run.pk)
        .order_by("-started_at", "-id")
        .values_list("pk", "summary")[: settings.GATES_PERF_BASELINE_RUNS]
    )
    return [(pk, (summary or {}).get("phases") or {}) for pk, summary in runs]


def find_regressions(phases: dict, baseline: list[tuple[int, dict]], ratio: float):
    """The medians of the baseline per phase, and the phases more than ``ratio`` times
    slower than theirs."""
    medians, regressions = {}, []
    for phase in PHASES:
        earlier = [
            figures[phase]
            for _pk, figures in baseline
            if isinstance(figures.get(phase), int | float)
        ]
        if not earlier:
            continue
        medians[phase] = statistics.median(earlier)
        if phase not in phases:
            continue
        slower = phases[phase] / max(medians[phase], 1)
        if slower > ratio:
            regressions.append(
                {
                    "phase": phase,
                    "ms": phases[phase],
                    "baselineMedianMs": medians[phase],
                    "ratio": round(slower, 2),
                }
            )
    return medians, regressions


def check_regressions(ctx: GateContext, rows: int, phases: dict, regressions: list) -> None:
    ratio = settings.GATES_PERF_REGRESSION_RATIO

    def probe():
        baseline = baseline_runs(ctx, rows)
        medians, found = find_regressions(phases, baseline, ratio)
        regressions.extend(found)
        ctx.figures["baselineRuns"] = len(baseline)
        evidence = {
            "baselineRuns": [pk for pk, _figures in baseline],
            "medians": medians,
            "ratio": ratio,
            "regressions": found,
        }
        ctx.evidence["baseline"] = evidence
        ctx.evidence["regressions"] = found
        if not baseline:
            evidence["note"] = _(
                "No baseline yet: no earlier passing non-drill %(gate)s run of %(rows)d rows."
            ) % {"gate": ctx.run.gate, "rows": rows}
            return evidence["note"], evidence
        if found:
            raise CheckFailed(
                _("Slower than the median of the last %(runs)d good runs: %(list)s.")
                % {
                    "runs": len(baseline),
                    "list": "; ".join(
                        _("%(phase)s %(ms)d ms, median %(median)s ms, ×%(ratio)s")
                        % {
                            "phase": item["phase"],
                            "ms": item["ms"],
                            "median": item["baselineMedianMs"],
                            "ratio": item["ratio"],
                        }
                        for item in found
                    ),
                },
                kind=FailureKind.REGRESSION,
                evidence=evidence,
            )
        return _("within ×%(ratio)s of the median of %(runs)d good runs") % {
            "ratio": ratio,
            "runs": len(baseline),
        }, evidence

    ctx.check(
        "regression",
        probe,
        kind=FailureKind.REGRESSION,
        remediation=_(
            "Compare this run with its baseline runs (same row count) and find the change"
            " that slowed the phases listed."
        ),
        owner=OwnerRole.DEVELOPER,
    )
