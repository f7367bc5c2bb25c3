"""What the smoke's steps share: a wrong answer as a defect, the CSV answers, moments."""

from __future__ import annotations

import csv
import datetime as dt
import io

from gates.choices import FailureKind
from gates.services.runs import CheckFailed

# The byte-order mark the application's CSV downloads begin with.
BOM = "\ufeff"


def expect(condition, detail: str, **evidence) -> None:
    """A wrong answer: a defect, with what was seen."""
    if not condition:
        raise CheckFailed(detail, kind=FailureKind.DEFECT, evidence=evidence)


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text.removeprefix(BOM))))


def moment(value):
    return dt.datetime.fromisoformat(value) if value else None
