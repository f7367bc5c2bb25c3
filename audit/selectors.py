from django.db import connection


def audit_partitions() -> list[dict]:
    """The audit table's partitions with their bounds, oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
            FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid
            JOIN pg_class p ON p.oid = i.inhparent
            WHERE p.relname = 'audit_auditevent'
            ORDER BY c.relname
            """
        )
        return [{"name": name, "bound": bound} for name, bound in cursor.fetchall()]
