"""Events beat tasks: thin, each calls its service. Both are safe to overlap (a slow run
and the next beat's): completion skips events another run holds, auto-absence takes its
batches ``FOR UPDATE SKIP LOCKED``."""

from celery import shared_task

from events.services import auto_absence_run, events_complete_due, events_start_due


@shared_task(name="events.tasks.complete_due_events")
def complete_due_events() -> dict:
    """Started events become in progress, ended ones completed."""
    return {"started": events_start_due(), "completed": events_complete_due()}


@shared_task(name="events.tasks.run_auto_absence")
def run_auto_absence() -> dict:
    return auto_absence_run()
