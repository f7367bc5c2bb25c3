"""Two database roles: the owner, who migrates, and the application, which owns nothing.

The application's role (``DATABASE_URL``) may read and write the ordinary tables, but on
the audit tables it may only SELECT and INSERT: it cannot UPDATE, DELETE, TRUNCATE, ALTER
or DROP them, whatever a bug or an attacker with its connection tries. The owner's role
(``DATABASE_MIGRATE_URL``) runs the migrations and then grants the application exactly
that, here, after every ``migrate``. What the application must do to the audit tables at
run time (create next month's partition, drop an expired one, repair DEFAULT) goes through
SECURITY DEFINER functions that the owner created and that check their arguments.

The application does own one thing: the schema ``attendance_scratch`` is where it creates
its upload stage tables (and the database cache table when there is no Redis). It is first
on the application's ``search_path`` and absent from the owner's, so nothing the
application creates there can shadow a table or function the owner's migrations use.
"""

from __future__ import annotations

import contextlib

from django.conf import settings
from django.db import connections

SCRATCH_SCHEMA = "attendance_scratch"
# Tables whose rows are evidence: the application may add and read, never change.
APPEND_ONLY_PREFIX = "audit_"
APPEND_ONLY_TABLES = ("audit_auditevent", "audit_auditdigest")
_IDENTITY_KEYS = ("USER", "PASSWORD", "HOST", "PORT")


def split_configured() -> bool:
    return bool(getattr(settings, "DATABASE_OWNER", None))


def app_role() -> str:
    """The application's role, as configured (the connection may be the owner's just now)."""
    return settings.DATABASE_APP_ROLE


@contextlib.contextmanager
def as_owner(alias: str = "default"):
    """Run the block on ``alias`` connected as the owner, with PostgreSQL's own search_path
    (the scratch schema is the application's: a migration must never create a table there).
    Without a split only the search_path changes. The connection is closed before and
    after, so no transaction crosses the switch; re-entrant."""
    connection = connections[alias]
    owner = settings.DATABASE_OWNER or {}
    wanted = {key: owner[key] for key in _IDENTITY_KEYS if key in owner}
    wanted_options = {
        **connection.settings_dict.get("OPTIONS", {}),
        "options": settings.DATABASE_OWNER_OPTIONS,
    }
    current = {key: connection.settings_dict.get(key) for key in wanted}
    if current == wanted and connection.settings_dict.get("OPTIONS") == wanted_options:
        yield
        return
    saved = {key: connection.settings_dict.get(key) for key in _IDENTITY_KEYS}
    saved_options = connection.settings_dict.get("OPTIONS", {})
    connection.close()
    connection.settings_dict.update(wanted)
    connection.settings_dict["OPTIONS"] = wanted_options
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(saved)
        connection.settings_dict["OPTIONS"] = saved_options


def ensure_app_role(cursor, role: str) -> None:
    """Create the application's login role if it is missing (embedded server, CI, tests;
    in production the DBA creates it, with a password). Run, in autocommit, as a role that
    may create roles; two processes racing to create it both succeed."""
    from django.db import IntegrityError, ProgrammingError

    cursor.execute(
        "SELECT quote_ident(%s), EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s)", [role, role]
    )
    quoted_role, exists = cursor.fetchone()
    if exists:
        return
    try:
        cursor.execute(
            f"CREATE ROLE {quoted_role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
        )
    # Created meanwhile by another process: "already exists" once its CREATE committed, a
    # unique violation on pg_authid while both inserts were in flight.
    except (ProgrammingError, IntegrityError):
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        if cursor.fetchone() is None:
            raise


def grant_app_privileges(cursor, role: str, *, for_tests: bool = False) -> None:
    """What the application's role may do, granted by the owner after each migration.

    ``for_tests`` adds TRUNCATE on the ordinary tables: Django's test runner empties them
    that way between transactional tests. The audit tables never get it (their models are
    unmanaged, so the runner leaves them alone).
    """
    cursor.execute("SELECT quote_ident(%s), quote_ident(current_database())", [role])
    quoted_role, database = cursor.fetchone()
    table_rights = "SELECT, INSERT, UPDATE, DELETE" + (", TRUNCATE" if for_tests else "")
    statements = [
        f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {quoted_role}",
        f"GRANT USAGE ON SCHEMA public TO {quoted_role}",
        f"GRANT USAGE, CREATE ON SCHEMA {SCRATCH_SCHEMA} TO {quoted_role}",
        f"GRANT {table_rights} ON ALL TABLES IN SCHEMA public TO {quoted_role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted_role}",
    ]
    for statement in statements:
        cursor.execute(statement)
    # Upload stage tables made before the split belong to the owner: hand them to the
    # application, so that it can still read and drop them.
    cursor.execute(
        "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = %s AND tableowner <> %s",
        [SCRATCH_SCHEMA, role],
    )
    for (table,) in cursor.fetchall():
        cursor.execute(f"ALTER TABLE {SCRATCH_SCHEMA}.{table} OWNER TO {quoted_role}")
    # Evidence: nothing on the partitions themselves, SELECT and INSERT on the parents
    # (PostgreSQL checks rights on the table a statement names, not on its partitions).
    cursor.execute(
        "SELECT quote_ident(tablename) FROM pg_tables"
        " WHERE schemaname = 'public' AND tablename LIKE %s",
        [APPEND_ONLY_PREFIX + "%"],
    )
    for (table,) in cursor.fetchall():
        cursor.execute(f"REVOKE ALL ON public.{table} FROM {quoted_role}")
    for table in APPEND_ONLY_TABLES:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [f"public.{table}"])
        if cursor.fetchone()[0]:
            cursor.execute(f"GRANT SELECT, INSERT ON public.{table} TO {quoted_role}")


def app_role_problems(cursor) -> list[str]:
    """Why the connected role is not a least-privilege application role (empty: it is)."""
    problems = []
    cursor.execute(
        "SELECT rolsuper, current_user FROM pg_roles WHERE rolname = current_user",
    )
    superuser, user = cursor.fetchone()
    if superuser:
        problems.append(f"the application connects as the superuser {user!r}")
    cursor.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = current_user"
    )
    owned = cursor.fetchone()[0]
    if owned:
        problems.append(f"the application's role {user!r} owns {owned} relation(s) in public")
    for table in APPEND_ONLY_TABLES:
        cursor.execute("SELECT to_regclass(%s)", [f"public.{table}"])
        if cursor.fetchone()[0] is None:
            continue
        cursor.execute(
            "SELECT privilege FROM unnest(ARRAY['UPDATE', 'DELETE', 'TRUNCATE']) AS privilege"
            " WHERE has_table_privilege(%s, privilege)",
            [f"public.{table}"],
        )
        rights = [row[0] for row in cursor.fetchall()]
        if rights:
            problems.append(f"the application may {', '.join(rights)} {table}")
    return problems
