"""The HTTP client of the gates that test a deployment through its API (smoke, strict, perf,
metrics): the envelope unwrapped, failures as :class:`ApiFailure` with the answer's status
and code, and job polling that tolerates transient answers a bounded number of times."""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import httpx
from django.conf import settings

from gates.services.runs import CheckFailed

TRANSIENT_STATUSES = {429, 502, 503, 504}
# A server's Retry-After is honoured while polling, but never for longer than this: a
# gate that waits a minute per answer would outlast its own poll timeout.
RETRY_AFTER_CAP_SECONDS = 5.0


class ApiFailure(CheckFailed):
    def __init__(
        self,
        method: str,
        path: str,
        status: int | None,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
    ):
        self.status, self.code = status, code
        self.retry_after = retry_after  # seconds, from the answer's Retry-After
        super().__init__(
            f"{method} {path} answered {status if status is not None else 'nothing'}"
            f" {code}: {message}"[:1500],
            evidence={"method": method, "path": path, "status": status, "code": code},
        )


@dataclass
class GateClient:
    base_url: str
    token: str | None = None
    timeout: float = field(default_factory=lambda: settings.GATES_HTTP_TIMEOUT_SECONDS)
    # Transient answers met (and retried) while polling: part of the run's evidence.
    poll_retries_used: int = 0

    def __post_init__(self):
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.http = httpx.Client(
            base_url=self.base_url.rstrip("/"),
            headers=headers,
            timeout=self.timeout,
            follow_redirects=False,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> GateClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(
        self, method: str, path: str, *, expect=(200, 201, 202), **kwargs
    ) -> httpx.Response:
        """One request, never retried; a transport error or an unexpected status raises."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiFailure(method, path, None, type(exc).__name__, str(exc)) from exc
        if response.status_code not in expect:
            code, message = _error_of(response)
            raise ApiFailure(
                method,
                path,
                response.status_code,
                code,
                message,
                retry_after=retry_after_seconds(response),
            )
        return response

    def json(self, method: str, path: str, **kwargs) -> dict:
        """The ``data`` of a success envelope."""
        response = self.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiFailure(method, path, response.status_code, "NOT_JSON", str(exc)) from exc
        if not isinstance(body, dict) or body.get("ok") is not True:
            raise ApiFailure(method, path, response.status_code, "NOT_AN_ENVELOPE", str(body)[:300])
        return body.get("data")

    def get(self, path: str, **kwargs) -> dict:
        return self.json("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> dict:
        return self.json("POST", path, **kwargs)

    def poll_job(self, job_id, *, timeout: float | None = None, interval: float = 0.25) -> dict:
        """Poll an import job until it ends and return it. A 429 or 5xx (or no answer) while
        polling is transient: retried up to GATES_POLL_RETRIES times for this job, after the
        answer's ``Retry-After`` (capped at RETRY_AFTER_CAP_SECONDS) or else a pause that
        doubles from ``interval``; every retry is counted in :attr:`poll_retries_used`. Any
        other failure, one transient answer too many, or a job still unfinished after
        ``timeout`` (GATES_POLL_TIMEOUT_SECONDS) raises."""
        timeout = timeout or settings.GATES_POLL_TIMEOUT_SECONDS
        deadline = time.monotonic() + timeout
        path = f"/api/attendance/import/jobs/{job_id}"
        pause, retried = interval, 0
        while True:
            try:
                job = self.get(path)["job"]
            except ApiFailure as failure:
                transient = failure.status is None or failure.status in TRANSIENT_STATUSES
                if not transient:
                    raise
                wait = min(
                    failure.retry_after if failure.retry_after is not None else pause,
                    RETRY_AFTER_CAP_SECONDS,
                )
                if retried >= settings.GATES_POLL_RETRIES or time.monotonic() + wait > deadline:
                    failure.detail += f" (after {retried} transient answers retried)"
                    failure.args = (failure.detail,)
                    failure.evidence["pollRetries"] = retried
                    raise
                retried += 1
                self.poll_retries_used += 1
                time.sleep(wait)
                pause = min(pause * 2, RETRY_AFTER_CAP_SECONDS)
                continue
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
            if time.monotonic() > deadline:
                raise CheckFailed(
                    f"job {job_id} still {job['status']} after {timeout:g} s",
                    evidence={"job": job, "pollRetries": retried},
                )
            time.sleep(interval)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The answer's ``Retry-After`` in seconds (delta-seconds or an HTTP date), else None."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # "nan" and "inf" parse too, and would break time.sleep
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return max((moment - dt.datetime.now(dt.UTC)).total_seconds(), 0.0)


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
        error = body.get("error") or {}
        return str(error.get("code") or "HTTP_ERROR"), str(error.get("message") or "")
    except (ValueError, AttributeError):
        return "HTTP_ERROR", response.text[:300]
