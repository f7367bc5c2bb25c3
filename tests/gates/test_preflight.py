"""The preflight gate: a production-like configuration passes (``manage.py gates preflight`` in
a subprocess, a real worker answering its ping); each thing it guards, really broken, fails
that check with its kind while the others still run and pass.

The in-process runs start from ``healthy``: this process's real database, Redis and a real
worker, with production's security settings, so that a broken thing is the only failure
(asserted: ``failed(run)`` is the exact set of failing checks)."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import shutil
import socket
import subprocess
import time
import uuid

import pytest
from django.conf import settings
from django.core.management.utils import get_random_secret_key
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone
from kombu.transport import memory

from gates import checks as readiness
from gates.choices import FailureKind, OwnerRole, RunStatus
from gates.models import GateRun
from gates.services import preflight, run_gate
from tests.support import (
    PYTHON,
    ROOT,
    child_env,
    owner_connection,
    start_celery_worker,
    stop_process_group,
)
from tests.support import test_database_url as database_url_as

pytestmark = pytest.mark.xdist_group("gates-preflight")

ALL_CHECKS = [
    "database",
    "migrations",
    "broker",
    "cache",
    "worker",
    "deploy_checks",
    "secrets",
    "demo_accounts",
    "debug",
    "storage_writable",
    "storage_space",
    "audit_partitions",
    "private_hosts",
    "compose_ports",
    "nginx",
]
PRODUCTION_SECURITY = {
    "SECURE_HSTS_SECONDS": 31_536_000,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
    "SECURE_HSTS_PRELOAD": True,
    "SECURE_SSL_REDIRECT": True,
    "SESSION_COOKIE_SECURE": True,
    "CSRF_COOKIE_SECURE": True,
}


def _answering_workers() -> list[str]:
    from config.celery import app

    with readiness.broker_connection() as connection:
        replies = preflight._ping(app, connection, timeout=0.5)
    return [name for reply in replies for name in reply]


def _start_named_worker(log_path, **env) -> tuple[subprocess.Popen, str]:
    """A worker with a node name of its own (click reads CELERY_WORKER_HOSTNAME for
    ``--hostname``), awaited until it answers a ping on the broker the settings name."""
    node = f"preflight-{uuid.uuid4().hex[:8]}"
    process = start_celery_worker(
        f"test-preflight-{uuid.uuid4().hex[:8]}",
        log_path=log_path,
        CELERY_WORKER_HOSTNAME=f"{node}@%h",
        **env,
    )
    name = f"{node}@{socket.gethostname()}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the worker exited with {process.returncode}\n{log_path.read_text()}")
        if name in _answering_workers():
            return process, name
    stop_process_group(process)
    pytest.fail(f"the worker did not answer a ping in 60 s\n{log_path.read_text()}")


@pytest.fixture(scope="module")
def worker(django_db_setup, tmp_path_factory):
    """A real worker on this test's broker (Redis here), shared by the module's runs."""
    log_path = tmp_path_factory.mktemp("preflight-worker") / "worker.log"
    process, name = _start_named_worker(log_path)
    try:
        yield name
    finally:
        stop_process_group(process)


@pytest.fixture
def healthy(db, settings, tmp_path, worker):
    """Everything the preflight asks for, on the real services of this test process."""
    for name, value in PRODUCTION_SECURITY.items():
        setattr(settings, name, value)
    settings.SECRET_KEY = secrets.token_urlsafe(64)
    settings.DEBUG = False
    settings.IMPORT_STORAGE_DIR = tmp_path / "uploads"
    settings.GATES_DEPLOY_DIR = ROOT / "deploy"
    settings.GATES_PREFLIGHT_SILENCED = {}
    settings.GATES_PREFLIGHT_PING_TIMEOUT_SECONDS = 1.0
    return settings


def failed(run: GateRun) -> dict[str, dict]:
    return {check["name"]: check for check in run.evidence["checks"] if not check["ok"]}


def check_of(run: GateRun, name: str) -> dict:
    return next(check for check in run.evidence["checks"] if check["name"] == name)


def assert_fails(run: GateRun, name: str, kind: str, *, also: set[str] = frozenset()) -> dict:
    assert run.status == RunStatus.FAIL
    assert set(failed(run)) == {name, *also}, failed(run)
    assert [check["name"] for check in run.evidence["checks"]] == ALL_CHECKS  # all ran
    assert run.evidence["endMarker"] == "gate-complete"
    check = check_of(run, name)
    assert check["kind"] == kind
    if not also:
        assert (run.failed_check, run.failure_kind) == (name, kind)
    return check


# --- the pass path -----------------------------------------------------------------------


def _production_env(tmp_path, **overrides) -> dict[str, str]:
    return {
        "DJANGO_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "attendance.example.com",
        "DEBUG": "false",
        "IMPORT_STORAGE_DIR": str(tmp_path / "uploads"),
        "GATES_DEPLOY_DIR": str(ROOT / "deploy"),
        "GATES_PREFLIGHT_PING_TIMEOUT_SECONDS": "1",
        **overrides,
    }


def _manage_preflight(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "manage.py", "gates", "preflight", "--json", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.integration
def test_a_production_configuration_passes_with_the_shipped_deploy_files(
    transactional_db, worker, tmp_path
):
    result = _manage_preflight(child_env(**_production_env(tmp_path)))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    printed = json.loads(result.stdout)
    run = GateRun.objects.get(pk=printed["id"])
    assert (run.gate, run.priority, run.status) == ("preflight", "P0", RunStatus.PASS)
    assert [check["name"] for check in run.evidence["checks"]] == ALL_CHECKS
    assert all(check["ok"] for check in run.evidence["checks"])
    assert run.evidence["endMarker"] == "gate-complete"
    assert worker in check_of(run, "worker")["evidence"]["workers"]
    # The broker of this run: Redis in CI, kombu's filesystem transport on the embedded set-up.
    transport = settings.CELERY_BROKER_URL.split(":", 1)[0]
    assert check_of(run, "worker")["evidence"]["transport"] == transport
    assert run.summary["freeBytes"] >= run.summary["uploadMaxBytes"] == 200 * 1024 * 1024
    assert run.summary["deployIssues"] == 0 and run.summary["workers"] >= 1
    # deploy/compose.yaml publishes only nginx; deploy/nginx/attendance.conf proxies imports.
    compose = check_of(run, "compose_ports")["evidence"]
    assert compose["composeFile"].endswith("deploy/compose.yaml") and compose["exposures"] == []
    nginx = check_of(run, "nginx")["evidence"]
    assert nginx["files"] == ["attendance.conf"]
    assert {server["path"] for server in nginx["servers"]} == {
        "/api/attendance/import/upload",
        "/api/attendance/import/preview",
        "/api/attendance/import/commit",
    }
    assert nginx["servers"][0]["proxy_read_timeout"]["seconds"] >= 300
    assert run.evidence["warnings"] == []


def test_the_healthy_baseline_passes_in_process(healthy):
    run = run_gate("preflight")
    assert run.status == RunStatus.PASS, failed(run)
    assert not failed(run)


# --- worker ------------------------------------------------------------------------------


def _filesystem_broker(settings, root) -> None:
    folders = {name: root / "broker" / name for name in ("out", "processed", "control")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(folders["out"]),
        "data_folder_out": str(folders["out"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
        "store_processed": False,
    }


def test_no_worker_answering_fails_the_worker_check(healthy, tmp_path):
    # A broker of its own (a filesystem one in tmp_path): no worker of any other test answers.
    _filesystem_broker(healthy, tmp_path)
    run = run_gate("preflight")
    check = assert_fails(run, "worker", FailureKind.DEPENDENCY)
    assert check["owner"] == OwnerRole.OPS
    assert check["evidence"]["workers"] == [] and check["evidence"]["verified"] is True
    assert "no Celery worker answered" in check["detail"]
    assert check_of(run, "broker")["ok"]


@pytest.mark.integration
def test_the_filesystem_broker_broadcasts_and_its_worker_answers(healthy, tmp_path):
    """``make run`` without a broker uses kombu's filesystem transport: ping reaches a worker
    on it (kombu >= 5.3 implements fanout there)."""
    _filesystem_broker(healthy, tmp_path / "data")
    process, name = _start_named_worker(
        tmp_path / "worker.log", CELERY_BROKER_URL="", ATTENDANCE_DATA_DIR=str(tmp_path / "data")
    )
    try:
        run = run_gate("preflight")
    finally:
        stop_process_group(process)
    assert run.status == RunStatus.PASS, failed(run)
    evidence = check_of(run, "worker")["evidence"]
    assert (evidence["transport"], evidence["workers"]) == ("filesystem", [name])


class NoBroadcastChannel(memory.Channel):
    supports_fanout = False


class NoBroadcastTransport(memory.Transport):
    """kombu's in-memory transport, declaring no fanout exchange."""

    Channel = NoBroadcastChannel
    implements = memory.Transport.implements.extend(exchange_type=frozenset(["direct"]))


