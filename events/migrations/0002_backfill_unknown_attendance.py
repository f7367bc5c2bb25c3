"""Registered participants written without an attendance (NULL) get ``unknown``: the state
auto-absence and the counts expect. In batches, so a large table is not locked at once;
``manage.py events_backfill --check`` counts what is left."""

from django.db import migrations

BATCH = 10_000


def backfill(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        while True:
            cursor.execute(
                """
                UPDATE events_eventparticipant SET attendance = 'unknown'
                WHERE id IN (
                    SELECT id FROM events_eventparticipant
                    WHERE attendance IS NULL AND registration = 'registered'
                    LIMIT %s
                )
                """,
                [BATCH],
            )
            if cursor.rowcount < BATCH:
                break


class Migration(migrations.Migration):
    dependencies = [("events", "0001_initial")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
