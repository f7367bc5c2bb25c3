"""Health, metrics, docs and the production settings guard, exercised for real."""

from __future__ import annotations

import secrets
import subprocess

import pytest

from tests.support import PYTHON, ROOT, child_env

pytestmark = pytest.mark.django_db


def test_livez_answers_without_auth(client):
    response = client.get("/livez")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_each_check(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["failing"] == []
    assert set(body["checks"]) == {"database", "migrations", "broker"}


def test_readyz_names_an_unreachable_broker(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]


@pytest.mark.integration
def test_readyz_and_api_answer_503_when_the_database_is_down():
    script = (
        "import django, json; django.setup();"
        "from django.test import Client; c = Client();"
        "r = c.get('/readyz'); a = c.get('/api/attendance/me', HTTP_AUTHORIZATION='Bearer att_x');"
        "print(json.dumps([r.status_code, r.json()['failing'], a.status_code, a.json()]))"
    )
    env = child_env(DATABASE_URL="postgres://postgres@127.0.0.1:1/nowhere", DB_CONNECT_TIMEOUT="2")
    result = subprocess.run(
        [PYTHON, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    import json

    status, failing, api_status, api_body = json.loads(result.stdout.strip().splitlines()[-1])
    assert status == 503
    assert "database" in failing
    assert api_status == 503
    assert api_body["error"]["code"] == "DB_NOT_READY"


def test_metrics_are_prometheus_text(client):
    client.get("/livez")
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert "django_http_requests_total_by_method_total" in text


def test_api_docs_and_schema_are_served_without_a_cdn(client):
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "cdn" not in html.lower()
    assert "/static/drf_spectacular_sidecar/" in html
    schema = client.get("/api/schema/", {"format": "json"})
    assert schema.status_code == 200
    assert "/api/attendance/records" in schema.json()["paths"]


def test_every_response_has_a_request_id(client):
    response = client.get("/livez", HTTP_X_REQUEST_ID="trace-123")
    assert response["X-Request-ID"] == "trace-123"
    generated = client.get("/livez", HTTP_X_REQUEST_ID="bad id with spaces")
    assert generated["X-Request-ID"] != "bad id with spaces"
    assert len(generated["X-Request-ID"]) == 32


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": secrets.token_urlsafe(60),
    "ALLOWED_HOSTS": "attendance.example.com",
    "DEBUG": "false",
}


@pytest.mark.integration
def test_production_settings_pass_check_deploy():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.integration
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"SECRET_KEY": "insecure-development-key-never-use-in-production"}, "SECRET_KEY"),
        ({"DEBUG": "true"}, "DEBUG"),
        ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS"),
        (
            {"DATABASE_URL": "postgres://attendance_app:change_me@db:5432/attendance"},
            "replace the CHANGE_ME placeholder in DATABASE_URL",
        ),
        ({"GATES_TOKEN": "CHANGE_ME"}, "replace the CHANGE_ME placeholder in GATES_TOKEN"),
    ],
)
def test_production_refuses_unsafe_settings(override, message):
    result = _manage("check", **{**PRODUCTION, **override})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


@pytest.mark.integration
def test_production_redirects_to_https_but_not_the_probes():
    """TLS ends in front of nginx: a plain-HTTP request is redirected, except the health and
    metrics probes from inside the network (the healthcheck, Prometheus)."""
    script = (
        "import django; django.setup();"
        "from django.test import Client; c = Client(HTTP_HOST='127.0.0.1');"
        "print(c.get('/livez').status_code, c.get('/metrics').status_code,"
        " c.get('/api/attendance/me').status_code,"
        " c.get('/api/attendance/me', HTTP_X_FORWARDED_PROTO='https').status_code)"
    )
    env = {**PRODUCTION, "ALLOWED_HOSTS": "attendance.example.com,127.0.0.1"}
    result = subprocess.run(
        [PYTHON, "-c", script],
        cwd=ROOT,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "200", "301", "401"]


@pytest.mark.integration
@pytest.mark.parametrize("behind", ["false", "true"])
def test_behind_pgbouncer_no_startup_options_and_no_server_side_cursors(behind):
    script = (
        "import django; django.setup(); from django.conf import settings;"
        "db = settings.DATABASES['default'];"
        "print('options' in db['OPTIONS'], db.get('DISABLE_SERVER_SIDE_CURSORS', False))"
    )
    result = subprocess.run(
        [PYTHON, "-c", script],
        cwd=ROOT,
        env=child_env(DB_BEHIND_PGBOUNCER=behind),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    expected = ["False", "True"] if behind == "true" else ["True", "False"]
    assert result.stdout.split() == expected


@pytest.mark.integration
def test_the_env_example_copied_as_it_is_starts_nothing():
    example = dict(
        line.split("=", 1)
        for line in (ROOT / "deploy" / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    result = _manage("check", **example)
    assert result.returncode != 0
    refused = result.stderr.rsplit("placeholder in ", 1)[1]
    for name in ("SECRET_KEY", "DATABASE_URL", "DATABASE_MIGRATE_URL", "GATES_TOKEN"):
        assert name in refused


@pytest.mark.integration
def test_production_logs_are_json_with_the_request_id():
    script = (
        "import django, logging; django.setup();"
        "from common import context;"
        "context.bind(context.RequestContext(request_id='req-42'));"
        "logging.getLogger('attendance.test').warning('hello')"
    )
    result = subprocess.run(
        [PYTHON, "-c", script],
        cwd=ROOT,
        env=child_env(**PRODUCTION),
        capture_output=True,
        text=True,
        timeout=60,
    )
    import json

    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["message"] == "hello"
    assert line["request_id"] == "req-42"
    assert line["level"] == "WARNING"


def test_app_metrics_count_punches(client, people, api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api(people["employee"]).post(
            "/api/attendance/punch", {"kind": "in"}, format="json"
        )
    assert response.status_code == 201
    text = client.get("/metrics").content.decode()
    line = next(
        line
        for line in text.splitlines()
        if line.startswith('attendance_punches_total{kind="in",source="web"}')
    )
    assert float(line.rsplit(" ", 1)[1]) >= 1
