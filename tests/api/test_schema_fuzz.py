"""The OpenAPI schema tells the truth: schemathesis runs every operation of ``/api/schema/``
against the application, in process, as an admin who holds every role.

Each operation gets ``MAX_EXAMPLES`` generated requests (valid ones and, in negative mode,
ones the schema forbids) plus schemathesis's explicit examples, derandomised and without
Hypothesis's example database so every run sends the same requests. Every response must
pass schemathesis's checks: no 5xx, a declared status, the declared content type and
headers, a body that matches the response schema, refused when the request breaks the
schema, accepted when it keeps it.

State: every example runs inside a savepoint that is rolled back after it, so the fixture
(an admin, a report with requests, two import batches, an upload, a queued job) is the
same for each example however destructive the previous one was (a rollback, a role
unassigned, an allowlist saved); nothing is excluded. Path ids are aimed at real objects
half of the time, so detail endpoints answer bodies, not only 404s.

A failure prints schemathesis's report with a ``curl`` line that reproduces it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core.cache import caches
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.settings import spectacular_settings
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient
from schemathesis.specs.openapi.checks import positive_data_acceptance

from attendance import services
from config.wsgi import application
from events import services as events_services
from gates.models import GateRun
from imports import services as imports_services
from imports.models import ImportJob
from tests.support import data

MAX_EXAMPLES = 12
SEED = 20260508

# Refusals a JSON Schema cannot state: they depend on the content of a file, on today's
# date, on the database or on the caller. A schema-valid request answered with one of these
# (operationId → (status, error code, the only fields a VALIDATION_ERROR may name)) is not
# a positive-data failure; every other check still runs on it. Anything else refused fails.
_PERIOD = (400, "VALIDATION_ERROR", frozenset({"to"}), "'to' must not be before 'from'")
_EVENT_TIMES = (
    400,
    "VALIDATION_ERROR",
    frozenset({"startsAt", "endsAt", "checkInOpensAt", "checkInClosesAt"}),
    "an event ends after it starts, its check-in closes after it opens (with the stored times)",
)
SEMANTIC_REFUSALS: dict[str, list[tuple[int, str, frozenset[str] | None, str]]] = {
    "attendance_records": [_PERIOD],
    "attendance_export_csv": [_PERIOD],
    "attendance_requests_create": [
        (
            400,
            "VALIDATION_ERROR",
            frozenset({"workDate", "firstIn", "lastOut"}),
            "not in the future, at most CORRECTION_MAX_AGE_DAYS back; times on the work "
            "date or the next morning, in order",
        ),
    ],
    "admin_settings_update": [
        (
            400,
            "VALIDATION_ERROR",
            frozenset({"ipAllowlist"}),
            "allowlist entries must be IP networks that keep the saving admin's address",
        ),
    ],
    "events_list": [_PERIOD],
    "events_create": [_EVENT_TIMES],
    "events_update": [_EVENT_TIMES],
    "import_upload": [
        (400, "EMPTY_FILE", None, "the file holds no rows"),
        (415, "UNSUPPORTED_FORMAT", None, "the bytes are no CSV, XLSX or DAT we read"),
    ],
}
_SOURCE_REFUSALS = [
    (400, "EMPTY_FILE", None, "the CSV text holds no rows"),
    (415, "UNSUPPORTED_FORMAT", None, "the CSV text is no format we read"),
    (
        400,
        "VALIDATION_ERROR",
        frozenset({"mapping", "format"}),
        "the mapping names columns the format has; the format fits the file",
    ),
]
for _operation in ("import_preview", "import_preview_errors_csv"):
    SEMANTIC_REFUSALS[_operation] = list(_SOURCE_REFUSALS)
for _operation in ("import_commit", "import_commit_async"):
    SEMANTIC_REFUSALS[_operation] = [
        *_SOURCE_REFUSALS,
        (
            400,
            "COMMIT_TOKEN_REQUIRED",
            None,
            "a token is needed unless idempotencyKey names an earlier commit",
        ),
    ]

# Operations not fuzzed, with the reason. Empty: every operation runs.
EXCLUDED_OPERATIONS: dict[str, str] = {}


def _generated_schema() -> dict:
    """What ``/api/schema/`` serves (test_schema_served_is_the_one_fuzzed checks it)."""
    generator = SchemaGenerator(patterns=None)
    return generator.get_schema(request=None, public=spectacular_settings.SERVE_PUBLIC)


FUZZ_CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
        },
        # The coverage phase's boundary cases run too (fuzzing alone may miss a limit).
        "phases": {"coverage": {"enabled": True}, "stateful": {"enabled": False}},
        "operations": [
            {
                # Its positive coverage cases are one PUT per IANA time zone (~600, half a
                # minute); its negative boundary cases still run, and fuzzing sends valid ones.
                "include-operation-id": "admin_settings_update",
                "phases": {"coverage": {"generation": {"mode": "negative"}}},
            }
        ],
    }
)
schema = schemathesis.openapi.from_dict(_generated_schema(), config=FUZZ_CONFIG)
schema.app = application
for _excluded in EXCLUDED_OPERATIONS:
    schema = schema.exclude(operation_id=_excluded)

STANDARD_CSV = "employee_no,name,work_date,first_in,last_out,status\n{rows}"


@pytest.fixture
def world(organisation, make_person, settings, tmp_path):
    """An admin with every role (and a token), a report of theirs with a pending and a
    decided request, a committed and a rolled-back batch, an upload and a queued job."""
    settings.IMPORT_STORAGE_DIR = tmp_path / "uploads"
    admin = make_person(organisation, "employee", "admin", "importer", "approver", username="fuzz")
    report = make_person(organisation, "employee", approver=admin, employee_no="F001")
    _token, raw_token = services.api_token_issue(actor=None, user=admin.user, name="fuzz")
    client = APIClient()
    client.force_authenticate(user=admin.user)
    pending = services.adjustment_request_create(
        actor=report.user,
        employee=report,
        work_date=_recent_day(organisation),
        status="leave",
        reason="pending",
    )
    decided = services.adjustment_request_create(
        actor=report.user,
        employee=report,
        work_date=_recent_day(organisation, days_back=2),
        status="leave",
        reason="decided",
    )
    services.adjustment_request_reject(actor=admin.user, request=decided, comment="no")

    def commit(rows: str) -> int:
        token = data(client.post("/api/attendance/import/prepare"))["commitToken"]
        body = {"commitToken": token, "csvText": STANDARD_CSV.format(rows=rows)}
        return data(client.post("/api/attendance/import/commit", body, format="json"))["batchId"]

    day = _recent_day(organisation, days_back=3).isoformat()
    kept = commit(f"F001,{report.name},{day},09:00,18:00,normal\n")
    undone = commit(f"{admin.employee_no},{admin.name},{day},09:10,18:00,late\n")
    data(client.post(f"/api/attendance/import/rollback/{undone}"))
    upload = data(
        client.post(
            "/api/attendance/import/upload?filename=day.csv",
            data=STANDARD_CSV.format(rows=f"F001,{report.name},{day},09:00,17:00,\n").encode(),
            content_type="application/octet-stream",
        ),
        201,
    )
    token = data(client.post("/api/attendance/import/prepare"))["commitToken"]
    queued = client.post(
        "/api/attendance/import/commit-async",
        {"commitToken": token, "fileId": upload["fileId"]},
        format="json",
    )
    assert queued.status_code == 202, queued.content
    starts_at = timezone.now() + dt.timedelta(minutes=10)  # check-in is open
    event = events_services.event_create(
        actor=admin.user,
        organisation=organisation,
        title="Fuzz",
        starts_at=starts_at,
        ends_at=starts_at + dt.timedelta(hours=1),
    )
    events_services.participants_add(actor=None, event=event, employee_nos=["F001"])
    gate_runs = [
        GateRun.objects.create(
            gate=gate,
            priority="P0",
            status=status,
            drill=drill,
            started_at=timezone.now() - dt.timedelta(hours=1),
            finished_at=timezone.now(),
            duration_ms=3600_000,
            summary={"checks": 1},
            evidence={"checks": [], "completed": status == "pass"},
            log="started\ngate-complete",
            failed_check="" if status == "pass" else "health",
            failure_kind="" if status == "pass" else "dependency",
        )
        for gate, status, drill in (("preflight", "pass", False), ("smoke", "fail", True))
    ]
    return {
        "admin": admin,
        "file_id": upload["fileId"],
        "token": raw_token,
        "ids": {
            "/api/attendance/requests/": [pending.pk, decided.pk],
            "/api/attendance-admin/users/": [admin.user_id, report.user_id],
            "batch_id": [kept, undone],
            "job_id": [str(job.pk) for job in ImportJob.objects.filter(organisation=organisation)],
            "/api/events/": [event.pk],
            "pid": list(event.participants.values_list("pk", flat=True)),
            "/api/gates/runs/": [run.pk for run in gate_runs],
        },
    }


def _recent_day(organisation, days_back: int = 1):
    import datetime as dt

    from django.utils import timezone

    return timezone.localdate(timezone=organisation.tz) - dt.timedelta(days=days_back)


@pytest.fixture
def in_process_requests():
    """As Django's test client does: a request must not close the test's connection (its
    transaction holds the fixture)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def generous_rate_limits(settings):
    """The limits stay on, counted as always, with room for a fuzzing run's requests (a 429
    would hide the answer under test: the test fails on one)."""
    for name in dir(django_settings):
        if not name.startswith("RATELIMIT_"):
            continue
        value = getattr(django_settings, name)
        if isinstance(value, str) and "/" in value:
            setattr(settings, name, "1000000/m")
    # Counters other tests left in a shared cache start from nothing too.
    caches[getattr(django_settings, "RATELIMIT_USE_CACHE", "default")].clear()


