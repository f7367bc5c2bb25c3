"""Helpers for tests that start real processes (manage.py, a Celery worker)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def test_database_url() -> str:
    """A DATABASE_URL for the database this test process uses (socket hosts encoded)."""
    db = connection.settings_dict
    host = quote(db["HOST"] or "", safe="") if (db["HOST"] or "").startswith("/") else db["HOST"]
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{db['USER']}{password}@{host}{port}/{db['NAME']}"


def child_env(**overrides: str) -> dict[str, str]:
    # The browser tests' DJANGO_ALLOW_ASYNC_UNSAFE must not leak into a child (check --deploy
    # rightly refuses it), nor pytest's own variables.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PYTEST_") and key != "DJANGO_ALLOW_ASYNC_UNSAFE"
    }
    env["DATABASE_URL"] = test_database_url()
    env.update(overrides)
    return env


def client_for(employee):
    """An API client with a freshly loaded user (roles are cached on the user object)."""
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user=get_user_model().objects.get(pk=employee.user_id))
    return client


def data(response, status=200):
    """The ``data`` of a success envelope, after checking the status."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["ok"] is True
    return body["data"]


def error(response, status, code):
    """The ``error`` of a failure envelope, after checking status, code and its keys."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["ok"] is False
    assert body["error"]["code"] == code
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]


def start_celery_worker(queue: str, *, log_path: Path | None = None, **env: str):
    """A real Celery worker (solo pool: the task runs in the worker's own process) serving
    ``queue`` against this test's database, in its own process group; its output goes to
    ``log_path`` when given (for a failing test's message)."""
    import subprocess

    output = log_path.open("w") if log_path else subprocess.DEVNULL

    return subprocess.Popen(
        [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            queue,
            "--pool",
            "solo",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=child_env(**env),
        stdout=output,
        stderr=subprocess.STDOUT if log_path else subprocess.DEVNULL,
        start_new_session=True,
    )
