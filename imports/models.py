from django.conf import settings
from django.db import models


class ImportBatch(models.Model):
    """One committed import. Day records and punches point at the batch that last wrote them,
    so that a batch can be reported on and rolled back (the import pipeline fills it)."""

    class Status(models.TextChoices):
        COMMITTED = "committed", "Committed"
        ROLLED_BACK = "rolled_back", "Rolled back"

    organisation = models.ForeignKey(
        "attendance.Organisation", on_delete=models.PROTECT, related_name="import_batches"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    format = models.CharField(max_length=32)
    filename = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMMITTED)
    stats = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "import batches"

    def __str__(self) -> str:
        return f"Batch {self.pk} ({self.format})"
