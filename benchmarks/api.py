"""The benchmark's HTTP client: the import API as a user's browser or script calls it.

Only the public API's envelopes are read (``ok``, ``data``, a job's status, timestamps and
result), so the same client drives the current code and older commits alike.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import time
from pathlib import Path
from urllib.parse import quote

from benchmarks.stack import BenchError, Database, log, ms_since

IMPORT_API = "/api/attendance/import"
POLL_SECONDS = 0.2
JOB_TIMEOUT_SECONDS = 1800
# After a rollback the bench gave up on was cancelled: how long its job may take to fail.
SETTLE_SECONDS = 120


class ApiError(BenchError):
    def __init__(self, method: str, path: str, status: int, body: str):
        self.method, self.path, self.status, self.body = method, path, status, body
        super().__init__(f"{method} {path} → {status}: {body}")


class JobTimeout(BenchError):
    def __init__(self, job_id: str, seconds: float):
        self.job_id = job_id
        super().__init__(f"Job {job_id} did not finish in {seconds:.0f} s")


class Api:
    def __init__(self, port: int, token: str):
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def _connection(self, timeout: float = JOB_TIMEOUT_SECONDS) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=timeout, blocksize=1 << 20
        )

    def call(
        self,
        method: str,
        path: str,
        payload=None,
        *,
        body=None,
        headers=None,
        timeout: float = JOB_TIMEOUT_SECONDS,
    ):
        """One request; returns (status, data) of the envelope or raises ApiError (and
        TimeoutError when no answer came within ``timeout`` seconds)."""
        all_headers = {**self.headers, **(headers or {})}
        if payload is not None:
            body = json.dumps(payload).encode()
            all_headers["Content-Type"] = "application/json"
        connection = self._connection(timeout)
        try:
            connection.request(method, path, body=body, headers=all_headers)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        text = raw.decode("utf-8", errors="replace")
        try:
            envelope = json.loads(text)
        except ValueError:
            raise ApiError(method, path, response.status, text[:3000]) from None
        if response.status >= 400 or not envelope.get("ok"):
            raise ApiError(method, path, response.status, text[:3000])
        return response.status, envelope.get("data")

    def upload(self, path: Path, filename: str) -> dict:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            _status, data = self.call(
                "POST",
                f"{IMPORT_API}/upload?filename={quote(filename)}",
                body=handle,
                headers={"Content-Type": "text/csv", "Content-Length": str(size)},
            )
        return data

    def preview(self, file_id: str) -> dict:
        _status, data = self.call(
            "POST",
            f"{IMPORT_API}/preview",
            {"fileId": file_id, "previewLimit": 20, "createMissingEmployees": True},
        )
        return data

    def prepare(self) -> str:
        _status, data = self.call("POST", f"{IMPORT_API}/prepare")
        return data["commitToken"]

    def commit_async(self, commit_token: str, file_id: str) -> dict:
        """Queue the commit; returns the queued job."""
        status, queued = self.call(
            "POST",
            f"{IMPORT_API}/commit-async",
            {"commitToken": commit_token, "fileId": file_id, "createMissingEmployees": True},
        )
        if status != 202:
            raise BenchError(f"commit-async answered {status}, not 202: {queued}")
        return queued["job"]

    def download(self, path: str) -> tuple[int, int]:
        """Read a streamed response to its end: (bytes, lines)."""
        connection = self._connection()
        try:
            connection.request("GET", path, headers={**self.headers, "Accept": "*/*"})
            response = connection.getresponse()
            if response.status != 200:
                raise ApiError("GET", path, response.status, response.read()[:3000].decode())
            size = lines = 0
            while chunk := response.read(1 << 20):
                size += len(chunk)
                lines += chunk.count(b"\n")
        finally:
            connection.close()
        return size, lines

    def job(self, job_id: str) -> dict:
        _status, data = self.call("GET", f"{IMPORT_API}/jobs/{job_id}")
        return data["job"]

    def wait_job(self, job_id: str, timeout: float = JOB_TIMEOUT_SECONDS) -> dict:
        deadline = time.monotonic() + timeout
        last_report = 0.0
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] == "succeeded":
                return job
            if job["status"] in ("failed", "cancelled"):
                raise BenchError(f"Job {job_id} {job['status']}: {json.dumps(job)[:3000]}")
            if time.monotonic() - last_report > 5:
                last_report = time.monotonic()
                log(f"  job {job['kind']} {job['status']} {job.get('progressPercent')}%")
            time.sleep(POLL_SECONDS)
        raise JobTimeout(job_id, timeout)


def job_timing(job: dict, queued_at: float) -> dict:
    """The job's own run time and how long it waited for the worker (same machine, same
    clock): the client's wall time includes the broker's delivery and the poll interval."""
    try:
        started = dt.datetime.fromisoformat(job["startedAt"]).timestamp()
        finished = dt.datetime.fromisoformat(job["finishedAt"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return {}
    return {
        "jobRunMs": round((finished - started) * 1000),
        "queueWaitMs": max(0, round((started - queued_at) * 1000)),
    }


def import_file(api: Api, path: Path, filename: str, rows: int) -> dict:
    """upload → preview → prepare → commit-async → the job's end, creating the employees
    the file names; every row must be a new day, or the scenario is not the one measured."""
    upload = api.upload(path, filename)
    preview = api.preview(upload["fileId"])
    inserts = (preview.get("stats") or {}).get("insert")
    if inserts != rows:
        raise BenchError(f"{filename}: the preview would insert {inserts} of {rows} rows")
    started = time.perf_counter()
    job = api.wait_job(api.commit_async(api.prepare(), upload["fileId"])["id"])
    result = job.get("result") or {}
    return {
        "batchId": job.get("batchId") or result.get("batchId"),
        "rows": rows,
        "commitMs": ms_since(started),
        "stats": result.get("stats"),
    }


def _settle(api: Api, db: Database, job_id: str | None) -> None:
    """Cancel what still runs in the bench database until it is idle and the job, if any,
    has ended (a cancelled statement fails it)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        cancelled = db.cancel_active()
        ended = job_id is None or api.job(job_id)["status"] in ("succeeded", "failed", "cancelled")
        if not cancelled and ended:
            return
        time.sleep(1)
    log(f"WARNING: the bench database was still busy {SETTLE_SECONDS} s after the cancel")


