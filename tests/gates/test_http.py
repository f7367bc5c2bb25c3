"""The gates' HTTP client: how long a Retry-After asks it to wait, what a failure's status
says about the deployment, and the client made from a gate's options."""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime

import httpx
import pytest

from gates.choices import FailureKind, OwnerRole, RunStatus
from gates.services import run_gate
from gates.services.http import ApiFailure, GateClient, classified, classify, retry_after_seconds
from tests.gates.conftest import free_port


def _answer(**headers) -> httpx.Response:
    return httpx.Response(429, headers=headers)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2", 2.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("soon", None),
        ("", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_retry_after_in_seconds(value, seconds):
    assert retry_after_seconds(_answer(**{"Retry-After": value})) == seconds


def test_retry_after_as_an_http_date():
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    waited = retry_after_seconds(_answer(**{"Retry-After": format_datetime(later, usegmt=True)}))
    assert 28 <= waited <= 30
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)
    assert (
        retry_after_seconds(_answer(**{"Retry-After": format_datetime(earlier, usegmt=True)})) == 0
    )


def test_no_retry_after():
    assert retry_after_seconds(_answer()) is None


def _failure(status, code="HTTP_ERROR", path="/api/attendance/me") -> ApiFailure:
    return ApiFailure("GET", path, status, code, "")


@pytest.mark.parametrize(
    ("status", "code", "kind", "owner", "hint"),
    [
        (None, "ConnectError", FailureKind.DEPENDENCY, OwnerRole.OPS, "Nothing answered"),
        (None, "UnsupportedProtocol", FailureKind.CONFIG, OwnerRole.OPS, "http(s) address"),
        (401, "UNAUTHENTICATED", FailureKind.CONFIG, OwnerRole.OPS, "issue_token"),
        (403, "IP_RESTRICTED", FailureKind.CONFIG, OwnerRole.OPS, "IP allowlist"),
        (403, "FORBIDDEN", FailureKind.CONFIG, OwnerRole.OPS, "lacks a role"),
        (404, "NOT_FOUND", FailureKind.CONFIG, OwnerRole.OPS, "has no /api/attendance/me"),
        (429, "RATE_LIMITED", FailureKind.DEPENDENCY, OwnerRole.OPS, "rate-limited"),
        (500, "INTERNAL_ERROR", FailureKind.DEFECT, OwnerRole.DEVELOPER, "traceback"),
        (502, "HTTP_ERROR", FailureKind.DEPENDENCY, OwnerRole.OPS, "answered 502"),
        (503, "DB_NOT_READY", FailureKind.DEPENDENCY, OwnerRole.OPS, "answered 503"),
        (504, "HTTP_ERROR", FailureKind.DEPENDENCY, OwnerRole.OPS, "answered 504"),
    ],
)
def test_a_failures_status_gives_its_kind_owner_and_hint(status, code, kind, owner, hint):
    found = classify(_failure(status, code), "http://deployment.test")
    assert (found.kind, found.owner) == (kind, owner)
    assert hint in found.remediation and "%(" not in found.remediation


@pytest.mark.parametrize("status", [400, 409, 422])
def test_the_applications_own_refusals_stay_the_steps(status):
    assert classify(_failure(status), "http://deployment.test") is None


def test_a_404_is_the_address_only_until_the_root_answered():
    assert classify(_failure(404), "http://x.test").kind == FailureKind.CONFIG
    assert classify(_failure(404), "http://x.test", root_confirmed=True) is None


def test_a_probe_that_classified_its_failure_keeps_its_kind():
    def probe():
        failure = _failure(502)
        failure.kind = FailureKind.DEFECT
        raise failure

    with pytest.raises(ApiFailure) as raised:
        classified(probe, "http://x.test")()
    assert (raised.value.kind, raised.value.remediation) == (FailureKind.DEFECT, "")


def test_nothing_listening_is_a_dependency():
    base_url = f"http://127.0.0.1:{free_port()}"
    with GateClient(base_url, timeout=5) as client, pytest.raises(ApiFailure) as raised:
        classified(lambda: client.get("/livez"), base_url)()
    assert raised.value.status is None
    assert (raised.value.kind, raised.value.owner) == (FailureKind.DEPENDENCY, OwnerRole.OPS)
    assert base_url in raised.value.remediation


@pytest.mark.django_db
@pytest.mark.parametrize("gate", ["smoke", "perf", "metrics"])
def test_every_http_gate_refuses_an_address_that_is_not_http(gate):
    run = run_gate(gate, options={"base_url": "ftp://127.0.0.1/", "token": "t"})
    first = run.evidence["checks"][0]
    assert (run.status, run.failed_check, run.failure_kind) == (
        RunStatus.FAIL,
        first["name"],
        FailureKind.CONFIG,
    )
    assert first["detail"] == "The base URL ftp://127.0.0.1/ is not an http(s) address."
    assert run.remediation_owner == OwnerRole.OPS and run.evidence["endMarker"] is None
