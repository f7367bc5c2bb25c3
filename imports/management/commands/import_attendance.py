import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from attendance.models import Organisation
from common.exceptions import ApplicationError
from imports import services
from imports.management.commands._progress import ProgressBar
from imports.models import ImportJob, ImportMode


def _organisation(slug: str | None) -> Organisation:
    if slug:
        organisation = Organisation.objects.filter(slug=slug).first()
        if organisation is None:
            raise CommandError(f"No organisation with slug {slug!r}.")
        return organisation
    organisations = list(Organisation.objects.all()[:2])
    if len(organisations) != 1:
        raise CommandError("Name the organisation with --org SLUG.")
    return organisations[0]


def _chunks(path: Path):
    with open(path, "rb") as handle:
        yield from iter(lambda: handle.read(1024 * 1024), b"")


def _options(file_id, opts: dict) -> services.ImportOptions:
    return services.ImportOptions(
        file_id=file_id,
        format=opts["format"],
        mode=opts["mode"],
        time_zone=opts["timezone"],
        create_missing_employees=opts["create_missing_employees"],
        preview_limit=0,
    )


class Command(BaseCommand):
    help = (
        "Import an attendance file (CSV, XLSX or ZKTeco .dat): upload, preview and commit "
        "through the same pipeline as the API. Prints the batch id on the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", help="standard, dingtalk_daily, dingtalk_raw, …")
        parser.add_argument("--org", help="organisation slug (needed with several)")
        parser.add_argument("--mode", choices=ImportMode.values, default=ImportMode.OVERRIDE)
        parser.add_argument("--timezone", help="time zone of the file (default: the org's)")
        parser.add_argument("--create-missing-employees", action="store_true")
        parser.add_argument("--dry-run", action="store_true", help="preview only")
        parser.add_argument(
            "--async", dest="run_async", action="store_true", help="run on a Celery worker"
        )

    def handle(self, *args, **opts):
        path: Path = opts["file"]
        if not path.is_file():
            raise CommandError(f"No file {path}.")
        organisation = _organisation(opts["org"])
        try:
            if opts["dry_run"]:
                self._dry_run(path, organisation, opts)
                return
            upload = self._upload(path, organisation)
            options = _options(upload.pk, opts)
            bar = ProgressBar(self.stderr)
            if opts["run_async"]:
                queued = services.import_commit_async(
                    actor=None,
                    organisation=organisation,
                    options=options,
                    commit_token=None,
                    trusted_operator=True,
                )
                result = self._wait(queued.job, bar)
            else:
                result = services.import_commit(
                    actor=None,
                    organisation=organisation,
                    options=options,
                    commit_token=None,
                    trusted_operator=True,
                    progress=bar,
                )
                bar.finish()
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self._print_stats(result["stats"])
        self.stdout.write(str(result["batchId"]))

    def _upload(self, path: Path, organisation: Organisation):
        upload = services.upload_create(
            actor=None,
            organisation=organisation,
            filename=path.name,
            chunks=_chunks(path),
            max_parse_seconds=None,  # shell access: a big workbook takes the time it takes
        )
        self.stderr.write(
            f"{path.name}: {upload.row_count} rows, format {upload.format or '?'}, "
            f"encoding {upload.encoding or '-'}"
        )
        return upload

    def _dry_run(self, path: Path, organisation: Organisation, opts: dict) -> None:
        """Preview only, leaving nothing behind. The preview reads an upload, so the upload
        (its row and its audit event) lives in a transaction that is rolled back, and its
        stored file is deleted."""
        with transaction.atomic():
            upload = self._upload(path, organisation)
            try:
                preview = services.import_preview(
                    actor=None, organisation=organisation, options=_options(upload.pk, opts)
                )
            finally:
                (Path(settings.IMPORT_STORAGE_DIR) / upload.storage_name).unlink(missing_ok=True)
                transaction.set_rollback(True)
        self._print_stats(preview["stats"])
        for error in preview["errors"][:20]:
            self.stdout.write(
                f"row {error['row']} {error['column']} {error['code']}: {error['message']}"
            )

    def _wait(self, job: ImportJob, bar: ProgressBar) -> dict:
        while True:
            job.refresh_from_db()
            bar(job.processed, job.total)
            if job.status == ImportJob.Status.SUCCEEDED:
                bar.finish()
                return job.result
            if job.status in (ImportJob.Status.FAILED, ImportJob.Status.CANCELLED):
                error = job.error or {}
                raise CommandError(f"{error.get('code', 'FAILED')}: {error.get('message', '')}")
            time.sleep(0.5)

    def _print_stats(self, stats: dict) -> None:
        self.stdout.write(" ".join(f"{key}={value}" for key, value in stats.items()))