def test_a_transport_that_cannot_broadcast_says_the_worker_was_not_verified(healthy, monkeypatch):
    """No installed kombu transport lacks fanout (filesystem, redis, memory all have it), so
    this one is kombu's in-memory transport declaring none, registered under an alias."""
    from kombu import transport

    monkeypatch.setitem(
        transport.TRANSPORT_ALIASES, "nobroadcast", f"{__name__}:NoBroadcastTransport"
    )
    healthy.CELERY_BROKER_URL = "nobroadcast://"
    run = run_gate("preflight")
    check = assert_fails(run, "worker", FailureKind.CONFIG)
    assert check["detail"].startswith("not verified: the broker transport nobroadcast")
    assert check["evidence"] == {
        "transport": "nobroadcast",
        "timeoutSeconds": 1.0,
        "verified": False,
    }


# --- migrations, partitions --------------------------------------------------------------


def test_an_unapplied_migration_fails_the_migrations_check(healthy):
    latest = max(name for app, name in MigrationLoader(None).graph.leaf_nodes() if app == "gates")
    with owner_connection() as owner:
        row = owner.execute(
            "DELETE FROM django_migrations WHERE app = 'gates' AND name = %s RETURNING applied",
            [latest],
        ).fetchone()
    assert row is not None
    try:
        run = run_gate("preflight")
    finally:
        with owner_connection() as owner:
            owner.execute(
                "INSERT INTO django_migrations (app, name, applied) VALUES ('gates', %s, %s)",
                [latest, row[0]],
            )
    check = assert_fails(run, "migrations", FailureKind.CONFIG)
    assert check["evidence"]["pending"] == [f"gates.{latest}"]
    assert "manage.py migrate" in run.remediation


