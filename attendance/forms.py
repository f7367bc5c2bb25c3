"""Page forms. They only parse what the browser sends; the rules live in services."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django import forms
from django.utils.translation import gettext_lazy as _

from attendance import services
from attendance.choices import RecordStatus
from common.net import parse_network

# The services name fields as the API does; the page says what its labels say.
SERVICE_FIELD_LABELS = {
    "workDate": _("work date"),
    "firstIn": _("first in"),
    "lastOut": _("last out"),
}

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
    return [("", _("Adjusted (default)"))] + [
        (value, labels[value]) for value in services.ADJUSTABLE_STATUSES
    ]


class CorrectionForm(forms.Form):
    """Ask for a day's times and/or status to be corrected."""

    work_date = forms.DateField(
        label=_("Work date"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    first_in = forms.TimeField(
        label=_("First in"),
        required=False,
        input_formats=["%H:%M", "%H:%M:%S"],
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
    )
    last_out = forms.TimeField(
        label=_("Last out"),
        required=False,
        input_formats=["%H:%M", "%H:%M:%S"],
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text=_("Earlier than first in = the next morning (night shift)."),
    )
    status = forms.ChoiceField(label=_("Status"), required=False, choices=_status_choices)
    reason = forms.CharField(
        label=_("Reason"),
        # Validated by the service together with the rest of the request, so that every
        # problem is shown at once; the widget still tells the browser it is required.
        required=False,
        max_length=2000,
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": _("What happened?"), "required": True}
        ),
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
        message = message.replace(name, str(label))
    return message


def _aware(day: dt.date, time: dt.time | None, tz: zoneinfo.ZoneInfo) -> dt.datetime | None:
    if time is None:
        return None
    return dt.datetime.combine(day, time.replace(second=0, microsecond=0), tzinfo=tz)


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    comment = forms.CharField(required=False, max_length=2000)


# --- organisation settings (the admin centre's organisation form) ------------------------

WEEKDAY_CHOICES = [
    (0, _("Monday")),
    (1, _("Tuesday")),
    (2, _("Wednesday")),
    (3, _("Thursday")),
    (4, _("Friday")),
    (5, _("Saturday")),
    (6, _("Sunday")),
]


class WorkdaysField(forms.TypedMultipleChoiceField):
    """The days with a scheduled shift as seven checkboxes; stored as the sorted list of
    ``date.weekday()`` numbers the schedule reads (Monday = 0)."""

    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs):
        kwargs.setdefault("choices", WEEKDAY_CHOICES)
        kwargs.setdefault("coerce", int)
        kwargs.setdefault("required", False)  # no workday at all is a valid (odd) schedule
        super().__init__(**kwargs)

    def clean(self, value):
        return sorted(set(super().clean(value)))

    def prepare_value(self, value):
        # The stored list may hold ints; the widget compares with the choices' str values.
        return [str(day) for day in value] if isinstance(value, list | tuple) else value


class NetworkListField(forms.CharField):
    """An IP allowlist as a textarea, one network (CIDR, or one address) a line; blank
    lines are ignored. Each line is checked on its own and a bad one is named (line number
    and text) in the error. Cleans to the list the organisation stores."""

    widget = forms.Textarea(attrs={"rows": 6, "cols": 40, "spellcheck": "false"})

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("strip", False)
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return "\n".join(str(entry) for entry in value)
        return value

    def to_python(self, value):
        if isinstance(value, list | tuple):  # the initial value, as stored
            return [str(entry) for entry in value]
        text = super().to_python(value) or ""
        return [line.strip() for line in text.splitlines() if line.strip()]

    def validate(self, value):
        super().validate(value)
        errors = []
        for number, entry in enumerate(value, start=1):
            try:
                parse_network(entry)
            except ValueError:
                errors.append(
                    forms.ValidationError(
                        _('Line %(line)d: "%(entry)s" is not an IP network (e.g. 10.0.0.0/8).'),
                        code="invalid_network",
                        params={"line": number, "entry": entry},
                    )
                )
        if errors:
            raise forms.ValidationError(errors)
