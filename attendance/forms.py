"""Page forms. They only parse what the browser sends; the rules live in services."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django import forms

from attendance import services
from attendance.choices import RecordStatus

# The services name fields as the API does; the page says what its labels say.
SERVICE_FIELD_LABELS = {"workDate": "work date", "firstIn": "first in", "lastOut": "last out"}

# Service error keys (camelCase, as in the API) → form field names; None = non-field error.
SERVICE_FIELD_NAMES = {
    "workDate": "work_date",
    "firstIn": "first_in",
    "lastOut": "last_out",
    "status": "status",
    "reason": "reason",
    "nonFieldErrors": None,
}


def _status_choices() -> list[tuple[str, str]]:
    labels = dict(RecordStatus.choices)
    return [("", "Adjusted (default)")] + [
        (value, labels[value]) for value in services.ADJUSTABLE_STATUSES
    ]


class CorrectionForm(forms.Form):
    """Ask for a day's times and/or status to be corrected."""

    work_date = forms.DateField(
        label="Work date", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    first_in = forms.TimeField(
        label="First in",
        required=False,
        input_formats=["%H:%M", "%H:%M:%S"],
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
    )
    last_out = forms.TimeField(
        label="Last out",
        required=False,
        input_formats=["%H:%M", "%H:%M:%S"],
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text="Earlier than first in = the next morning (night shift).",
    )
    status = forms.ChoiceField(label="Status", required=False, choices=_status_choices)
    reason = forms.CharField(
        label="Reason",
        # Validated by the service together with the rest of the request, so that every
        # problem is shown at once; the widget still tells the browser it is required.
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "What happened?", "required": True}),
    )

    def service_arguments(self, tz: zoneinfo.ZoneInfo) -> dict:
        """Cleaned data → keyword arguments of ``services.adjustment_request_create``.

        Times are wall-clock times on the work date in the organisation's time zone; a last
        out earlier than the first in belongs to the next morning (a night shift).
        """
        data = self.cleaned_data
        work_date: dt.date = data["work_date"]
        first_in = _aware(work_date, data.get("first_in"), tz)
        last_out = _aware(work_date, data.get("last_out"), tz)
        if first_in and last_out and last_out < first_in:
            last_out = _aware(work_date + dt.timedelta(days=1), data["last_out"], tz)
        return {
            "work_date": work_date,
            "first_in": first_in,
            "last_out": last_out,
            "status": data.get("status") or "",
            "reason": data.get("reason") or "",
        }

    def add_service_errors(self, fields: dict[str, list[str]]) -> None:
        """Show a ValidationFailed's ``details["fields"]`` on the matching form fields."""
        for key, messages in fields.items():
            field = SERVICE_FIELD_NAMES.get(key)
            for message in messages:
                self.add_error(field, _humanise(message))


def _humanise(message: str) -> str:
    for name, label in SERVICE_FIELD_LABELS.items():
        message = message.replace(name, label)
    return message


def _aware(day: dt.date, time: dt.time | None, tz: zoneinfo.ZoneInfo) -> dt.datetime | None:
    if time is None:
        return None
    return dt.datetime.combine(day, time.replace(second=0, microsecond=0), tzinfo=tz)


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    comment = forms.CharField(required=False, max_length=2000)