def test_an_event_in_the_default_audit_partition_fails_the_partitions_check(healthy):
    from audit.models import AuditEvent

    far = timezone.now() + dt.timedelta(days=30 * 20)  # beyond the 12 months kept ahead
    AuditEvent.objects.create(action="test.future", occurred_at=far)
    check = assert_fails(run_gate("preflight"), "audit_partitions", FailureKind.CONFIG)
    assert check["evidence"]["defaultRows"] == 1
    assert "DEFAULT" in check["detail"]


# --- secrets and DEBUG -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "also"),
    [
        ("CHANGE_ME" * 6, set()),  # Django's W009 accepts it: 54 characters, 8 distinct
        ("abcdefghij" * 6, set()),  # repetitive: 60 characters, 10 distinct
        ("insecure-development-key-never-use-in-production", {"deploy_checks"}),
        (secrets.token_urlsafe(20), {"deploy_checks"}),  # 27 characters
    ],
    ids=["placeholder", "repetitive", "development-default", "short"],
)
def test_a_weak_secret_key_fails_the_secrets_check(healthy, key, also):
    healthy.SECRET_KEY = key
    run = run_gate("preflight")
    check = assert_fails(run, "secrets", FailureKind.CONFIG, also=also)
    assert check["owner"] == OwnerRole.SECURITY
    assert list(check["evidence"]["problems"]) == ["SECRET_KEY"]
    if also:  # Django's own check agrees
        assert [issue["id"] for issue in check_of(run, "deploy_checks")["evidence"]["issues"]] == [
            "security.W009"
        ]
    assert key not in json.dumps(run.evidence) + run.log  # judged, never written down


def test_a_placeholder_password_in_a_dsn_fails_the_secrets_check(healthy):
    healthy.CELERY_RESULT_BACKEND = "redis://:CHANGE_ME@127.0.0.1:6379/3"
    check = assert_fails(run_gate("preflight"), "secrets", FailureKind.CONFIG)
    assert check["evidence"]["problems"] == {
        "CELERY_RESULT_BACKEND password": [
            "holds the placeholder “change_me”",
            "length 9, below 12",
        ]
    }


