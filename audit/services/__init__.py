"""Audit writes. Every write service calls :func:`audit_record` inside its own transaction,
so the event exists exactly when the change does."""

from audit.services.digests import audit_seal
from audit.services.partitions import audit_ensure_partitions, audit_partition_health
from audit.services.record import MASK, audit_record, mask_secrets
from audit.services.retention import audit_prune, effective_retention_days
from audit.services.verification import audit_verify

__all__ = [
    "MASK",
    "audit_ensure_partitions",
    "audit_partition_health",
    "audit_prune",
    "audit_record",
    "audit_seal",
    "audit_verify",
    "effective_retention_days",
    "mask_secrets",
]
