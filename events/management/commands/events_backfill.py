"""``manage.py events_backfill [--check]``: registered participants without an attendance
(rows from before migration 0002) get ``unknown``. ``--check`` only counts them and exits 1
when any are left (for deploy scripts and gates)."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from events.services import attendance_backfill, attendance_backfill_pending


class Command(BaseCommand):
    help = _("Backfill 'unknown' attendance for registered participants that have none.")

    def add_arguments(self, parser):
        parser.add_argument(
            "--check",
            action="store_true",
            help=_("Only count what is left; exit 1 when any participant needs the backfill."),
        )
        parser.add_argument("--batch-size", type=int, default=10_000)

    def handle(self, *args, **options):
        if options["check"]:
            pending = attendance_backfill_pending()
            self.stdout.write(
                _("%(n)s registered participant(s) without an attendance.") % {"n": pending}
            )
            if pending:
                sys.exit(1)
            return
        changed = attendance_backfill(batch_size=options["batch_size"])
        self.stdout.write(_("Set 'unknown' on %(n)s participant(s).") % {"n": changed})