def test_a_demo_account_with_the_demo_password_fails(healthy, organisation, make_person):
    make_person(organisation, "employee", "admin", username="admin")
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username="admin")
    user.set_password("attendance-demo")
    user.save(update_fields=["password"])
    check = assert_fails(run_gate("preflight"), "demo_accounts", FailureKind.CONFIG)
    assert check["evidence"] == {"demoAccounts": ["admin"]}


def test_debug_on_fails_the_debug_check(healthy):
    healthy.DEBUG = True
    run = run_gate("preflight")
    check = assert_fails(run, "debug", FailureKind.CONFIG, also={"deploy_checks"})
    assert check["evidence"]["debug"] is True
    assert [issue["id"] for issue in check_of(run, "deploy_checks")["evidence"]["issues"]] == [
        "security.W018"
    ]


# --- check --deploy ----------------------------------------------------------------------


def test_a_deploy_warning_fails_unless_accepted_with_a_reason(healthy):
    healthy.SECURE_HSTS_SECONDS = 0
    check = assert_fails(run_gate("preflight"), "deploy_checks", FailureKind.CONFIG)
    assert [issue["id"] for issue in check["evidence"]["issues"]] == ["security.W004"]

    healthy.GATES_PREFLIGHT_SILENCED = {"security.W004": "HSTS is set by the load balancer"}
    run = run_gate("preflight")
    assert run.status == RunStatus.PASS, failed(run)
    evidence = check_of(run, "deploy_checks")["evidence"]
    assert [(item["id"], item["reason"]) for item in evidence["accepted"]] == [
        ("security.W004", "HSTS is set by the load balancer")
    ]
    assert evidence["silenced"] == [
        {
            "id": "security.W004",
            "reason": "HSTS is set by the load balancer",
            "by": "GATES_PREFLIGHT_SILENCED",
        }
    ]
    assert "HSTS is set by the load balancer" in check_of(run, "deploy_checks")["detail"]


def test_a_check_silenced_without_a_reason_passes_with_a_warning(healthy):
    healthy.SECURE_HSTS_SECONDS = 0
    healthy.SILENCED_SYSTEM_CHECKS = ["security.W004"]
    run = run_gate("preflight")
    assert run.status == RunStatus.PASS, failed(run)
    evidence = check_of(run, "deploy_checks")["evidence"]
    assert evidence["silenced"] == [
        {"id": "security.W004", "reason": "", "by": "SILENCED_SYSTEM_CHECKS"}
    ]
    assert run.summary["warnings"] == 1
    assert "security.W004 is silenced by SILENCED_SYSTEM_CHECKS" in run.evidence["warnings"][0]


@pytest.mark.integration
def test_a_single_role_database_fails_the_deploy_checks_with_common_w002(
    transactional_db, worker, tmp_path
):
    """The application connected as the role that owns the schema (no DATABASE_MIGRATE_URL):
    the project's least-privilege check runs inside the preflight's check --deploy."""
    from django.conf import settings

    owner_url = database_url_as(getattr(settings, "DATABASE_OWNER", None))
    result = _manage_preflight(child_env(**_production_env(tmp_path), DATABASE_URL=owner_url))
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-4000:]
    run = GateRun.objects.get(pk=json.loads(result.stdout)["id"])
    assert set(failed(run)) == {"deploy_checks"}
    check = check_of(run, "deploy_checks")
    assert check["kind"] == FailureKind.CONFIG
    assert {issue["id"] for issue in check["evidence"]["issues"]} == {"common.W002"}
    assert check["evidence"]["databaseChecks"] is True


# --- storage -----------------------------------------------------------------------------


