"""Deploy checks for the database roles (common/db_roles.py)."""

from django.core import checks
from django.db import DatabaseError, connections

from common import db_roles


@checks.register(checks.Tags.database, deploy=True)
def check_app_role_privileges(app_configs, databases=None, **kwargs):
    """With ``--database default``: what the connected role may do that it should not."""
    if not databases or "default" not in databases:
        return []
    try:
        with connections["default"].cursor() as cursor:
            problems = db_roles.app_role_problems(cursor)
    except DatabaseError as error:
        return [checks.Error(f"The database could not be checked: {error}", id="common.E002")]
    return [
        checks.Warning(
            f"Least privilege: {problem}.",
            hint="Run `manage.py migrate` with DATABASE_MIGRATE_URL set (it grants the "
            "application's role only what it needs).",
            id="common.W002",
        )
        for problem in problems
    ]
