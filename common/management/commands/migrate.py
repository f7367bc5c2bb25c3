"""``migrate`` as the owner: the migrations run with DATABASE_MIGRATE_URL's role (and
PostgreSQL's own search_path), then the application's role (DATABASE_URL) is granted what it
needs and nothing more (common/db_roles.py). Without a split, Django's own ``migrate`` on
the application's connection, minus the scratch schema on its search_path."""

from django.conf import settings
from django.core.management import call_command
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import connections

from common import db_roles


class Command(DjangoMigrate):
    help = DjangoMigrate.help + " As the owner role, then grants the application's role."

    def handle(self, *args, **options):
        alias = options["database"]
        if alias != "default":
            return super().handle(*args, **options)
        with db_roles.as_owner(alias):
            super().handle(*args, **options)
            if not db_roles.split_configured():
                return None
            if _uses_database_cache():
                call_command("createcachetable", database=alias, verbosity=0)
            with connections[alias].cursor() as cursor:
                db_roles.grant_app_privileges(
                    cursor, db_roles.app_role(), for_tests=settings.TESTING
                )
        if options["verbosity"] >= 1:
            self.stdout.write(f"Granted the application's role {db_roles.app_role()!r} its rights.")


def _uses_database_cache() -> bool:
    return any(cache["BACKEND"].endswith("DatabaseCache") for cache in settings.CACHES.values())