def test_storage_under_a_regular_file_is_not_writable(healthy, tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    healthy.IMPORT_STORAGE_DIR = tmp_path / "a-file" / "uploads"
    check = assert_fails(run_gate("preflight"), "storage_writable", FailureKind.CONFIG)
    assert "NotADirectoryError" in check["detail"] or "FileExistsError" in check["detail"]


def test_storage_without_room_for_the_largest_upload_fails(healthy, tmp_path):
    total = shutil.disk_usage(tmp_path).total
    healthy.IMPORT_UPLOAD_MAX_BYTES = total + 1
    # nginx's 210m cannot take such an upload either: the two checks say so together.
    run = run_gate("preflight")
    check = assert_fails(run, "storage_space", FailureKind.DEPENDENCY, also={"nginx"})
    assert check["evidence"]["uploadMaxBytes"] == total + 1
    assert run.summary["freeBytes"] < run.summary["uploadMaxBytes"]
    assert (run.failed_check, run.failure_kind) == ("storage_space", FailureKind.DEPENDENCY)


# --- network exposure --------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_a_public_database_host_fails_the_private_hosts_check(healthy):
    # What DATABASE_URL=postgres://…@203.0.113.7/… configures; the connections already open
    # keep serving the test, so only this check sees the public address.
    healthy.DATABASES = {
        **healthy.DATABASES,
        "default": {**healthy.DATABASES["default"], "HOST": "203.0.113.7"},
    }
    check = assert_fails(run_gate("preflight"), "private_hosts", FailureKind.CONFIG)
    assert check["owner"] == OwnerRole.SECURITY
    assert {
        "setting": "DATABASES[default]",
        "host": "203.0.113.7",
        "private": False,
        "reason": "203.0.113.7 is not a private address",
    } in check["evidence"]["endpoints"]


def test_a_compose_file_publishing_postgres_fails(healthy, tmp_path):
    compose = tmp_path / "compose.yaml"
    compose.write_text(
        "services:\n"
        "  db:\n    image: postgres:17\n    ports: ['5432:5432']\n"
        "  redis:\n    image: redis:7\n    ports: ['127.0.0.1:6379:6379']\n"
        "  nginx:\n    image: nginx:1.27\n    ports: ['80:80']\n"
    )
    check = assert_fails(
        run_gate("preflight", options={"compose": str(compose)}),
        "compose_ports",
        FailureKind.CONFIG,
    )
    assert check["evidence"]["exposures"] == [
        {
            "service": "db",
            "image": "postgres:17",
            "port": "5432:5432",
            "why": "published on every host interface (no host address given)",
        }
    ]


# --- nginx -------------------------------------------------------------------------------


def test_nginx_with_a_small_body_limit_and_a_short_timeout_fails(healthy, tmp_path):
    (tmp_path / "nginx").mkdir()
    (tmp_path / "nginx" / "site.conf").write_text(
        "server {\n  listen 80;\n  client_max_body_size 1m;\n  client_body_timeout 300s;\n"
        "  location / {\n    proxy_pass http://web:8000;\n    proxy_read_timeout 60s;\n"
        "    proxy_send_timeout 5m;\n  }\n}\n"
    )
    healthy.GATES_DEPLOY_DIR = tmp_path  # no compose file there: nothing to inspect
    run = run_gate("preflight")
    check = assert_fails(run, "nginx", FailureKind.CONFIG)
    assert "client_max_body_size 1m (server) is below" in check["detail"]
    assert "proxy_read_timeout 60s (location) is below 300 s" in check["detail"]
    assert "proxy_send_timeout" not in check["detail"]  # 5m is enough
    server = check["evidence"]["servers"][0]
    assert server["client_max_body_size"]["bytes"] == 1024 * 1024
    assert server["proxy_read_timeout"]["seconds"] == 60
    assert check_of(run, "compose_ports")["evidence"] == {"composeFile": None}


def test_no_nginx_configuration_is_not_a_pass(healthy, tmp_path):
    healthy.GATES_DEPLOY_DIR = tmp_path
    check = assert_fails(run_gate("preflight"), "nginx", FailureKind.CONFIG)
    assert "could not be verified" in check["detail"]


# --- the judgements, one by one ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "size"),
    [("210m", 210 * 1024**2), ("512k", 512 * 1024), ("1G", 1024**3), ("4096", 4096), ("0", 0)],
)
def test_nginx_sizes(value, size):
    assert preflight.parse_nginx_size(value) == size


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("300", 300), ("300s", 300), ("5m", 300), ("1h", 3600), ("1h 30m", 5400), ("500ms", 0.5)],
)
def test_nginx_times(value, seconds):
    assert preflight.parse_nginx_time(value) == seconds


@pytest.mark.parametrize("value", ["", "5 x", "m5", "1.5m"])
def test_nginx_times_refused(value):
    with pytest.raises(ValueError):
        preflight.parse_nginx_time(value)


