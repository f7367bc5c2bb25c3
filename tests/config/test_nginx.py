"""deploy/nginx: `nginx -t` accepts the configuration, and a real nginx in front of a real
gunicorn and worker carries an upload larger than nginx's default 1 MB limit, an async
commit and an export, with the client's address passed on as the app expects."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import getpass
import io
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from audit.models import AuditEvent
from tests.gates.conftest import free_port, live_stack  # noqa: F401 - the fixture
from tests.support import ROOT

CONF = ROOT / "deploy" / "nginx" / "attendance.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"  # make test installs Debian's nginx

# The test's folders are root's (0700): nginx's worker runs as this test's user, not nobody.
MAIN = """
{user}
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {site};
}}
"""


def site_for_loopback(root: Path, *, listen: int, web: str, static: Path) -> Path:
    """The deployed site, with compose's names replaced by this test's loopback addresses
    (the listen port, the web's address, the static folder); everything else as shipped."""
    text = CONF.read_text()
    for shipped, local in (
        ("listen 80;", f"listen 127.0.0.1:{listen};"),
        ("http://web:8000", f"http://{web}"),
        ("resolver 127.0.0.11", "resolver 127.0.0.1"),
        ("/srv/static/", f"{static}/"),
    ):
        assert shipped in text, f"the shipped config no longer has {shipped!r}"
        text = text.replace(shipped, local)
    site = root / "site.conf"
    site.write_text(text)
    main = root / "nginx.conf"
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    main.write_text(MAIN.format(root=root, site=site, user=user))
    return main


def nginx(main: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [NGINX, "-c", str(main), "-p", str(main.parent), *arguments],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_nginx_accepts_the_shipped_configuration(tmp_path):
    main = site_for_loopback(tmp_path, listen=free_port(), web="127.0.0.1:9", static=tmp_path)
    result = nginx(main, "-t")
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_nginx_refuses_a_broken_configuration(tmp_path):
    """The check above can fail."""
    main = site_for_loopback(tmp_path, listen=free_port(), web="127.0.0.1:9", static=tmp_path)
    site = tmp_path / "site.conf"
    site.write_text(site.read_text().replace("client_max_body_size 210m;", "client_max_body 1;"))
    assert nginx(main, "-t").returncode != 0


@pytest.fixture
def live_stack_env() -> dict[str, str]:
    """As deployed: the app trusts exactly one proxy, nginx."""
    return {"TRUSTED_PROXY_COUNT": "1"}


@pytest.fixture
def proxy(live_stack, tmp_path):  # noqa: F811 - the imported fixture
    static = tmp_path / "static"
    (static / "css").mkdir(parents=True)
    (static / "css" / "app.0123abcd.css").write_text("body { margin: 0 }\n")
    port = free_port()
    web = live_stack.base_url.removeprefix("http://")
    main = site_for_loopback(tmp_path, listen=port, web=web, static=static)
    for folder in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / folder).mkdir()
    process = subprocess.Popen(
        [NGINX, "-c", str(main), "-p", str(tmp_path), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/livez", timeout=2).status_code == 200:
                break
        time.sleep(0.1)
    try:
        yield base, live_stack, tmp_path
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def rows_over_one_megabyte(employee_no: str) -> bytes:
    """Days of the admin itself and of people the import creates: > 1 MB of standard CSV."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "employee_no",
            "name",
            "work_date",
            "first_in",
            "last_out",
            "status",
            "work_minutes",
            "late_minutes",
            "early_leave_minutes",
        ]
    )
    start = dt.date(2025, 1, 1)
    for person in range(60):
        number = employee_no if person == 0 else f"NGX{person:04d}"
        for day in range(365):
            date = start + dt.timedelta(days=day)
            writer.writerow(
                [number, f"Proxy person {person}", date.isoformat(), "08:57", "18:03"] + [""] * 4
            )
    return out.getvalue().encode()


@pytest.mark.integration
def test_an_import_through_nginx_uploads_commits_async_and_exports(proxy):
    base, stack, tmp_path = proxy
    body = rows_over_one_megabyte(stack.admin.employee_no)
    assert len(body) > 1024 * 1024
    client = httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {stack.token}"}, timeout=120
    )

    upload = client.post(
        "/api/attendance/import/upload",
        params={"filename": "proxy.csv"},
        content=body,
        # A forged hop: nginx appends the address it saw, the only one the app trusts.
        headers={"Content-Type": "text/csv", "X-Forwarded-For": "203.0.113.9"},
    )
    assert upload.status_code == 201, f"{upload.text}\n{stack.tail()}"
    file = upload.json()["data"]
    assert file["bytes"] == len(body) and file["rowCount"] == 60 * 365

    token = client.post("/api/attendance/import/prepare").json()["data"]["commitToken"]
    queued = client.post(
        "/api/attendance/import/commit-async",
        json={
            "commitToken": token,
            "fileId": file["fileId"],
            "createMissingEmployees": True,
            "idempotencyKey": "nginx-proxy-test",
        },
    )
    assert queued.status_code == 202, queued.text
    job_id = queued.json()["data"]["job"]["id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = client.get(f"/api/attendance/import/jobs/{job_id}").json()["data"]["job"]
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.25)
    assert job["status"] == "succeeded", f"{job}\n{stack.tail()}"
    batch_id = job["batchId"]

    export = client.get(f"/api/attendance/import/batches/{batch_id}/export.csv")
    assert export.status_code == 200
    lines = export.content.decode("utf-8-sig").splitlines()
    assert len(lines) == 60 * 365 + 1

    # The client as nginx saw it, never the forged hop, and nginx's request id, both in the
    # upload's audit event.
    uploaded = AuditEvent.objects.get(action="imports.upload.created")
    assert uploaded.ip == "127.0.0.1"
    assert uploaded.request_id == upload.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", uploaded.request_id)  # nginx's $request_id

    css = httpx.get(f"{base}/static/css/app.0123abcd.css")
    assert css.status_code == 200 and "immutable" in css.headers["Cache-Control"]
    access_log = (tmp_path / "access.log").read_text()
    assert "POST /api/attendance/import/upload" in access_log
