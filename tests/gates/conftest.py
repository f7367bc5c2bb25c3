"""A live deployment for the gates that test one through HTTP: gunicorn on a free loopback
port and a real Celery worker, both on this test's database, with an admin and its bearer
token committed where they can see them."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from attendance import services
from tests.support import PYTHON, ROOT, child_env, start_celery_worker, stop_process_group


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LiveStack:
    base_url: str
    token: str
    admin: object
    web: subprocess.Popen
    worker: subprocess.Popen
    logs: dict[str, Path] = field(default_factory=dict)

    def tail(self) -> str:
        parts = []
        for name, path in self.logs.items():
            text = path.read_text(errors="replace")[-4000:] if path.exists() else ""
            parts.append(f"--- {name} ---\n{text}")
        return "\n".join(parts)


def _wait_until_ready(stack: LiveStack, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for name, process in (("web", stack.web), ("worker", stack.worker)):
            if process.poll() is not None:
                pytest.fail(f"the {name} exited with {process.returncode}\n{stack.tail()}")
        try:
            answer = httpx.get(f"{stack.base_url}/readyz", timeout=5)
            last = f"{answer.status_code} {answer.text[:300]}"
            # The worker's queue keeps jobs until it takes them: only the web is awaited.
            if answer.status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.2)
    pytest.fail(f"the live stack was not ready in {timeout:.0f} s ({last})\n{stack.tail()}")


@pytest.fixture
def live_stack_env() -> dict[str, str]:
    """Extra environment for the live web process (a test module may override it)."""
    return {}


@pytest.fixture
def live_stack(transactional_db, organisation, make_person, tmp_path, live_stack_env):
    """gunicorn (2 threads) and a worker on a queue of its own, sharing an upload folder;
    an admin (also importer and approver) of ``organisation`` with a bearer token."""
    admin = make_person(
        organisation, "employee", "admin", "importer", "approver", username="gates_admin"
    )
    _, token = services.api_token_issue(actor=None, user=admin.user, name="gates test")
    queue = f"test-gates-{uuid.uuid4().hex[:8]}"
    environment = child_env(
        IMPORT_TASK_QUEUE=queue,
        IMPORT_STORAGE_DIR=str(tmp_path / "uploads"),
        ATTENDANCE_DATA_DIR=str(tmp_path / "data"),
        DJANGO_ENV="development",
        DEBUG="false",
        PYTHONUNBUFFERED="1",
        **live_stack_env,
    )
    port = free_port()
    web_log = tmp_path / "web.log"
    with web_log.open("wb") as output:
        web = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "gunicorn",
                "config.wsgi",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                "1",
                "--threads",
                "4",
                "--timeout",
                "120",
                "--no-control-socket",
            ],
            cwd=ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker_log = tmp_path / "worker.log"
    worker = start_celery_worker(
        queue,
        log_path=worker_log,
        IMPORT_TASK_QUEUE=queue,
        IMPORT_STORAGE_DIR=str(tmp_path / "uploads"),
        ATTENDANCE_DATA_DIR=str(tmp_path / "data"),
    )
    stack = LiveStack(
        base_url=f"http://127.0.0.1:{port}",
        token=token,
        admin=admin,
        web=web,
        worker=worker,
        logs={"web": web_log, "worker": worker_log},
    )
    try:
        _wait_until_ready(stack)
        yield stack
    finally:
        stop_process_group(worker)
        stop_process_group(web)
