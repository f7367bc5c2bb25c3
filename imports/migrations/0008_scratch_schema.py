"""The schema where the application creates its upload stage tables (common/db_roles.py):
first on the application's search_path, absent from the owner's, so nothing created there
can shadow what migrations use. Stage tables made before it move in."""

from django.db import migrations

CREATE_SQL = """
CREATE SCHEMA IF NOT EXISTS attendance_scratch;
DO $$
DECLARE
    stage record;
BEGIN
    FOR stage IN
        SELECT tablename FROM pg_tables
        WHERE schemaname = 'public' AND tablename LIKE 'import\\_upload\\_%'
    LOOP
        EXECUTE format('ALTER TABLE public.%I SET SCHEMA attendance_scratch', stage.tablename);
    END LOOP;
END
$$;
"""

DROP_SQL = """
DO $$
DECLARE
    stage record;
BEGIN
    FOR stage IN
        SELECT tablename FROM pg_tables WHERE schemaname = 'attendance_scratch'
    LOOP
        EXECUTE format('ALTER TABLE attendance_scratch.%I SET SCHEMA public', stage.tablename);
    END LOOP;
END
$$;
DROP SCHEMA IF EXISTS attendance_scratch;
"""


class Migration(migrations.Migration):
    dependencies = [("imports", "0007_job_heartbeat_and_item_prior_batch")]

    operations = [migrations.RunSQL(CREATE_SQL, reverse_sql=DROP_SQL)]
