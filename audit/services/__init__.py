"""Audit writes. Every write service calls :func:`audit_record` inside its own transaction,
so the event exists exactly when the change does."""

from audit.services.partitions import audit_ensure_partitions
from audit.services.record import MASK, audit_record, mask_secrets

__all__ = ["MASK", "audit_ensure_partitions", "audit_record", "mask_secrets"]
