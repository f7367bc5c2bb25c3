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

Polling a job is the only place that tolerates transient answers (429/5xx, bounded by
GATES_POLL_RETRIES, counted in the figures and the evidence as ``pollRetries``).

**Who approves.** Nobody decides their own correction (``attendance.services.can_decide``:
"never the requester"), and ``POST /api/attendance/requests`` always asks for the caller's
own day, so one admin token cannot both ask and approve. The admin approves; the request
comes from a second identity: ``requester_token`` (``--requester-token``: a dedicated test
employee of the same organisation, whose days keep the corrections) when given, else the
smoke's own synthetic employee ``GATES-SMOKE`` (user ``gates-smoke-<organisation id>``,
role employee only, no usable password), created once through ``user_provision`` and given
a bearer token for the run only (``api_token_issue``, revoked when the pass ends, both
audited with the admin as actor). That token is issued in this process, so it needs the
deployment's database; the admin token is looked up there first, and a token this database
does not know fails the ``correction-requester`` check as ``config``. The synthetic
employee keeps real people's days untouched.

**Days.** The import creates its own employees (numbers ``GS-<pass tag>-<n>``, unique per
pass) on yesterday and the day before, and its rollback deletes their days and the
employees: the import leaves nothing but its audit events. The correction stays: it is the
synthetic employee's n-th (n = their requests so far), on the day ``n mod
(CORRECTION_MAX_AGE_DAYS - 1)`` days before yesterday, so consecutive runs (and strict's two
passes) use different days inside the correction window; when the cycle comes back to a day
the asked times alternate, so a day is never "adjusted" only because it already was.
Pending requests of the synthetic employee older than LEFTOVER_AGE (a run stopped between
asking and approving) are cancelled first.

**Failure kinds.** Unreachable, 429, 502/503/504 or a job no worker finished: dependency
(ops). A refused token (401), a missing role or the IP allowlist (403), a bad or missing
URL or token: config (ops). 500 (the application failed) and wrong answers: defect
(developers).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
import uuid
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.utils.translation import gettext as _

from gates.choices import FailureKind, OwnerRole
from gates.services.http import ApiFailure, GateClient
from gates.services.runs import CheckFailed, GateContext

BOM = "\ufeff"
FILE_PREFIX = "gates-smoke-"
IMPORT_EMPLOYEES = 5
IMPORT_DAYS = 2
IMPORT_ROWS = IMPORT_EMPLOYEES * IMPORT_DAYS
IMPORT_FORMAT = "standard"
REQUESTER_EMPLOYEE_NO = "GATES-SMOKE"
REQUESTER_NAME = "Gates smoke (synthetic employee)"
# A leftover is older than any run could be: a younger one may be a concurrent run's.
LEFTOVER_AGE = dt.timedelta(minutes=15)
ADMIN_ROLE = "attendance_admin"

IMPORT = "/api/attendance/import"
AUDIT = "/api/attendance-admin/audit-logs"
BATCH_TARGET = "imports.importbatch"
REQUEST_TARGET = "attendance.adjustmentrequest"
BATCH_ACTIONS = {"imports.batch.committed", "imports.batch.exported", "imports.batch.rolled_back"}
REQUEST_ACTIONS = {"attendance.request.created", "attendance.request.approved"}


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
    found = {}

    def probe():
        base_url = str(ctx.options.get("base_url") or "").strip()
        token = str(ctx.options.get("token") or "").strip()
        missing = [
            flag for flag, value in (("--base-url", base_url), ("--token", token)) if not value
        ]
        if missing:
            raise CheckFailed(_("Missing: %(flags)s.") % {"flags": ", ".join(missing)})
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CheckFailed(
                _("The base URL %(url)s is not an http(s) address.") % {"url": base_url}
            )
        found.update(base_url=base_url, token=token)
        return _("%(url)s, with an admin token") % {"url": base_url}

    ctx.check(
        "config",
        probe,
        kind=FailureKind.CONFIG,
        owner=OwnerRole.OPS,
        remediation=_(
            "Give the deployment's address and an admin's bearer token: --base-url and "
            "--token (or GATES_BASE_URL and GATES_TOKEN); a token comes from "
            "manage.py issue_token <username>."
        ),
        stop=True,
    )
    return GateClient(found["base_url"], found["token"])


