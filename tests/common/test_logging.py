"""Log lines say who and where: the request id, the authenticated user and organisation, or
the Celery task and the import job it runs; a log line never queries for them."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth import get_user_model
from django.test import RequestFactory
from django.utils.functional import SimpleLazyObject

from attendance.models import Employee
from common import context
from common.logging import RequestIdFilter
from config.celery import app


class Keep(logging.Handler):
    def __init__(self):
        super().__init__()
        self.addFilter(RequestIdFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def kept():
    handler = Keep()
    logger = logging.getLogger("attendance.test.logging")
    logger.addHandler(handler)
    logger.propagate = False
    yield logger, handler.records
    logger.removeHandler(handler)
    logger.propagate = True


def _in_request(request, logger):
    token = context.bind(context.RequestContext(request_id="req-7", request=request))
    try:
        logger.warning("inside")
    finally:
        context.reset(token)


def test_an_authenticated_request_logs_its_user_and_organisation(kept):
    logger, records = kept
    request = RequestFactory().get("/api/attendance/me")
    user = get_user_model()(username="li.lei")
    user._state.fields_cache["employee"] = Employee(organisation_id=42)
    request.user = user

    _in_request(request, logger)

    record = records[-1]
    assert (record.request_id, record.user, record.organisation) == ("req-7", "li.lei", 42)


def test_a_user_not_yet_resolved_is_not_looked_up_for_a_log_line(kept):
    logger, records = kept
    request = RequestFactory().get("/")
    looked_up = []
    request.user = SimpleLazyObject(lambda: looked_up.append(1))

    _in_request(request, logger)

    assert (records[-1].user, records[-1].organisation) == ("-", "-")
    assert looked_up == []


@app.task(name="tests.logging.run_probe_job")
def run_probe_job(job_id):
    logging.getLogger("attendance.test.logging").warning("working on it")


def test_a_task_logs_its_id_name_and_import_job(kept):
    _, records = kept
    result = run_probe_job.apply(args=["6f1c0a53-job"], task_id="task-123")
    assert result.successful()
    record = records[-1]
    assert (record.task_id, record.task_name, record.job_id) == (
        "task-123",
        "tests.logging.run_probe_job",
        "6f1c0a53-job",
    )
    assert record.request_id == "task-task-123"
    assert context.current().task_id == ""  # reset once the task ended
