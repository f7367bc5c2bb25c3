"""Moments given to the audit commands: an ISO date or date-time, UTC unless it says."""

from __future__ import annotations

import argparse
import datetime as dt

from django.utils.translation import gettext as _


def parse_moment(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            _("%(text)r is not an ISO date or date-time") % {"text": text}
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(_("%(text)r is not an ISO date") % {"text": text}) from exc
