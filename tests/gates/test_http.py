"""The gates' HTTP client: how long a Retry-After asks it to wait."""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime

import httpx
import pytest

from gates.services.http import retry_after_seconds


def _answer(**headers) -> httpx.Response:
    return httpx.Response(429, headers=headers)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2", 2.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("soon", None),
        ("", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_retry_after_in_seconds(value, seconds):
    assert retry_after_seconds(_answer(**{"Retry-After": value})) == seconds


def test_retry_after_as_an_http_date():
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    waited = retry_after_seconds(_answer(**{"Retry-After": format_datetime(later, usegmt=True)}))
    assert 28 <= waited <= 30
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)
    assert (
        retry_after_seconds(_answer(**{"Retry-After": format_datetime(earlier, usegmt=True)})) == 0
    )


def test_no_retry_after():
    assert retry_after_seconds(_answer()) is None