def _stable_number(value) -> int:
    return int(hashlib.sha256(repr(value).encode()).hexdigest()[:8], 16)


def _aim_at_real_objects(case, world: dict) -> None:
    """Half of the well-formed path ids, upload ids and commit tokens become those of the
    fixture's objects (a fresh token each time), and half of the valid corrections ask for
    a recent day, so that success answers are checked too, not only 404s and refusals."""
    ids = world["ids"]
    for name, value in list((case.path_parameters or {}).items()):
        choices = ids.get(name) or next(
            (known for prefix, known in ids.items() if case.path.startswith(prefix)), None
        )
        well_formed = isinstance(value, int) or (
            isinstance(value, str) and re.fullmatch(r"[0-9a-f-]{36}", value)
        )
        if choices and well_formed and _stable_number(value) % 2 == 0:
            case.path_parameters[name] = choices[_stable_number(value) // 2 % len(choices)]
    body = case.body
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if not (positive and isinstance(body, dict) and _stable_number(body) % 2 == 0):
        return
    if isinstance(body.get("fileId"), str):
        body["fileId"] = world["file_id"]
    if isinstance(body.get("commitToken"), str):
        body["commitToken"], _record = imports_services.commit_token_issue(
            actor=world["admin"].user, organisation=world["admin"].organisation
        )
    if case.operation.definition.raw.get("operationId") == "attendance_requests_create":
        body.update(workDate=_recent_day(world["admin"].organisation).isoformat(), status="leave")
        body.pop("firstIn", None)
        body.pop("lastOut", None)


def _semantic_refusal(case, response) -> bool:
    if not 400 <= response.status_code < 500:
        return False
    try:
        error = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    fields = set((error.get("details") or {}).get("fields") or {})
    for status, code, allowed_fields, _reason in SEMANTIC_REFUSALS.get(
        case.operation.definition.raw.get("operationId", ""), []
    ):
        if (status, code) != (response.status_code, error.get("code")):
            continue
        if allowed_fields is None or (fields and fields <= allowed_fields):
            return True
    return False


@schema.parametrize()
@settings(
    deadline=None,
    database=None,
    derandomize=True,
    max_examples=MAX_EXAMPLES,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_keeps_to_the_schema(
    case, world, in_process_requests, generous_rate_limits
):
    headers = {"Authorization": f"Bearer {world['token']}"}
    with transaction.atomic():
        try:
            _aim_at_real_objects(case, world)
            response = case.call(headers=headers)
            assert response.status_code != 429, "rate limited while fuzzing: " + response.text
            excluded = [positive_data_acceptance] if _semantic_refusal(case, response) else []
            case.validate_response(response, headers=headers, excluded_checks=excluded)
        finally:
            transaction.set_rollback(True)


def test_every_operation_is_fuzzed_or_excluded_with_a_reason():
    operation_ids = {
        operation.get("operationId")
        for methods in _generated_schema()["paths"].values()
        for operation in methods.values()
    }
    assert EXCLUDED_OPERATIONS == {}
    assert set(SEMANTIC_REFUSALS) <= operation_ids
    fuzzed = {result.ok().definition.raw["operationId"] for result in schema.get_all_operations()}
    assert fuzzed == operation_ids


def test_schema_served_is_the_one_fuzzed(db):
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    assert json.loads(response.content) == json.loads(json.dumps(_generated_schema()))