def classify(failure: ApiFailure, base_url: str) -> None:
    """Give an API failure its kind, hint and owner, where its status says more than the
    step does; any other answer stays the step's own (a defect by default)."""
    status, code = failure.status, failure.code
    kind, owner, hint = None, OwnerRole.OPS, ""
    if status is None and code in ("UnsupportedProtocol", "InvalidURL"):
        kind = FailureKind.CONFIG
        hint = _("The base URL %(url)s cannot be requested: give an http(s) address.")
    elif status is None:
        kind = FailureKind.DEPENDENCY
        hint = _(
            "Nothing answered at %(url)s in time: is the web process running, is the address "
            "the deployment's, and does the network between here and there let it through?"
        )
    elif status == 401:
        kind = FailureKind.CONFIG
        hint = _(
            "%(url)s refused the token: issue a new one for an admin (manage.py issue_token "
            "<username>) and pass it with --token (or GATES_TOKEN)."
        )
    elif status == 403 and code == "IP_RESTRICTED":
        kind = FailureKind.CONFIG
        hint = _(
            "The organisation's IP allowlist refuses the gate's address: add it in the admin "
            "centre's settings, or run the gate from an allowed host."
        )
    elif status == 403:
        kind = FailureKind.CONFIG
        hint = _(
            "The token's user lacks a role this step needs: the smoke runs as an admin of "
            "the organisation (the role admin also covers imports)."
        )
    elif status == 429:
        kind = FailureKind.DEPENDENCY
        hint = _(
            "The API rate-limited the smoke: run it when the deployment is quieter, or "
            "raise the RATELIMIT_* setting of this endpoint."
        )
    elif status == 500:
        kind, owner = FailureKind.DEFECT, OwnerRole.DEVELOPER
        hint = _(
            "The application failed (INTERNAL_ERROR): the web process's log has the "
            "traceback of this request."
        )
    elif status >= 500:
        kind = FailureKind.DEPENDENCY
        hint = _(
            "The server, or a proxy in front of it, answered %(status)s: check the web "
            "processes, the database and the broker (/readyz) and the proxy's log."
        )
    if kind is not None:
        failure.kind, failure.owner = kind, owner
        failure.remediation = hint % {"url": base_url, "status": status}


def expect(condition, detail: str, **evidence) -> None:
    """A wrong answer: a defect, with what was seen."""
    if not condition:
        raise CheckFailed(detail, kind=FailureKind.DEFECT, evidence=evidence)


def _csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text.removeprefix(BOM))))


def _moment(value):
    return dt.datetime.fromisoformat(value) if value else None


