"""Audit beat tasks: thin, each calls its service."""

from celery import shared_task

from audit.services import audit_ensure_partitions, audit_prune, audit_seal


@shared_task(name="audit.tasks.ensure_audit_partitions")
def ensure_audit_partitions() -> list[str]:
    return audit_ensure_partitions()


@shared_task(name="audit.tasks.seal_audit_digests")
def seal_audit_digests() -> dict:
    return audit_seal().as_dict()


@shared_task(name="audit.tasks.prune_audit_partitions")
def prune_audit_partitions() -> dict:
    # Sealed first: a partition whose events are not all sealed is refused by the drop.
    audit_seal()
    return audit_prune().as_dict()
