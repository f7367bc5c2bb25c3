"""The smoke's import round trip on generated rows: ``import-template`` (its header is the
file's), ``import-upload``, ``import-preview``, ``import-commit`` (``commit-async`` with an
idempotency key, the job polled), ``import-retry`` (the same key again: the same batch,
``idempotent: true``), ``import-batch``, ``import-export`` (the batch's CSV) and
``import-rollback``.

**Days.** The import creates its own employees (numbers ``GS-<pass tag>-<n>``, unique per
pass) on yesterday and the day before, and its rollback deletes their days and the
employees: the import leaves nothing but its audit events. Its file is named
``FILE_PREFIX<pass tag>.csv``, which is how a later smoke recognises a batch this one could
not roll back (:mod:`.cleanup`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import TYPE_CHECKING

from django.utils.translation import gettext as _

from gates.services.import_api import IMPORT_API, csv_file, job_result, roll_back, upload_csv
from gates.services.smoke.common import BOM, csv_rows, expect

if TYPE_CHECKING:
    from gates.services.smoke import SmokePass

FILE_PREFIX = "gates-smoke-"
IMPORT_EMPLOYEES = 5
IMPORT_DAYS = 2
IMPORT_ROWS = IMPORT_EMPLOYEES * IMPORT_DAYS
IMPORT_FORMAT = "standard"


class ImportRoundTrip:
    """The round trip's steps, and the batch they make (``batch_id``)."""

    def __init__(self, smoke: SmokePass):
        self.smoke = smoke
        self.client = smoke.client
        self.batch_id = None

    def run(self) -> None:
        developer = _(
            "The import round trip did not answer as it should: read the "
            "check's evidence and the web and worker logs."
        )
        step = self.smoke.step
        step("import-template", self._template, remediation=developer)
        step("import-upload", self._upload, remediation=developer)
        step("import-preview", self._preview, remediation=developer)
        step("import-commit", self._commit, remediation=developer)
        step("import-retry", self._retry, remediation=developer)
        step("import-batch", self._batch, remediation=developer)
        step("import-export", self._export, remediation=developer)
        step(
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
        return [f"GS-{self.smoke.tag}-{number}" for number in range(1, IMPORT_EMPLOYEES + 1)]

    def _template(self):
        response = self.client.request(
            "GET", f"{IMPORT_API}/template", params={"format": IMPORT_FORMAT}
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
        today = self.smoke.today
        days = [today - dt.timedelta(days=back) for back in range(1, IMPORT_DAYS + 1)]
        self.import_days = [day.isoformat() for day in days]
        return csv_file(
            self.header,
            (
                {
                    "employee_no": employee_no,
                    "name": f"Gates smoke {index}",
                    "work_date": day.isoformat(),
                    "first_in": f"08:{50 + index:02d}",
                    "last_out": f"18:{index:02d}",
                }
                for index, employee_no in enumerate(self.employee_numbers, start=1)
                for day in days
            ),
        )

    def _upload(self):
        upload = upload_csv(
            self.client,
            f"{FILE_PREFIX}{self.smoke.tag}.csv",
            self._generated_csv(),
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
        preview = self.client.post(
            f"{IMPORT_API}/preview", json={**self._source(), "previewLimit": 0}
        )
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
        self.idempotency_key = f"{FILE_PREFIX}{self.smoke.tag}"
        token = self.client.post(f"{IMPORT_API}/prepare")["commitToken"]
        queued = self.client.post(
            f"{IMPORT_API}/commit-async",
            json={**self._source(), "commitToken": token, "idempotencyKey": self.idempotency_key},
            expect=(202,),
        )
        job_id = queued["job"]["id"]
        # A job no worker finished in time fails as a dependency (GateClient.poll_job).
        result = job_result(self.client.poll_job(job_id))
        expect(
            result.get("batchId") and (result.get("stats") or {}).get("insert") == IMPORT_ROWS,
            _("The commit did not insert the %(rows)s rows.") % {"rows": IMPORT_ROWS},
            result=result,
        )
        self.batch_id = result["batchId"]
        self.smoke.figures["batchId"] = self.batch_id
        self.smoke.figures["commitJobMs"] = result.get("elapsedMs")
        return _("job %(job)s: batch %(batch)s, %(insert)s rows inserted") % {
            "job": job_id,
            "batch": self.batch_id,
            "insert": result["stats"]["insert"],
        }, {"jobId": job_id, "batchId": self.batch_id, "stats": result["stats"]}

    def _retry(self):
        again = self.client.post(
            f"{IMPORT_API}/commit",
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
        batch = self.client.get(f"{IMPORT_API}/batches/{self.batch_id}")
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
            "GET", f"{IMPORT_API}/batches/{self.batch_id}/export.csv", params={"type": "all"}
        )
        rows = csv_rows(response.text)
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
        # A large batch's rollback is a job (202), awaited.
        body, _asynchronous = roll_back(self.client, self.batch_id)
        expect(
            body.get("status") == "rolled_back" and body.get("deleted") == IMPORT_ROWS,
            _("The rollback answered %(status)s with %(deleted)s rows deleted, not %(rows)s.")
            % {"status": body.get("status"), "deleted": body.get("deleted"), "rows": IMPORT_ROWS},
            answer=body,
        )
        batch = self.client.get(f"{IMPORT_API}/batches/{self.batch_id}")
        expect(
            batch.get("status") == "rolled_back",
            _("Batch %(batch)s is still %(status)s after its rollback.")
            % {"batch": self.batch_id, "status": batch.get("status")},
        )
        return _("%(deleted)s rows deleted, batch rolled back") % {"deleted": body["deleted"]}
