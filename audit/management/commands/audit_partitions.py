from django.core.management.base import BaseCommand, CommandError

from audit.selectors import audit_partitions
from audit.services import audit_ensure_partitions
from audit.services.partitions import PartitionMaintenanceError


class Command(BaseCommand):
    help = (
        "Create missing monthly audit partitions ahead of time (and the partition of any month"
        " whose events sit in DEFAULT, moving them there), then list them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--months-ahead", type=int, default=None)

    def handle(self, *args, months_ahead, **options):
        try:
            created = audit_ensure_partitions(months_ahead=months_ahead)
        except PartitionMaintenanceError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Created: {', '.join(created) or 'none'}")
        for partition in audit_partitions():
            self.stdout.write(f"{partition['name']}\t{partition['bound']}")
