import os

from celery import Celery
from celery.signals import (
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_shutdown,
    worker_ready,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# prometheus_client writes a multiprocess mode's files as soon as a metric is defined.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

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


# A worker's own series (the import jobs' rows, failures and durations, auto-absence, audit
# events) at http://<worker>:CELERY_METRICS_PORT/metrics. With PROMETHEUS_MULTIPROC_DIR the
# pool's processes write there and the main process serves their sum.
@worker_init.connect
def _clear_stale_metrics(**_):
    """Files left by processes of an earlier run are stale; this process's own (created when
    its metrics were defined, before this signal) are not."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    for name in os.listdir(directory):
        pid = name.rsplit("_", 1)[-1].removesuffix(".db")
        if name.endswith(".db") and pid.isdigit() and not _alive(int(pid)):
            os.remove(os.path.join(directory, name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@worker_ready.connect
def _serve_metrics(**_):
    port = os.environ.get("CELERY_METRICS_PORT")
    if not port:
        return
    from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    start_http_server(
        int(port),
        addr=os.environ.get("CELERY_METRICS_ADDR", "0.0.0.0"),  # noqa: S104
        registry=registry,
    )


@worker_process_shutdown.connect
def _forget_dead_process(pid=None, **_):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
