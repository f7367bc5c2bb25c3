"""Indexes behind the audit viewer (``audit/selectors.py``): every list is one organisation's
events newest first, paged by the keyset ``(occurred_at, id)``, so each index leads with the
organisation and ends with ``occurred_at, id``; a filtered page is then an index range read
in order, stopped after one page, whatever the table holds. Created on the partitioned
parent, PostgreSQL creates each on every partition (and on every partition created later).

- ``org_keyset`` replaces ``org_time`` (its prefix): the unfiltered list and the keyset tie.
- ``org_action``: ``action`` exact and ``actionPrefix`` (``varchar_pattern_ops`` serves both
  ``=`` and ``LIKE 'prefix%'``).
- ``org_actor``: a numeric ``actor`` (the user id).
- ``org_target``: ``targetType`` (+ ``targetId``).
- ``org_failed``: ``status=failed``, a partial index (failures are few), whose predicate is
  the selector's definition of a failed event, word for word (``FAILED_PREDICATE``).
- ``search``: a trigram GIN index over the text ``q`` searches (action, actor label, target
  and the data as text), when the ``pg_trgm`` extension can be had; without it ``q`` still
  works, by reading the organisation's events in order.
"""

from django.db import migrations, transaction

# Kept in step with audit.selectors.FAILED_SQL and SEARCH_TEXT_SQL (a test compares them):
# the planner uses a partial or expression index only for the same expression.
FAILED_PREDICATE = (
    "(data ? 'errorCode' OR (data ? 'error' AND data->'error' <> 'null'::jsonb)"
    " OR data->'ok' = 'false'::jsonb OR action LIKE '%.failed' OR action LIKE '%.denied')"
)
SEARCH_TEXT = (
    "((action || ' ' || actor_label || ' ' || target_type || ' ' || target_id || ' ')"
    " || (data)::text)"
)

CREATE_SQL = f"""
CREATE INDEX audit_auditevent_org_keyset ON audit_auditevent (organisation_id, occurred_at, id);
DROP INDEX IF EXISTS audit_auditevent_org_time;
CREATE INDEX audit_auditevent_org_action
    ON audit_auditevent (organisation_id, action varchar_pattern_ops, occurred_at, id);
CREATE INDEX audit_auditevent_org_actor
    ON audit_auditevent (organisation_id, actor_id, occurred_at, id);
CREATE INDEX audit_auditevent_org_target
    ON audit_auditevent (organisation_id, target_type, target_id, occurred_at, id);
CREATE INDEX audit_auditevent_org_failed
    ON audit_auditevent (organisation_id, occurred_at, id) WHERE {FAILED_PREDICATE};
"""

DROP_SQL = """
DROP INDEX IF EXISTS audit_auditevent_search;
DROP INDEX IF EXISTS audit_auditevent_org_failed;
DROP INDEX IF EXISTS audit_auditevent_org_target;
DROP INDEX IF EXISTS audit_auditevent_org_actor;
DROP INDEX IF EXISTS audit_auditevent_org_action;
CREATE INDEX IF NOT EXISTS audit_auditevent_org_time ON audit_auditevent (organisation_id, occurred_at);
DROP INDEX IF EXISTS audit_auditevent_org_keyset;
"""


def create_search_index(apps, schema_editor):
    """The trigram index, if ``pg_trgm`` is installed or may be installed by this role (it is
    a trusted extension: a database owner may create it); otherwise nothing, and ``q`` reads
    in order instead. A savepoint keeps a refused CREATE EXTENSION from failing the rest."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
        if cursor.fetchone() is None:
            return
        try:
            with transaction.atomic(using=schema_editor.connection.alias):
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except Exception:  # noqa: BLE001 - no right to create it: the index is optional
            return
        cursor.execute(
            f"CREATE INDEX audit_auditevent_search ON audit_auditevent"
            f" USING gin (({SEARCH_TEXT}) gin_trgm_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_audit_tamper_evidence")]

    operations = [
        migrations.RunSQL(CREATE_SQL, reverse_sql=DROP_SQL),
        migrations.RunPython(create_search_index, migrations.RunPython.noop),
    ]
