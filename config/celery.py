import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("attendance")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# Log lines written while a task runs carry its id and name, and the import job it runs
# (common/logging.py); the context is the task's own, reset when it ends.
_task_contexts: dict[str, object] = {}


@task_prerun.connect
def _bind_task_context(task_id=None, task=None, args=None, kwargs=None, **_):
    from common import context

    job_id = (kwargs or {}).get("job_id") or (
        str(args[0]) if args and task is not None and task.name.endswith("_job") else ""
    )
    _task_contexts[task_id] = context.bind(
        context.RequestContext(
            request_id=f"task-{task_id}",
            task_id=task_id or "",
            task_name=getattr(task, "name", ""),
            job_id=str(job_id),
        )
    )


@task_postrun.connect
def _reset_task_context(task_id=None, **_):
    from common import context

    token = _task_contexts.pop(task_id, None)
    if token is not None:
        context.reset(token)
