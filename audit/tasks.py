from celery import shared_task

from audit.services import audit_ensure_partitions


@shared_task(name="audit.tasks.ensure_audit_partitions")
def ensure_audit_partitions() -> list[str]:
    return audit_ensure_partitions()
