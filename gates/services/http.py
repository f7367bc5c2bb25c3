"""The HTTP client of the gates that test a deployment through its API (smoke, strict, perf,
metrics): the client made from a gate's options (:func:`deployment_client`), the envelope
unwrapped, failures as :class:`ApiFailure` with the answer's status and code and what that
status says about the deployment (:func:`classify`), and job polling that tolerates
transient answers a bounded number of times."""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.utils.translation import gettext as _

from gates.choices import FailureKind, OwnerRole
from gates.services.runs import CheckFailed, GateContext

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
        self.method, self.path = method, path
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
                    kind=FailureKind.DEPENDENCY,
                    owner=OwnerRole.OPS,
                    remediation=_(
                        "No worker finished job %(job)s in %(seconds)g s: is a Celery worker "
                        "consuming the import queue (IMPORT_TASK_QUEUE)? celery inspect ping, "
                        "and the worker's log. The job runs when a worker takes it."
                    )
                    % {"job": job_id, "seconds": timeout},
                )
            time.sleep(interval)


@dataclass(frozen=True)
class Classification:
    kind: str
    owner: str
    remediation: str


def classify(
    failure: ApiFailure, base_url: str, *, root_confirmed: bool = False
) -> Classification | None:
    """What an API failure says about the deployment at ``base_url`` where its status says
    more than the step that met it; None where the answer is the application's own (the
    step's kind then, a defect by default):

    - no answer: dependency (the service, or the network to it); an address that cannot be
      requested at all: config;
    - 401 (a refused token), 403 (a missing role, or the IP allowlist): config;
    - 404 until the application's root has answered (``root_confirmed``): config, the base
      URL is not the application's; after that, the application's own answer;
    - 429, and a 5xx other than 500 (the server, a proxy in front of it, the database or the
      broker): dependency;
    - 500, the application failed (INTERNAL_ERROR): a defect, the developers'.

    Ops act on everything but a 500."""
    status, code = failure.status, failure.code
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
            "%(url)s refused the token: issue a new one (manage.py issue_token <username>; "
            "the smoke needs an admin's, perf an importer's) and pass it with --token (or "
            "GATES_TOKEN)."
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
            "the organisation, perf as an importer (the role admin also covers imports)."
        )
    elif status == 404 and not root_confirmed:
        kind = FailureKind.CONFIG
        hint = _("%(url)s has no %(path)s: the base URL is not the application's root.")
    elif status == 429:
        kind = FailureKind.DEPENDENCY
        hint = _(
            "The API rate-limited the gate: run it when the deployment is quieter, or raise "
            "the RATELIMIT_* setting of this endpoint."
        )
    elif status == 500:
        return Classification(
            FailureKind.DEFECT,
            OwnerRole.DEVELOPER,
            _(
                "The application failed (INTERNAL_ERROR): the web process's log has the "
                "traceback of this request."
            ),
        )
    elif status > 500:
        kind = FailureKind.DEPENDENCY
        hint = _(
            "The server, or a proxy in front of it, answered %(status)s: check the web "
            "processes, the database and the broker (/readyz) and the proxy's log."
        )
    else:
        return None
    return Classification(
        kind, OwnerRole.OPS, hint % {"url": base_url, "status": status, "path": failure.path}
    )


def classified(probe, base_url: str, *, root_confirmed: bool = False):
    """``probe`` with its API failures classified (:func:`classify`); one the probe gave a
    kind itself keeps it."""

    def run():
        try:
            return probe()
        except ApiFailure as failure:
            found = None
            if failure.kind is None:
                found = classify(failure, base_url, root_confirmed=root_confirmed)
            if found is not None:
                failure.kind, failure.owner = found.kind, found.owner
                failure.remediation = found.remediation
            raise

    return run


def deployment_client(
    ctx: GateContext,
    *,
    check: str,
    remediation: str,
    with_token: bool = True,
    describe=None,
) -> GateClient:
    """The gate's client of the deployment, once the configuration check ``check`` (it stops
    the run when it fails) found the deployment's address (``base_url``, an http(s) URL)
    and, ``with_token``, a bearer token (``token``) in the gate's options. ``describe(base_url)``
    gives the check's detail (the address by default) and may fail it on the gate's own
    options by raising :class:`CheckFailed`."""
    found = {}

    def probe():
        base_url = str(ctx.options.get("base_url") or "").strip()
        token = str(ctx.options.get("token") or "").strip() if with_token else ""
        given = [("--base-url", base_url)] + ([("--token", token)] if with_token else [])
        missing = [flag for flag, value in given if not value]
        if missing:
            raise CheckFailed(_("Missing: %(flags)s.") % {"flags": ", ".join(missing)})
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CheckFailed(
                _("The base URL %(url)s is not an http(s) address.") % {"url": base_url}
            )
        found.update(base_url=base_url, token=token or None)
        return describe(base_url) if describe else base_url

    ctx.check(
        check,
        probe,
        kind=FailureKind.CONFIG,
        owner=OwnerRole.OPS,
        remediation=remediation,
        stop=True,
    )
    return GateClient(found["base_url"], found["token"])


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
