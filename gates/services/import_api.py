"""What the gates that import through a deployment's API (smoke, strict, perf) share: the file
they generate, its upload, a job's outcome and a batch's rollback (awaited when it is a job)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence

from django.utils.translation import gettext as _

from gates.choices import FailureKind
from gates.services.http import GateClient
from gates.services.runs import CheckFailed

IMPORT_API = "/api/attendance/import"


def csv_file(header: Sequence[str], rows: Iterable[Mapping[str, str]]) -> bytes:
    """``rows`` under ``header`` as an import file (CRLF, UTF-8); a column a row does not
    name is left empty."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([row.get(column, "") for column in header] for row in rows)
    return out.getvalue().encode("utf-8")


def upload_csv(client: GateClient, filename: str, content: bytes, **kwargs) -> dict:
    """Upload ``content`` as ``filename``; the upload's answer (``fileId``, ``rowCount``…)."""
    return client.post(
        f"{IMPORT_API}/upload",
        params={"filename": filename},
        content=content,
        headers={"Content-Type": "text/csv"},
        **kwargs,
    )


def job_result(job: dict) -> dict:
    """The result of an import job that ended; one that did not succeed is a defect."""
    if job["status"] != "succeeded":
        raise CheckFailed(
            _("Import job %(job)s ended %(status)s: %(error)s")
            % {"job": job.get("id"), "status": job["status"], "error": job.get("error")},
            kind=FailureKind.DEFECT,
            evidence={"job": job},
        )
    return job.get("result") or {}


def roll_back(client: GateClient, batch_id) -> tuple[dict, bool]:
    """Roll batch ``batch_id`` back: what the rollback answered, and whether it was a job (a
    large batch's rollback is, IMPORT_ASYNC_ROLLBACK_ROWS: awaited, its result)."""
    response = client.request("POST", f"{IMPORT_API}/rollback/{batch_id}", expect=(200, 202))
    data = response.json().get("data") or {}
    if response.status_code != 202:
        return data, False
    return job_result(client.poll_job(data["job"]["id"])), True
