from django.core.management.base import BaseCommand, CommandError

from common.exceptions import ApplicationError
from imports import services
from imports.models import ImportBatch


class Command(BaseCommand):
    help = "Roll back an import batch exactly (refused when later writes touched its days)."

    def add_arguments(self, parser):
        parser.add_argument("batch", type=int)

    def handle(self, *args, batch: int, **options):
        record = ImportBatch.objects.select_related("organisation").filter(pk=batch).first()
        if record is None:
            raise CommandError(f"No batch {batch}.")
        try:
            result = services.import_rollback(
                actor=None,
                organisation=record.organisation,
                batch_id=batch,
                allow_async=False,
                wait=True,  # behind a running import: its turn comes
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message} {exc.details or ''}".strip()) from exc
        self.stdout.write(
            f"batch {result['batchId']} rolled back: {result['restored']} restored, "
            f"{result['deleted']} deleted"
        )
