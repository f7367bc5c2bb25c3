from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """An append-only record of a write.

    The table is created by hand in the migration: partitioned by month on ``occurred_at``
    (primary key ``(id, occurred_at)``) with triggers that refuse UPDATE, DELETE and
    TRUNCATE (a statement trigger on the parent and on every partition). Actor and
    organisation are kept without foreign-key constraints so that an event outlives what it
    names, and the label keeps who it was readable.

    Unmanaged (``managed = False``): Django's test runner empties every managed table with
    TRUNCATE after a transactional test, which the trigger refuses; it skips unmanaged
    ones (tests/conftest.py empties the audit tables itself, as the owner). Migrations still
    create and change it, by hand-written SQL.
    """

    id = models.BigAutoField(primary_key=True)
    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)
    organisation = models.ForeignKey(
        "attendance.Organisation",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_label = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=100, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        managed = False
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        when = f"{self.occurred_at:%Y-%m-%d %H:%M:%S}"
        return f"{when} {self.action} {self.target_type}:{self.target_id}"


class AuditDigest(models.Model):
    """One sealed hour of audit events (audit/services/digests.py has the format): the
    ids and row hashes of that hour's events in id order, their combined hash, and a chain
    hash over the previous digest's, so that an edited, deleted, inserted or moved event,
    a dropped partition and an edited digest each show in ``manage.py audit_verify``.

    Append-only like the events (triggers refuse UPDATE, DELETE and TRUNCATE) and unmanaged
    for the same reason; written only by ``audit_seal``, with SQL.
    """

    id = models.BigAutoField(primary_key=True)
    hour_start = models.DateTimeField(unique=True)
    event_count = models.IntegerField()
    first_id = models.BigIntegerField(null=True)
    last_id = models.BigIntegerField(null=True)
    event_ids = ArrayField(models.BigIntegerField())
    event_hashes = models.BinaryField()  # 32 bytes (sha256) per event, in id order
    events_hash = models.BinaryField()
    prev_hash = models.BinaryField()
    chain_hash = models.BinaryField()
    format = models.SmallIntegerField()
    sealed_at = models.DateTimeField()

    class Meta:
        managed = False
        ordering = ["hour_start"]

    def __str__(self) -> str:
        return f"{self.hour_start:%Y-%m-%d %H:00} UTC: {self.event_count} event(s)"
