import logging

from common import context


class RequestIdFilter(logging.Filter):
    """Adds the current request id (or ``-`` outside a request) to every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = context.current().request_id or "-"
        return True