class SmokePass:
    """One smoke pass: its steps in order, the state they hand on, and its figures."""

    def __init__(self, ctx: GateContext, client: GateClient, *, label: str = ""):
        self.ctx = ctx
        self.client = client
        self.prefix = f"{label}: " if label else ""
        self.tag = uuid.uuid4().hex[:10]
        self.figures: dict = {"rows": IMPORT_ROWS, "stepsMs": {}}
        self.requester: GateClient | None = None
        self.issued_token = None  # the synthetic requester's token, revoked at the end
        self.issued_by = None  # the admin, actor of its issue and of its revocation

    # --- the pass -------------------------------------------------------------------------

    def run(self) -> None:
        started = time.perf_counter()
        try:
            self._basics()
            self._import_round_trip()
            self._correction()
            self._audit()
        finally:
            self._release_requester()
            self.figures["totalMs"] = round((time.perf_counter() - started) * 1000, 1)

    def step(self, name: str, probe, *, remediation: str, owner: str = OwnerRole.DEVELOPER):
        base_url = self.client.base_url

        def classified():
            try:
                return probe()
            except ApiFailure as failure:
                classify(failure, base_url)
                raise

        value = self.ctx.check(
            self.prefix + name,
            classified,
            kind=FailureKind.DEFECT,
            remediation=remediation,
            owner=owner,
            stop=True,
        )
        self.figures["stepsMs"][name] = round(self.ctx.checks[-1].elapsed_ms, 1)
        return value

    # --- health, me, records, cleanup -----------------------------------------------------

    def _basics(self) -> None:
        self.step(
            "livez",
            self._livez,
            remediation=_('/livez must answer 200 {"status": "ok"} while the process runs.'),
            owner=OwnerRole.OPS,
        )
        self.step(
            "readyz",
            self._readyz,
            remediation=_("/readyz names the failing dependency: bring it back."),
            owner=OwnerRole.OPS,
        )
        self.step(
            "me",
            self._me,
            remediation=_("The token's user must be an admin with an employee."),
            owner=OwnerRole.OPS,
        )
        self.step(
            "records",
            self._records,
            remediation=_("The records list must answer a page of the organisation's days."),
        )
        self.ctx.check(
            self.prefix + "cleanup",
            self._cleanup,
            blocking=False,
            remediation=_("Roll the listed batches back by hand (they hold synthetic rows)."),
        )

    def _livez(self):
        try:
            response = self.client.request("GET", "/livez")
        except ApiFailure as failure:
            if failure.status == 404:
                failure.kind, failure.owner = FailureKind.CONFIG, OwnerRole.OPS
                failure.remediation = _(
                    "%(url)s has no /livez: the base URL is not the application's root."
                ) % {"url": self.client.base_url}
            raise
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("status") != "ok":
            raise CheckFailed(
                _("Something other than the application answers /livez at %(url)s.")
                % {"url": self.client.base_url},
                kind=FailureKind.CONFIG,
                evidence={"body": response.text[:300]},
                remediation=_("Give the application's own address as the base URL."),
                owner=OwnerRole.OPS,
            )
        return "200 ok"

    def _readyz(self):
        response = self.client.request("GET", "/readyz", expect=(200, 503))
        body = response.json()
        checks = sorted(body.get("checks") or {})
        if response.status_code == 503:
            failing = ", ".join(body.get("failing") or []) or "?"
            raise CheckFailed(
                _("/readyz answered 503: %(failing)s failing.") % {"failing": failing},
                kind=FailureKind.DEPENDENCY,
                evidence={"failing": body.get("failing"), "checks": body.get("checks")},
                remediation=_(
                    "Bring back what /readyz names (%(failing)s): the database reachable and "
                    "migrated, the broker reachable."
                )
                % {"failing": failing},
                owner=OwnerRole.OPS,
            )
        return (
            _("200: %(checks)s") % {"checks": ", ".join(checks)},
            {"checks": checks, "warnings": body.get("warnings") or []},
        )

    def _me(self):
        me = self.client.get("/api/attendance/me")
        roles = me.get("roles") or []
        if ADMIN_ROLE not in roles:
            raise CheckFailed(
                _("%(user)s is not an admin (roles: %(roles)s).")
                % {"user": me.get("username"), "roles": ", ".join(roles) or "-"},
                kind=FailureKind.CONFIG,
                remediation=_(
                    "Run the smoke with an admin's token: it imports, approves and reads the "
                    "audit log."
                ),
                owner=OwnerRole.OPS,
            )
        self.me = me
        organisation = me["organisation"]
        try:
            self.tz = ZoneInfo(organisation["timeZone"])
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CheckFailed(
                _("The organisation's time zone %(zone)r is unknown here.")
                % {"zone": organisation["timeZone"]},
                kind=FailureKind.CONFIG,
                owner=OwnerRole.OPS,
            ) from exc
        self.today = dt.datetime.now(self.tz).date()
        return (
            _("%(user)s, admin of %(organisation)s")
            % {"user": me["username"], "organisation": organisation["name"]},
            {"userId": me["userId"], "organisationId": organisation["id"], "roles": roles},
        )

    def _records(self):
        page = self.client.get(
            "/api/attendance/records",
            params={
                "from": (self.today - dt.timedelta(days=6)).isoformat(),
                "to": self.today.isoformat(),
                "pageSize": 1,
            },
        )
        expect(
            isinstance(page.get("items"), list) and isinstance(page.get("total"), int),
            _("The records list is not a page (items, total)."),
            answer=str(page)[:300],
        )
        return _("%(total)s days in the last week") % {"total": page["total"]}

    def _cleanup(self):
        """Roll back what a smoke stopped midway left committed (a job the worker ran after
        its smoke gave up): synthetic rows only, recognised by the file name."""
        page = self.client.get(f"{IMPORT}/batches", params={"pageSize": 100})
        cutoff = dt.datetime.now(dt.UTC) - LEFTOVER_AGE
        leftovers = [
            batch["id"]
            for batch in page["items"]
            if batch["filename"].startswith(FILE_PREFIX)
            and batch["status"] == "committed"
            and _moment(batch["createdAt"]) < cutoff
        ]
        for batch_id in leftovers:
            self.client.request("POST", f"{IMPORT}/rollback/{batch_id}", expect=(200, 202))
        if leftovers:
            self.ctx.warn(
                _("Rolled back batches an earlier smoke left committed: %(ids)s")
                % {"ids": ", ".join(map(str, leftovers))}
            )
        return _("%(count)s leftovers rolled back") % {"count": len(leftovers)}, {
            "rolledBack": leftovers
        }

    # --- the import round trip ------------------------------------------------------------

    def _import_round_trip(self) -> None:
        developer = _(
            "The import round trip did not answer as it should: read the "
            "check's evidence and the web and worker logs."
        )
        self.step("import-template", self._template, remediation=developer)
        self.step("import-upload", self._upload, remediation=developer)
        self.step("import-preview", self._preview, remediation=developer)
        self.step("import-commit", self._commit, remediation=developer)
        self.step("import-retry", self._retry, remediation=developer)
        self.step("import-batch", self._batch, remediation=developer)
        self.step("import-export", self._export, remediation=developer)
        self.step(
            "import-rollback",
            self._rollback,
            remediation=developer
            + " "
            + _(
                "Its rows are synthetic: the next smoke rolls the batch back if this one could not."
            ),
        )

    @property
    def employee_numbers(self) -> list[str]:
        return [f"GS-{self.tag}-{number}" for number in range(1, IMPORT_EMPLOYEES + 1)]

    def _template(self):
        response = self.client.request(
            "GET", f"{IMPORT}/template", params={"format": IMPORT_FORMAT}
        )
        header = next(csv.reader(io.StringIO(response.text.removeprefix(BOM))), [])
        expect(
            {"employee_no", "name", "work_date", "first_in", "last_out"} <= set(header),
            _("The %(format)s template's header lacks the columns the smoke fills.")
            % {"format": IMPORT_FORMAT},
            header=header,
        )
        self.header = header
        return ", ".join(header)

    def _generated_csv(self) -> bytes:
        days = [self.today - dt.timedelta(days=back) for back in range(1, IMPORT_DAYS + 1)]
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(self.header)
        for index, employee_no in enumerate(self.employee_numbers, start=1):
            for day in days:
                values = {
                    "employee_no": employee_no,
                    "name": f"Gates smoke {index}",
                    "work_date": day.isoformat(),
                    "first_in": f"08:{50 + index:02d}",
                    "last_out": f"18:{index:02d}",
                }
                writer.writerow([values.get(column, "") for column in self.header])
        self.import_days = [day.isoformat() for day in days]
        return out.getvalue().encode("utf-8")

    def _upload(self):
        content = self._generated_csv()
        upload = self.client.post(
            f"{IMPORT}/upload",
            params={"filename": f"{FILE_PREFIX}{self.tag}.csv"},
            content=content,
            headers={"Content-Type": "text/csv"},
            expect=(201,),
        )
        expect(
            upload.get("rowCount") == IMPORT_ROWS and upload.get("fileId"),
            _("The upload counted %(count)s rows, not %(rows)s.")
            % {"count": upload.get("rowCount"), "rows": IMPORT_ROWS},
            upload=upload,
        )
        self.file_id = upload["fileId"]
        return _("%(bytes)s bytes, %(rows)s rows") % {
            "bytes": upload["bytes"],
            "rows": upload["rowCount"],
        }, {"fileId": self.file_id, "format": upload.get("format"), "days": self.import_days}

    def _source(self) -> dict:
        return {"fileId": self.file_id, "format": IMPORT_FORMAT, "createMissingEmployees": True}

    def _preview(self):
        preview = self.client.post(f"{IMPORT}/preview", json={**self._source(), "previewLimit": 0})
        stats = preview.get("stats") or {}
        expect(
            preview.get("rowCount") == IMPORT_ROWS
            and stats.get("insert") == IMPORT_ROWS
            and not preview.get("errorsTotal")
            and preview.get("employeesToCreate") == IMPORT_EMPLOYEES,
            _(
                "The preview of %(rows)s new rows for %(employees)s new employees answered "
                "otherwise."
            )
            % {"rows": IMPORT_ROWS, "employees": IMPORT_EMPLOYEES},
            preview={
                key: preview.get(key)
                for key in ("rowCount", "stats", "employeesToCreate", "errors", "errorsTotal")
            },
        )
        return _("%(insert)s to insert, %(employees)s employees to create") % {
            "insert": stats["insert"],
            "employees": preview["employeesToCreate"],
        }, {"stats": stats}

    def _commit(self):
        self.idempotency_key = f"{FILE_PREFIX}{self.tag}"
        token = self.client.post(f"{IMPORT}/prepare")["commitToken"]
        queued = self.client.post(
            f"{IMPORT}/commit-async",
            json={**self._source(), "commitToken": token, "idempotencyKey": self.idempotency_key},
            expect=(202,),
        )
        job_id = queued["job"]["id"]
        job = self._poll(job_id, _("the commit"))
        result = job.get("result") or {}
        expect(
            job["status"] == "succeeded",
            _("The commit job ended %(status)s: %(error)s")
            % {"status": job["status"], "error": job.get("error")},
            job=job,
        )
        expect(
            result.get("batchId") and (result.get("stats") or {}).get("insert") == IMPORT_ROWS,
            _("The commit did not insert the %(rows)s rows.") % {"rows": IMPORT_ROWS},
            result=result,
        )
        self.batch_id = result["batchId"]
        self.figures["batchId"] = self.batch_id
        self.figures["commitJobMs"] = result.get("elapsedMs")
        return _("job %(job)s: batch %(batch)s, %(insert)s rows inserted") % {
            "job": job_id,
            "batch": self.batch_id,
            "insert": result["stats"]["insert"],
        }, {"jobId": job_id, "batchId": self.batch_id, "stats": result["stats"]}

    def _poll(self, job_id, what: str) -> dict:
        """The job, once it ended; one that no worker finished in time is a dependency."""
        try:
            return self.client.poll_job(job_id)
        except ApiFailure:
            raise
        except CheckFailed as failure:
            failure.kind, failure.owner = FailureKind.DEPENDENCY, OwnerRole.OPS
            failure.remediation = _(
                "No worker finished %(what)s (job %(job)s) in %(seconds)s s: is a Celery worker "
                "consuming the import queue (IMPORT_TASK_QUEUE)? celery inspect ping, and the "
                "worker's log. The job runs when a worker takes it; the next smoke rolls its "
                "batch back."
            ) % {"what": what, "job": job_id, "seconds": settings.GATES_POLL_TIMEOUT_SECONDS}
            raise

    def _retry(self):
        again = self.client.post(
            f"{IMPORT}/commit",
            json={**self._source(), "idempotencyKey": self.idempotency_key},
        )
        expect(
            again.get("batchId") == self.batch_id and again.get("idempotent") is True,
            _(
                "The retry with the same idempotency key answered batch %(batch)s, idempotent "
                "%(idempotent)s, not batch %(expected)s, idempotent true."
            )
            % {
                "batch": again.get("batchId"),
                "idempotent": again.get("idempotent"),
                "expected": self.batch_id,
            },
            answer={key: again.get(key) for key in ("batchId", "idempotent", "stats")},
        )
        return _("batch %(batch)s again, idempotent") % {"batch": self.batch_id}

    def _batch(self):
        batch = self.client.get(f"{IMPORT}/batches/{self.batch_id}")
        expect(
            batch.get("status") == "committed" and batch.get("rowCount") == IMPORT_ROWS,
            _("Batch %(batch)s is %(status)s with %(count)s rows.")
            % {
                "batch": self.batch_id,
                "status": batch.get("status"),
                "count": batch.get("rowCount"),
            },
            batch=batch,
        )
        return _("committed, %(rows)s rows") % {"rows": batch["rowCount"]}

    def _export(self):
        response = self.client.request(
            "GET", f"{IMPORT}/batches/{self.batch_id}/export.csv", params={"type": "all"}
        )
        rows = _csv_rows(response.text)
        numbers = {row.get("employee_no") for row in rows}
        expect(
            response.text.startswith(BOM)
            and response.headers.get("content-type", "").startswith("text/csv")
            and len(rows) == IMPORT_ROWS
            and numbers == set(self.employee_numbers)
            and {row.get("action") for row in rows} == {"inserted"},
            _("The batch's CSV does not hold its %(rows)s inserted rows.") % {"rows": IMPORT_ROWS},
            contentType=response.headers.get("content-type"),
            head=response.text[:500],
        )
        return _("%(rows)s rows, %(bytes)s bytes") % {
            "rows": len(rows),
            "bytes": len(response.content),
        }

    def _rollback(self):
        response = self.client.request("POST", f"{IMPORT}/rollback/{self.batch_id}")
        body = response.json()["data"]
        if response.status_code == 202:  # a large batch: its rollback is a job
            job = self._poll(body["job"]["id"], _("the rollback"))
            expect(job["status"] == "succeeded", _("The rollback job failed."), job=job)
            body = job["result"]
        expect(
            body.get("status") == "rolled_back" and body.get("deleted") == IMPORT_ROWS,
            _("The rollback answered %(status)s with %(deleted)s rows deleted, not %(rows)s.")
            % {"status": body.get("status"), "deleted": body.get("deleted"), "rows": IMPORT_ROWS},
            answer=body,
        )
        batch = self.client.get(f"{IMPORT}/batches/{self.batch_id}")
        expect(
            batch.get("status") == "rolled_back",
            _("Batch %(batch)s is still %(status)s after its rollback.")
            % {"batch": self.batch_id, "status": batch.get("status")},
        )
        return _("%(deleted)s rows deleted, batch rolled back") % {"deleted": body["deleted"]}

    # --- the correction -------------------------------------------------------------------

    def _correction(self) -> None:
        developer = _(
            "The correction flow did not answer as it should: read the "
            "check's evidence and the web log."
        )
        self.step(
            "correction-requester",
            self._requester,
            remediation=_(
                "The correction needs a requester other than the approving admin: run the "
                "smoke where the deployment's database is (it then uses its own synthetic "
                "employee), or give --requester-token (a plain employee of the same "
                "organisation)."
            ),
            owner=OwnerRole.OPS,
        )
        self.step("correction-request", self._request, remediation=developer)
        self.step("correction-approve", self._approve, remediation=developer)
        self.step("correction-adjusted", self._adjusted, remediation=developer)

    def _requester(self):
        given = str(self.ctx.options.get("requester_token") or "").strip()
        source = "option"
        if not given:
            self.issued_token, given, self.issued_by = issue_requester_token(
                self.client.token, organisation_id=self.me["organisation"]["id"]
            )
            source = "synthetic"
        self.requester = GateClient(self.client.base_url, given)
        me = self.requester.get("/api/attendance/me")
        if (
            me["organisation"]["id"] != self.me["organisation"]["id"]
            or me["employee"]["id"] == self.me["employee"]["id"]
        ):
            raise CheckFailed(
                _("The requester %(user)s is not another employee of the admin's organisation.")
                % {"user": me["username"]},
                kind=FailureKind.CONFIG,
            )
        self.requester_employee = me["employee"]
        cancelled = self._cancel_stale_requests()
        history = self.requester.get(
            "/api/attendance/requests", params={"mine": "true", "pageSize": 1}
        )
        self._plan_correction(history["total"])
        return _("%(user)s (%(source)s), correction #%(number)s on %(day)s") % {
            "user": me["username"],
            "source": source,
            "number": history["total"] + 1,
            "day": self.correction_day,
        }, {
            "requester": me["username"],
            "employeeId": me["employee"]["id"],
            "source": source,
            "cancelledStale": cancelled,
        }

    def _cancel_stale_requests(self) -> list[int]:
        pending = self.requester.get(
            "/api/attendance/requests",
            params={"mine": "true", "status": "pending", "pageSize": 200},
        )
        cutoff = dt.datetime.now(dt.UTC) - LEFTOVER_AGE
        stale = [item["id"] for item in pending["items"] if _moment(item["createdAt"]) < cutoff]
        for request_id in stale:
            self.requester.post(f"/api/attendance/requests/{request_id}/cancel")
        return stale

    def _plan_correction(self, earlier_requests: int) -> None:
        span = max(settings.CORRECTION_MAX_AGE_DAYS - 1, 1)
        day = self.today - dt.timedelta(days=1 + earlier_requests % span)
        # Back on a day it corrected before, the smoke asks for other times than then.
        minute = 1 + 17 * ((earlier_requests // span) % 2)
        self.correction_day = day.isoformat()
        self.correction_times = (
            dt.datetime.combine(day, dt.time(8, minute)).isoformat(),
            dt.datetime.combine(day, dt.time(17, 30 + minute)).isoformat(),
        )
        self.figures["correctionDay"] = self.correction_day

    def _request(self):
        first_in, last_out = self.correction_times
        request = self.requester.post(
            "/api/attendance/requests",
            json={
                "workDate": self.correction_day,
                "firstIn": first_in,
                "lastOut": last_out,
                "reason": f"Gates smoke {self.tag}: a synthetic correction",
            },
            expect=(201,),
        )
        expect(
            request.get("state") == "pending" and request.get("workDate") == self.correction_day,
            _("The new request is %(state)s for %(day)s.")
            % {"state": request.get("state"), "day": request.get("workDate")},
            request=request,
        )
        self.request = request
        self.figures["correctionId"] = request["id"]
        return _("request %(id)s pending for %(day)s") % {
            "id": request["id"],
            "day": self.correction_day,
        }

    def _approve(self):
        decided = self.client.post(
            f"/api/attendance/requests/{self.request['id']}/approve",
            json={"comment": f"Gates smoke {self.tag}"},
        )
        expect(
            decided.get("state") == "approved"
            and (decided.get("decidedBy") or {}).get("id") == self.me["userId"],
            _("Request %(id)s is %(state)s after its approval.")
            % {"id": self.request["id"], "state": decided.get("state")},
            request=decided,
        )
        return _("approved by %(user)s") % {"user": self.me["username"]}

    def _adjusted(self):
        page = self.client.get(
            "/api/attendance/records",
            params={
                "employee": self.requester_employee["id"],
                "from": self.correction_day,
                "to": self.correction_day,
            },
        )
        items = page["items"]
        expect(len(items) == 1, _("Not one record for the corrected day."), items=items)
        record = items[0]
        expect(
            record["status"] == "adjusted"
            and record["source"] == "adjustment"
            and _moment(record["firstIn"]) == _moment(self.request["firstIn"])
            and _moment(record["lastOut"]) == _moment(self.request["lastOut"]),
            _(
                "The corrected day is %(status)s (%(source)s), %(first)s–%(last)s, not adjusted "
                "with the asked times."
            )
            % {
                "status": record["status"],
                "source": record["source"],
                "first": record["firstIn"],
                "last": record["lastOut"],
            },
            record=record,
            asked={"firstIn": self.request["firstIn"], "lastOut": self.request["lastOut"]},
        )
        return _("%(day)s adjusted, %(minutes)s minutes") % {
            "day": self.correction_day,
            "minutes": record["workMinutes"],
        }, {"recordId": record["id"]}

    def _release_requester(self) -> None:
        if self.requester is not None:
            self.requester.close()
        if self.issued_token is not None:
            try:
                revoke_requester_token(self.issued_token, actor=self.issued_by)
            except Exception as exc:  # the run's result stands; the operator must know
                self.ctx.warn(
                    _("The synthetic requester's token %(prefix)s… was not revoked: %(error)s")
                    % {"prefix": self.issued_token.prefix, "error": exc}
                )

    # --- audit ----------------------------------------------------------------------------

    def _audit(self) -> None:
        remediation = _(
            "Every import and correction must leave its audit events, listed and "
            "exported by the audit API."
        )
        self.step("audit-events", self._audit_events, remediation=remediation)
        self.step("audit-export", self._audit_export, remediation=remediation)

    def _audit_actions(self, target_type: str, target_id) -> set[str]:
        page = self.client.get(
            AUDIT, params={"targetType": target_type, "targetId": str(target_id), "pageSize": 100}
        )
        return {item["action"] for item in page["items"]}

    def _audit_events(self):
        batch_actions = self._audit_actions(BATCH_TARGET, self.batch_id)
        request_actions = self._audit_actions(REQUEST_TARGET, self.request["id"])
        missing = sorted((BATCH_ACTIONS - batch_actions) | (REQUEST_ACTIONS - request_actions))
        expect(
            not missing,
            _("The audit log lacks: %(missing)s.") % {"missing": ", ".join(missing)},
            batch=sorted(batch_actions),
            request=sorted(request_actions),
        )
        return _("%(count)s events of the batch and the request") % {
            "count": len(batch_actions) + len(request_actions)
        }, {"batch": sorted(batch_actions), "request": sorted(request_actions)}

    def _audit_export(self):
        response = self.client.request(
            "GET",
            f"{AUDIT}/export.csv",
            params={"targetType": BATCH_TARGET, "targetId": str(self.batch_id)},
        )
        rows = _csv_rows(response.text)
        actions = {row.get("action") for row in rows}
        expect(
            response.text.startswith(BOM)
            and actions >= BATCH_ACTIONS
            and {row.get("target_id") for row in rows} == {str(self.batch_id)},
            _("The audit CSV does not hold batch %(batch)s's events.") % {"batch": self.batch_id},
            actions=sorted(action for action in actions if action),
            head=response.text[:500],
        )
        return _("%(rows)s events, %(bytes)s bytes") % {
            "rows": len(rows),
            "bytes": len(response.content),
        }


def issue_requester_token(admin_token: str, *, organisation_id: int):
    """``(token, raw token, admin)``: a bearer token, for this run, of the smoke's synthetic
    employee in the admin's organisation (created the first time). The admin token is
    looked up in this process's database: one it does not know means the gate does not run
    beside the deployment it tests, and its token would not be known there either."""
    from attendance import services
    from attendance.models import ApiToken, Employee
    from common import roles

    found = (
        ApiToken.objects.select_related("user__employee__organisation")
        .filter(key_hash=services.hash_token(admin_token), revoked_at__isnull=True)
        .first()
    )
    admin_employee = getattr(found.user, "employee", None) if found else None
    if admin_employee is None or admin_employee.organisation_id != organisation_id:
        raise CheckFailed(
            _(
                "This database does not know the admin token: the smoke's own requester can be "
                "given a token only beside the deployment's database."
            ),
            kind=FailureKind.CONFIG,
        )
    admin, organisation = found.user, admin_employee.organisation
    username = f"gates-smoke-{organisation.pk}"
    requester = (
        Employee.objects.select_related("user")
        .filter(organisation=organisation, employee_no=REQUESTER_EMPLOYEE_NO)
        .first()
    )
    if requester is None:
        requester, _created = services.user_provision(
            actor=admin,
            organisation=organisation,
            username=username,
            employee_no=REQUESTER_EMPLOYEE_NO,
            name=REQUESTER_NAME,
            role_names=[roles.EMPLOYEE],
        )
    elif requester.user is None or requester.user.username != username:
        raise CheckFailed(
            _(
                "The employee number %(number)s belongs to someone else than the smoke's user "
                "%(user)s."
            )
            % {"number": REQUESTER_EMPLOYEE_NO, "user": username},
            kind=FailureKind.CONFIG,
        )
    if not (requester.is_active and requester.user.is_active):
        raise CheckFailed(
            _("The smoke's synthetic employee %(number)s is deactivated.")
            % {"number": REQUESTER_EMPLOYEE_NO},
            kind=FailureKind.CONFIG,
        )
    token, raw = services.api_token_issue(
        actor=admin, user=requester.user, name="gates smoke (revoked when its run ends)"
    )
    return token, raw, admin


def revoke_requester_token(token, *, actor) -> None:
    from attendance import services

    services.api_token_revoke(actor=actor, token=token)
