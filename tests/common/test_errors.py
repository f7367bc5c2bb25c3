"""The error envelope: every code the foundation produces, request ids, CSRF and the schema."""

from __future__ import annotations

import re
import types

import django_ratelimit.core
import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection, transaction
from django.test import override_settings
from rest_framework.test import APIClient

from attendance import selectors, services
from attendance.models import AdjustmentRequest, Organisation, Punch
from audit.models import AuditEvent
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

User = get_user_model()


def client_for(employee, **kwargs) -> APIClient:
    client = APIClient(**kwargs)
    client.force_authenticate(user=User.objects.get(pk=employee.user_id))
    return client


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"ok", "error"}
    assert body["ok"] is False
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    text = response.content.decode()
    assert "Traceback" not in text
    assert 'File "' not in text
    return body["error"]


def set_allowlist(organisation: Organisation, allowlist) -> None:
    Organisation.objects.filter(pk=organisation.pk).update(ip_allowlist=allowlist)


# --- success ----------------------------------------------------------------------------


def test_success_envelope(people):
    response = client_for(people["employee"]).get("/api/attendance/records")
    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "data": {"items": [], "page": 1, "pageSize": 50, "total": 0},
    }


def test_created_envelope(people):
    response = client_for(people["employee"]).post(
        "/api/attendance/punch", {"kind": "in"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"ok", "data"}
    assert body["ok"] is True


# --- VALIDATION_ERROR -------------------------------------------------------------------


def test_validation_error_maps_fields(people):
    response = client_for(people["employee"]).get("/api/attendance/records?from=2024-99-01")
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert list(error["details"]["fields"]) == ["from"]
    assert error["details"]["fields"]["from"][0].startswith("Date has wrong format")


def test_malformed_json_body_is_a_validation_error(people):
    response = client_for(people["employee"]).post(
        "/api/attendance/punch", data='{"kind": "in",', content_type="application/json"
    )
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert error["message"].startswith("Malformed request body")
    assert not Punch.objects.exists()


def test_a_json_body_that_is_not_an_object_is_a_validation_error(people):
    response = client_for(people["employee"]).post(
        "/api/attendance/punch", data="[1, 2]", content_type="application/json"
    )
    assert list(assert_error(response, 400, "VALIDATION_ERROR")["details"]["fields"]) == [
        "nonFieldErrors"
    ]


def test_a_form_body_is_an_unsupported_media_type(people):
    response = client_for(people["employee"]).post("/api/attendance/punch", {"kind": "in"})
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


# --- UNAUTHENTICATED --------------------------------------------------------------------


def test_no_credentials(api):
    response = api().get("/api/attendance/me")
    assert_error(response, 401, "UNAUTHENTICATED")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize(
    "header",
    ["Bearer att_not-a-real-token", "Bearer", "Bearer two parts", "bearer att_nope"],
)
def test_bad_bearer_token(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/attendance/me")
    assert_error(response, 401, "UNAUTHENTICATED")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_revoked_token(people):
    user = people["employee"].user
    token, raw = services.api_token_issue(actor=user, user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/attendance/me").status_code == 200
    services.api_token_revoke(actor=user, token=token)
    error = assert_error(client.get("/api/attendance/me"), 401, "UNAUTHENTICATED")
    assert error["message"] == "Invalid or revoked token."


def test_token_of_a_deactivated_user(people):
    user = people["employee"].user
    _, raw = services.api_token_issue(actor=user, user=user)
    User.objects.filter(pk=user.pk).update(is_active=False)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert_error(client.get("/api/attendance/me"), 401, "UNAUTHENTICATED")


# --- FORBIDDEN and IP_RESTRICTED --------------------------------------------------------


def test_forbidden(people):
    response = client_for(people["employee"]).get("/api/attendance-admin/users")
    assert_error(response, 403, "FORBIDDEN")


def test_ip_allowlist_refuses_other_addresses(people):
    set_allowlist(people["employee"].organisation, ["10.0.0.0/8"])
    response = client_for(people["employee"]).post(
        "/api/attendance/punch", {"kind": "in"}, format="json"
    )
    assert_error(response, 403, "IP_RESTRICTED")
    assert not Punch.objects.exists()
    # Admins are held to the list too.
    assert_error(
        client_for(people["admin"]).get("/api/attendance-admin/users"), 403, "IP_RESTRICTED"
    )


def test_ip_allowlist_admits_listed_addresses(people):
    set_allowlist(people["employee"].organisation, ["10.0.0.0/8", "127.0.0.1/32"])
    assert client_for(people["employee"]).get("/api/attendance/me").status_code == 200


def test_ip_allowlist_ignores_forwarded_for_without_trusted_proxies(people):
    set_allowlist(people["employee"].organisation, ["10.0.0.0/8"])
    response = client_for(people["employee"]).get(
        "/api/attendance/me", HTTP_X_FORWARDED_FOR="10.1.2.3"
    )
    assert_error(response, 403, "IP_RESTRICTED")


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_ip_allowlist_uses_the_trusted_proxy_hop(people):
    set_allowlist(people["employee"].organisation, ["10.0.0.0/8"])
    client = client_for(people["employee"])
    assert client.get("/api/attendance/me", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 200
    spoofed = client.get("/api/attendance/me", HTTP_X_FORWARDED_FOR="10.1.2.3, 192.0.2.1")
    assert_error(spoofed, 403, "IP_RESTRICTED")


def test_a_broken_allowlist_entry_refuses_instead_of_failing(people):
    # Stored by hand, bypassing the settings API's validation.
    set_allowlist(people["employee"].organisation, ["not-a-network"])
    response = client_for(people["employee"]).get("/api/attendance/me")
    assert_error(response, 403, "IP_RESTRICTED")
    set_allowlist(people["employee"].organisation, ["not-a-network", "127.0.0.0/8"])
    assert client_for(people["employee"]).get("/api/attendance/me").status_code == 200


# --- NOT_FOUND and METHOD_NOT_ALLOWED ---------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/nothing-here", "/api/attendance/nope", "/api/", "/api/attendance/requests/x"]
)
def test_unknown_api_paths_answer_in_the_envelope(api, path):
    response = api().get(path)
    error = assert_error(response, 404, "NOT_FOUND")
    assert path in error["message"]
    assert response["X-Request-ID"]


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_unknown_api_paths_answer_writes_in_the_envelope_too(method):
    # Not Django's HTML CSRF page: the fallback changes nothing, so it needs no token.
    client = APIClient(enforce_csrf_checks=True)
    response = getattr(client, method)("/api/nothing-here", {"a": 1}, format="json")
    assert_error(response, 404, "NOT_FOUND")


def test_unknown_object_is_not_found(people):
    response = client_for(people["employee"]).get("/api/attendance/requests/999999")
    assert_error(response, 404, "NOT_FOUND")


def test_method_not_allowed(people):
    client = client_for(people["employee"])
    assert_error(client.delete("/api/attendance/me"), 405, "METHOD_NOT_ALLOWED")
    assert_error(client.get("/api/attendance/punch"), 405, "METHOD_NOT_ALLOWED")


# --- RATE_LIMITED -----------------------------------------------------------------------


@override_settings(RATELIMIT_PUNCH="2/m", RATELIMIT_ENABLE=True)
def test_rate_limited_punches(people, monkeypatch):
    # A fixed clock: the third punch must not slip into a new window.
    monkeypatch.setattr(
        django_ratelimit.core, "time", types.SimpleNamespace(time=lambda: 1_700_000_000.0)
    )
    client = client_for(people["employee"])
    for _ in range(2):
        response = client.post("/api/attendance/punch", {"kind": "in"}, format="json")
        assert response.status_code == 201
    response = client.post("/api/attendance/punch", {"kind": "in"}, format="json")
    error = assert_error(response, 429, "RATE_LIMITED")
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 60
    assert error["details"] == {"retryAfterMs": retry_after * 1000}
    assert Punch.objects.count() == 2
    # Another person has their own budget.
    other = client_for(people["stranger"]).post(
        "/api/attendance/punch", {"kind": "in"}, format="json"
    )
    assert other.status_code == 201


# --- REQUEST_STATE_CONFLICT -------------------------------------------------------------


def test_request_state_conflict(people):
    employee = people["employee"]
    request = AdjustmentRequest.objects.create(
        organisation_id=employee.organisation_id,
        employee=employee,
        work_date="2024-03-04",
        requested_status="leave",
        reason="ill",
        created_by=employee.user,
    )
    client = client_for(people["approver"])
    assert client.post(f"/api/attendance/requests/{request.pk}/approve").status_code == 200
    response = client.post(f"/api/attendance/requests/{request.pk}/approve")
    assert_error(response, 409, "REQUEST_STATE_CONFLICT")


# --- DB_NOT_READY and INTERNAL_ERROR ----------------------------------------------------


def _refused():
    # Client-side, as psycopg reports a refused connection: no SQLSTATE.
    raise OperationalError("connection refused")


def _not_migrated():
    # A real undefined table (42P01): the mapping reads the SQLSTATE, not the message.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM attendance_not_migrated_yet")


@pytest.mark.parametrize("fail", [_refused, _not_migrated], ids=["refused", "not_migrated"])
def test_database_not_ready(people, monkeypatch, fail):
    def unavailable(**kwargs):
        fail()

    monkeypatch.setattr(selectors, "record_list", unavailable)
    response = client_for(people["employee"]).get("/api/attendance/records")
    error = assert_error(response, 503, "DB_NOT_READY")
    assert "connection refused" not in error["message"]


def test_internal_error_has_no_stack_trace(people, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("secret internals at 0xdeadbeef")

    monkeypatch.setattr(selectors, "record_list", broken)
    client = client_for(people["employee"], raise_request_exception=False)
    response = client.get("/api/attendance/records")
    error = assert_error(response, 500, "INTERNAL_ERROR")
    assert error == {
        "code": "INTERNAL_ERROR",
        "message": "An internal error occurred.",
        "details": {},
    }
    assert b"0xdeadbeef" not in response.content
    assert b"RuntimeError" not in response.content


# --- request ids and audit context ------------------------------------------------------


def test_every_response_carries_a_request_id(api, people):
    first = api().get("/api/attendance/me")
    second = client_for(people["employee"]).get("/api/attendance/me")
    for response in (first, second):
        assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_a_sane_incoming_request_id_is_echoed(people):
    response = client_for(people["employee"]).get(
        "/api/attendance/me", HTTP_X_REQUEST_ID="trace-42.abc_DEF"
    )
    assert response["X-Request-ID"] == "trace-42.abc_DEF"


@pytest.mark.parametrize("incoming", ["has spaces", "x" * 65, "new\\nline", "<script>"])
def test_an_odd_incoming_request_id_is_replaced(people, incoming):
    response = client_for(people["employee"]).get("/api/attendance/me", HTTP_X_REQUEST_ID=incoming)
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_the_punch_audit_event_has_request_id_ip_and_user_agent(people):
    response = client_for(people["employee"]).post(
        "/api/attendance/punch",
        {"kind": "in"},
        format="json",
        HTTP_X_REQUEST_ID="req-punch-1",
        HTTP_USER_AGENT="pytest-agent/1.0",
    )
    assert response.status_code == 201
    event = AuditEvent.objects.get(action="attendance.punch.created")
    assert (event.request_id, event.ip, event.user_agent) == (
        "req-punch-1",
        "127.0.0.1",
        "pytest-agent/1.0",
    )
    assert event.actor_id == people["employee"].user_id
    assert event.target_id == str(response.json()["data"]["punch"]["id"])


# --- CSRF -------------------------------------------------------------------------------


def test_session_post_without_csrf_token_is_forbidden(people):
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username="employee_user", password=PASSWORD)
    assert client.get("/api/attendance/me").status_code == 200  # reads need no token
    response = client.post("/api/attendance/punch", {"kind": "in"}, format="json")
    error = assert_error(response, 403, "FORBIDDEN")
    assert "CSRF" in error["message"]
    assert not Punch.objects.exists()

    token = "a" * 32
    client.cookies["csrftoken"] = token
    response = client.post(
        "/api/attendance/punch", {"kind": "in"}, format="json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 201, response.content


def test_bearer_token_needs_no_csrf_token(people):
    user = people["employee"].user
    _, raw = services.api_token_issue(actor=user, user=user)
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = client.post("/api/attendance/punch", {"kind": "in"}, format="json")
    assert response.status_code == 201, response.content


# --- OpenAPI ----------------------------------------------------------------------------

DOCUMENTED = {
    "/api/attendance/me": ["get"],
    "/api/attendance/punch": ["post"],
    "/api/attendance/records": ["get"],
    "/api/attendance/summary": ["get"],
    "/api/attendance/export.csv": ["get"],
    "/api/attendance/requests": ["get", "post"],
    "/api/attendance/requests/{id}": ["get"],
    "/api/attendance/requests/{id}/approve": ["post"],
    "/api/attendance/requests/{id}/reject": ["post"],
    "/api/attendance/requests/{id}/cancel": ["post"],
    "/api/attendance-admin/users": ["get"],
    "/api/attendance-admin/users/{id}/access": ["get"],
    "/api/attendance-admin/users/{id}/roles/{action}": ["post"],
    "/api/attendance-admin/users/batch/roles/{action}": ["post"],
    "/api/attendance-admin/settings": ["get", "put"],
    "/api/attendance/import/template": ["get"],
    "/api/attendance/import/formats": ["get"],
    "/api/attendance/import/upload": ["post"],
    "/api/attendance/import/prepare": ["post"],
    "/api/attendance/import/preview": ["post"],
    "/api/attendance/import/commit": ["post"],
    "/api/attendance/import/commit-async": ["post"],
    "/api/attendance/import/jobs/{job_id}": ["get"],
    "/api/attendance/import/batches": ["get"],
    "/api/attendance/import/batches/{batch_id}": ["get"],
    "/api/attendance/import/batches/{batch_id}/items": ["get"],
    "/api/attendance/import/batches/{batch_id}/export.csv": ["get"],
    "/api/attendance/import/rollback/{batch_id}": ["post"],
}
ERROR_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def test_schema_describes_every_documented_endpoint(schema):
    for path, methods in DOCUMENTED.items():
        assert path in schema["paths"], path
        assert set(methods) <= set(schema["paths"][path]), path


def test_schema_wraps_success_in_the_envelope_and_errors_in_error_envelope(schema):
    for path, methods in DOCUMENTED.items():
        for method in methods:
            responses = schema["paths"][path][method]["responses"]
            for status in ("401", "403", "400", "404", "429", "500", "503"):
                assert responses[status]["content"]["application/json"]["schema"] == ERROR_REF
            success = next(code for code in responses if code.startswith("2"))
            content = responses[success]["content"]
            if path.endswith(".csv") or path.endswith("/template"):
                assert "text/csv" in content
                continue
            body = content["application/json"]["schema"]
            assert body["required"] == ["ok", "data"], (path, method)
            assert body["properties"]["ok"] == {"type": "boolean", "enum": [True]}
    envelope = schema["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["required"] == ["ok", "error"]
    assert envelope["properties"]["error"]["required"] == ["code", "message", "details"]


def test_schema_describes_lists_as_pages(schema):
    components = schema["components"]["schemas"]
    for path in (
        "/api/attendance/records",
        "/api/attendance/requests",
        "/api/attendance-admin/users",
        "/api/attendance/import/batches",
        "/api/attendance/import/batches/{batch_id}/items",
    ):
        operation = schema["paths"][path]["get"]
        data = operation["responses"]["200"]["content"]["application/json"]["schema"]["properties"][
            "data"
        ]
        page = components[data["$ref"].rsplit("/", 1)[-1]]
        assert set(page["required"]) == {"items", "page", "pageSize", "total"}, path
        assert {"page", "pageSize"} <= {p["name"] for p in operation["parameters"]}, path


def test_schema_declares_state_conflicts_and_bearer_auth(schema):
    for path in ("approve", "reject", "cancel"):
        responses = schema["paths"][f"/api/attendance/requests/{{id}}/{path}"]["post"]["responses"]
        assert responses["409"]["content"]["application/json"]["schema"] == ERROR_REF
    bearer = schema["components"]["securitySchemes"]["bearerAuth"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    assert "issue_token" in bearer["description"]
