from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


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
    occurred_at = models.DateTimeField(_("occurred at"), default=timezone.now, db_index=True)
    organisation = models.ForeignKey(
        "attendance.Organisation",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        verbose_name=_("organisation"),
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        verbose_name=_("actor"),
    )
    actor_label = models.CharField(_("actor label"), max_length=200, blank=True)
    action = models.CharField(_("action"), max_length=100, db_index=True)
    target_type = models.CharField(_("target type"), max_length=100, blank=True)
    target_id = models.CharField(_("target ID"), max_length=100, blank=True)
    request_id = models.CharField(_("request ID"), max_length=64, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=512, blank=True)
    data = models.JSONField(_("data"), default=dict, blank=True)

    class Meta:
        managed = False
        ordering = ["-occurred_at", "-id"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")

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
    hour_start = models.DateTimeField(_("hour start"), unique=True)
    event_count = models.IntegerField(
        _("events"),
    )
    first_id = models.BigIntegerField(_("first event ID"), null=True)
    last_id = models.BigIntegerField(_("last event ID"), null=True)
    event_ids = ArrayField(models.BigIntegerField(), verbose_name=_("event IDs"))
    event_hashes = models.BinaryField(
        _("event hashes"),
    )  # 32 bytes (sha256) per event, in id order
    events_hash = models.BinaryField(
        _("events hash"),
    )
    prev_hash = models.BinaryField(
        _("previous hash"),
    )
    chain_hash = models.BinaryField(
        _("chain hash"),
    )
    format = models.SmallIntegerField(
        _("format"),
    )
    sealed_at = models.DateTimeField(
        _("sealed at"),
    )

    class Meta:
        managed = False
        ordering = ["hour_start"]
        verbose_name = _("audit digest")
        verbose_name_plural = _("audit digests")

    def __str__(self) -> str:
        return f"{self.hour_start:%Y-%m-%d %H:00} UTC: {self.event_count} event(s)"
