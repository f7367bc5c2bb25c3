"""Uploads, commit tokens, idempotency keys, batches with their per-row items, and jobs.

Everything a commit needs between requests lives in the database (tokens, keys, jobs), so a
restarted web process or a second node changes nothing.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ImportMode(models.TextChoices):
    OVERRIDE = "override", _("Override: the file's values replace the day")
    MERGE = "merge", _("Merge: earliest in, latest out")


class ImportUpload(models.Model):
    """A file waiting to be previewed and committed; deleted with its bytes after its TTL."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organisation = models.ForeignKey(
        "attendance.Organisation",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("organisation"),
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("uploaded by"),
    )
    filename = models.CharField(_("file name"), max_length=255)
    bytes = models.BigIntegerField(_("size (bytes)"))
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    container = models.CharField(_("container"), max_length=8)
    format = models.CharField(_("format"), max_length=32, blank=True)
    encoding = models.CharField(_("encoding"), max_length=32, blank=True)
    row_count = models.PositiveIntegerField(_("rows"), default=0)
    storage_name = models.CharField(
        _("storage name"), max_length=255, help_text=_("Path under IMPORT_STORAGE_DIR.")
    )
    # The parsed rows, kept from the upload's one read of the file (UNLOGGED: a crash empties
    # it, and the file is read again). Valid for the detected format, no mapping, this time
    # zone, and the date that decided which work dates were in the future.
    stage_table = models.CharField(_("staging table"), max_length=63, blank=True)
    staged_time_zone = models.CharField(_("staged in time zone"), max_length=64, blank=True)
    staged_on = models.DateField(_("staged on"), null=True, blank=True)
    created_at = models.DateTimeField(_("uploaded at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("kept until"), db_index=True)

    class Meta:
        verbose_name = _("import upload")
        verbose_name_plural = _("import uploads")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.filename


class CommitToken(models.Model):
    """Single use, short lived, bound to one user: a commit must be a deliberate second step.
    Only the token's SHA-256 is stored."""

    organisation = models.ForeignKey(
        "attendance.Organisation",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("organisation"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", verbose_name=_("user")
    )
    token_hash = models.CharField(_("token hash"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"))
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("commit token")
        verbose_name_plural = _("commit tokens")

    def __str__(self) -> str:
        return f"Commit token of user {self.user_id}"


class ImportBatch(models.Model):
    """One committed import. Day records point at the batch that last wrote them; the
    batch's items hold what each row did and the values it replaced, for exact rollback."""

    class Status(models.TextChoices):
        COMMITTED = "committed", _("Committed")
        ROLLED_BACK = "rolled_back", _("Rolled back")

    organisation = models.ForeignKey(
        "attendance.Organisation",
        on_delete=models.PROTECT,
        related_name="import_batches",
        verbose_name=_("organisation"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("imported by"),
    )
    created_at = models.DateTimeField(_("imported at"), auto_now_add=True)
    format = models.CharField(_("format"), max_length=32)
    filename = models.CharField(_("file name"), max_length=255, blank=True)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)
    mode = models.CharField(
        _("mode"), max_length=16, choices=ImportMode.choices, default=ImportMode.OVERRIDE
    )
    row_count = models.PositiveIntegerField(_("rows"), default=0)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.COMMITTED
    )
    stats = models.JSONField(_("figures"), default=dict, blank=True)
    elapsed_ms = models.PositiveIntegerField(_("elapsed (ms)"), default=0)
    # The transaction time written into every record's updated_at: a record whose updated_at
    # or batch differs was touched later, and rollback refuses to undo over it.
    applied_at = models.DateTimeField(_("applied at"), null=True, blank=True)
    created_employee_ids = models.JSONField(_("created employees"), default=list, blank=True)
    rolled_back_at = models.DateTimeField(_("rolled back at"), null=True, blank=True)
    rolled_back_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("rolled back by"),
    )
    rollback_stats = models.JSONField(_("rollback figures"), default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("import batch")
        verbose_name_plural = _("import batches")
        indexes = [models.Index(fields=["organisation", "-created_at"], name="batch_org_created")]

    def __str__(self) -> str:
        return f"Batch {self.pk} ({self.format})"


class ItemAction(models.TextChoices):
    INSERTED = "inserted", _("Inserted")
    UPDATED = "updated", _("Updated")
    UNCHANGED = "unchanged", _("Unchanged")
    SKIPPED = "skipped", _("Skipped")
    INVALID = "invalid", _("Invalid")
    DUPLICATE = "duplicate", _("Duplicate")


class ImportItem(models.Model):
    """What one source row did. For updates, the ``prior_*`` columns are the record as it was
    (the pre-image); written with COPY-speed set-based SQL, never row by row."""

    # Indexed by (batch, row) below: every read of items is one batch's, in row order (the
    # export of half a million reads them without a sort), with an action filter at most. No
    # database constraint: items are written only by the engine, in the transaction that
    # creates their batch, and batches are never deleted; a deferred check per item was a
    # fifth of a 500,000-row commit (measured: ~2.7 s at COMMIT).
    batch = models.ForeignKey(
        ImportBatch,
        on_delete=models.CASCADE,
        related_name="items",
        db_index=False,
        db_constraint=False,
        verbose_name=_("import batch"),
    )
    row = models.PositiveIntegerField(_("row"))
    action = models.CharField(_("action"), max_length=12, choices=ItemAction.choices)
    code = models.CharField(_("code"), max_length=40, blank=True)
    column = models.CharField(_("column"), max_length=100, blank=True)
    message = models.CharField(_("message"), max_length=500, blank=True)
    employee_ref = models.CharField(_("employee reference"), max_length=100, blank=True)
    # Plain ids, not foreign keys: rollback deletes the records (and the employees) a batch
    # created, while its items stay as the report of what happened.
    employee_id = models.BigIntegerField(_("employee ID"), null=True)
    work_date = models.DateField(_("work date"), null=True)
    record_id = models.BigIntegerField(_("day record ID"), null=True)
    first_in = models.DateTimeField(_("first in"), null=True)
    last_out = models.DateTimeField(_("last out"), null=True)
    status = models.CharField(_("status"), max_length=16, blank=True)
    prior_first_in = models.DateTimeField(_("previous first in"), null=True)
    prior_last_out = models.DateTimeField(_("previous last out"), null=True)
    prior_work_minutes = models.IntegerField(_("previous worked (minutes)"), null=True)
    prior_late_minutes = models.IntegerField(_("previous late (minutes)"), null=True)
    prior_early_leave_minutes = models.IntegerField(_("previous early leave (minutes)"), null=True)
    prior_status = models.CharField(_("previous status"), max_length=16, blank=True)
    prior_source = models.CharField(_("previous source"), max_length=16, blank=True)
    prior_batch_id = models.BigIntegerField(_("previous import batch ID"), null=True)
    prior_note = models.CharField(_("previous note"), max_length=500, blank=True)
    prior_updated_at = models.DateTimeField(_("previously updated at"), null=True)

    class Meta:
        verbose_name = _("import row")
        verbose_name_plural = _("import rows")
        ordering = ["batch", "row"]
        indexes = [
            models.Index(fields=["batch", "row"], name="item_batch_row"),
            # Which later batches replaced a batch's days (the batch page disables rollback
            # and names them). Only updated rows have a prior batch: little write cost.
            models.Index(
                fields=["prior_batch_id"],
                name="item_prior_batch",
                condition=Q(prior_batch_id__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"Row {self.row}: {self.action}"


class ImportJob(models.Model):
    class Kind(models.TextChoices):
        COMMIT = "commit", _("Commit")
        ROLLBACK = "rollback", _("Rollback")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organisation = models.ForeignKey(
        "attendance.Organisation",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("organisation"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("started by"),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.QUEUED
    )
    # The validated request (never the commit token): what the worker runs.
    params = models.JSONField(_("parameters"), default=dict)
    upload = models.ForeignKey(
        ImportUpload,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("upload"),
    )
    batch = models.ForeignKey(
        ImportBatch,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("import batch"),
    )
    processed = models.PositiveIntegerField(_("processed"), default=0)
    total = models.PositiveIntegerField(_("total"), default=0)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # Last sign of life: written by the running job's pulse, and when it is queued (again).
    heartbeat_at = models.DateTimeField(
        _("heartbeat at"), null=True, blank=True, default=timezone.now
    )
    result = models.JSONField(_("result"), null=True, blank=True)
    error = models.JSONField(_("error"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("import job")
        verbose_name_plural = _("import jobs")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organisation", "-created_at"], name="job_org_created"),
            # The queue-age series and the reaper read only the few queued jobs.
            models.Index(
                fields=["heartbeat_at"], condition=Q(status="queued"), name="job_queued_wait"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} ({self.status})"

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        return int(self.processed * 100 / self.total) if self.total else 0


class IdempotencyKey(models.Model):
    """A client's commit key: a retry gets the first answer, other input with the same key
    is refused. The fingerprint is a hash of the input that decides the result."""

    organisation = models.ForeignKey(
        "attendance.Organisation",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("organisation"),
    )
    key = models.CharField(_("key"), max_length=200)
    fingerprint = models.CharField(_("fingerprint"), max_length=64)
    batch = models.ForeignKey(
        ImportBatch,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("import batch"),
    )
    job = models.ForeignKey(
        ImportJob, null=True, blank=True, on_delete=models.SET_NULL, verbose_name=_("job")
    )
    result = models.JSONField(_("result"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("idempotency key")
        verbose_name_plural = _("idempotency keys")
        constraints = [
            models.UniqueConstraint(fields=["organisation", "key"], name="idempotency_key_unique"),
            models.CheckConstraint(condition=~Q(key=""), name="idempotency_key_not_empty"),
        ]

    def __str__(self) -> str:
        return self.key