def timed_rollback(api: Api, db: Database, batch_id: int, timeout: float) -> dict:
    """POST rollback and, when it answers 202, wait for its job: the wall time a user
    waits. Gives up after ``timeout`` seconds (a quadratic plan at 500,000 rows would run
    for days): then ``timedOut`` and the statement is cancelled so later steps have the
    machine to themselves."""
    path = f"{IMPORT_API}/rollback/{batch_id}"
    started = time.perf_counter()
    outcome: dict = {"asynchronous": False}
    try:
        status, answer = api.call("POST", path, timeout=timeout)
    except TimeoutError:
        log(f"rollback of batch {batch_id}: no answer in {timeout:.0f} s; cancelling it")
        outcome.update(ms=ms_since(started), timedOut=True, status="timeout", result=None)
        _settle(api, db, None)
        return outcome
    queued_at = time.time()
    outcome["http"] = status
    if status == 202:
        outcome["asynchronous"] = True
        job_id = answer["job"]["id"]
        remaining = max(1.0, timeout - (time.perf_counter() - started))
        try:
            job = api.wait_job(job_id, timeout=remaining)
        except JobTimeout:
            log(f"rollback of batch {batch_id}: job {job_id} still running; cancelling it")
            outcome.update(ms=ms_since(started), timedOut=True, status="timeout", result=None)
            _settle(api, db, job_id)
            return outcome
        answer = job.get("result")
        outcome.update(job_timing(job, queued_at))
        if isinstance(answer, dict) and answer.get("elapsedMs") is not None:
            outcome["serverMs"] = answer["elapsedMs"]
    outcome["ms"] = ms_since(started)
    outcome["status"] = (answer or {}).get("status")
    outcome["result"] = answer
    return outcome