def test_nginx_location_choice_follows_nginx():
    server = preflight.parse_nginx(
        "server {\n"
        "  location / { proxy_pass http://web; }\n"
        "  location /api/ { proxy_pass http://web; }\n"
        "  location ~ \\.csv$ { proxy_pass http://web; }\n"
        "  location ^~ /static/ { root /srv; }\n"
        "  location = /api/exact { return 204; }\n"
        "  location ~* \\.png$ { root /srv; }\n"
        "}\n"
    ).children("server")[0]

    def chosen(path):
        return " ".join(preflight.match_location(server, path).args)

    assert chosen("/api/attendance/import/upload") == "/api/"
    assert chosen("/api/batches/1/export.csv") == "~ \\.csv$"  # a regex beats a prefix
    assert chosen("/static/logo.PNG") == "^~ /static/"  # ^~ stops the regexes
    assert chosen("/api/exact") == "= /api/exact"
    assert chosen("/other.PNG") == "~* \\.png$"
    assert chosen("/") == "/"


def test_nginx_values_inherit_from_http_and_server_and_default():
    judged, problems, includes = preflight.nginx_problems(
        "http {\n  client_max_body_size 300m;\n  include mime.types;\n"
        "  server { proxy_read_timeout 10m;\n"
        "    location /api/ { proxy_pass http://web; proxy_send_timeout 400; }\n"
        "    location / { return 404; }\n  }\n}\n",
        paths=["/api/upload", "/elsewhere"],
        min_body=200 * 1024**2,
        min_timeout=300,
    )
    assert [entry["path"] for entry in judged] == ["/api/upload"]  # "/" does not proxy
    entry = judged[0]
    assert entry["client_max_body_size"]["from"] == "http"
    assert entry["proxy_read_timeout"] == {"value": "10m", "seconds": 600, "from": "server"}
    assert entry["proxy_send_timeout"]["seconds"] == 400
    assert problems == ["client_body_timeout 60s (default) is below 300 s"]
    assert includes == ["mime.types"]


@pytest.mark.parametrize(
    ("entry", "exposed"),
    [
        ("5432:5432", True),
        ("5432", True),  # an ephemeral host port on every interface
        ("0.0.0.0:5432:5432", True),
        ("10.0.0.5:5432:5432", True),  # not loopback
        ("127.0.0.1:5432:5432", False),
        ("[::1]:5432:5432", False),
        ("127.0.0.1::5432", False),
        ("15432:5432/tcp", True),
        ({"target": 5432, "published": 15432}, True),
        ({"target": 5432, "published": 15432, "host_ip": "127.0.0.1"}, False),
        ("${PGPORT:-5432}:5432", True),
        ("8080:80", False),
    ],
)
def test_compose_ports(entry, exposed):
    document = {"services": {"db": {"image": "example/app", "ports": [entry]}}}
    assert bool(preflight.compose_exposures(document, {})) is exposed


def test_compose_database_images_and_host_networking():
    document = {
        "services": {
            "pg": {"image": "registry.local:5000/postgres:17-alpine", "ports": ["15000:15000"]},
            "cache": {"image": "redis:7", "network_mode": "host"},
            "web": {"image": "attendance:latest", "ports": ["8000:8000"]},
        }
    }
    assert [item["service"] for item in preflight.compose_exposures(document, {})] == [
        "pg",
        "cache",
    ]


@pytest.mark.parametrize(
    ("host", "private"),
    [
        ("", True),  # libpq's default: the Unix socket
        ("/run/postgresql", True),
        ("127.0.0.1", True),
        ("::1", True),
        ("10.1.2.3", True),
        ("172.20.0.4", True),
        ("192.168.1.10", True),
        ("localhost", True),
        ("db", True),  # a compose service name, unresolvable here
        ("0.0.0.0", False),  # noqa: S104 - judged, not bound
        ("8.8.8.8", False),
        ("203.0.113.7", False),
        ("db.example.invalid", False),  # dotted, unresolvable: not judged, so not fine
    ],
)
def test_hosts_are_judged(host, private):
    assert preflight.judge_host(host)[0] is private


@pytest.mark.parametrize(
    "generate",
    [lambda: secrets.token_urlsafe(64), lambda: secrets.token_hex(32), get_random_secret_key],
    ids=["token_urlsafe", "token_hex", "django"],
)
def test_generated_secret_keys_are_fit(generate):
    assert preflight.secret_key_problems(generate()) == []


@pytest.mark.parametrize(
    ("value", "fit"),
    [("CHANGE_ME", False), ("postgres", False), ("short-pw", False), ("k3Vq8-tLw0xZp2", True)],
)
def test_passwords_are_judged(value, fit):
    assert (preflight.password_problems(value) == []) is fit
