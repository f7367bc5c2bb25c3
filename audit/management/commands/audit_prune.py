from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from audit.management.commands._times import parse_day
from audit.services import audit_prune


class Command(BaseCommand):
    help = _(
        "Drop the monthly audit partitions older than the retention (their digests are kept),"
        " recording each drop; --dry-run shows what would go."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument(
            "--today", type=parse_day, default=None, help=_("Count the retention from this day.")
        )

    def handle(self, *args, dry_run, today, **options):
        result = audit_prune(dry_run=dry_run, today=today)
        self.stdout.write(
            _("Retention %(days)s day(s): partitions ending by %(floor)s go.")
            % {"days": result.retention_days, "floor": result.floor.isoformat()}
        )
        if not result.partitions:
            self.stdout.write(_("Nothing to drop."))
        for partition in result.partitions:
            if dry_run:
                state = _("would drop")
            elif partition.dropped:
                state = _("dropped")
            else:
                state = _("refused: %(reason)s") % {"reason": partition.refused}
            self.stdout.write(
                f"{partition.name}\t{partition.start:%Y-%m-%d}…{partition.end:%Y-%m-%d}\t"
                + _("%(events)s event(s), %(digests)s digest(s) kept")
                % {"events": partition.events, "digests": partition.digests}
                + f"\t{state}"
            )
        refused = [p.name for p in result.partitions if not dry_run and not p.dropped]
        if refused:
            raise CommandError(_("Not dropped: %(names)s") % {"names": ", ".join(refused)})
