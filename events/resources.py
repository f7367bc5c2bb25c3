"""Event participants in and out of a spreadsheet (the admin's Import / Export,
django-import-export).

A :class:`ParticipantResource` is bound to ONE organisation, as the employees' resource is
(attendance/resources.py): it reads and writes only participants of that organisation's
events and only its employees.

- Import columns: ``event`` (the event's id), ``employee_no``, ``registration``
  (``registered``, ``waitlisted`` or ``cancelled``; blank means ``registered``). A row is
  found by event + employee number: a new pair adds the participant, a known pair may
  change its registration, an unchanged pair is skipped.
- Export adds read-only columns (event title, name, attendance, marked at in the
  organisation's zone, notes); an import ignores them, so an export imports back as
  "skipped".
- Writes go through ``events.services`` (``participants_add``, and the registration
  change below), each audited in the import's transaction; a real (not dry-run) import
  also writes one summary audit event, ``events.participants.imported``.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _
from import_export import fields, widgets

from attendance.models import Employee, Organisation
from attendance.resources import OrganisationResource, TextWidget, cell_text
from events import services
from events.choices import EventStatus, Registration
from events.models import Event, EventParticipant

AUDIT_ACTION = "events.participants.imported"
FINISHED = (EventStatus.COMPLETED, EventStatus.CANCELLED)


class EventWidget(widgets.ForeignKeyWidget):
    """The event by id, among the bound organisation's events only."""

    def __init__(self, organisation: Organisation | None = None):
        super().__init__(Event, field="pk")
        self.organisation = organisation

    def clean(self, value, row=None, **kwargs):
        text = cell_text(value)
        if not text:
            raise ValueError(_("Every row needs an event id."))
        if not text.isascii() or not text.isdigit():
            raise ValueError(
                _("The event is given by its id (a number), not %(text)r.") % {"text": text}
            )
        event = Event.objects.filter(organisation=self.organisation, pk=int(text)).first()
        if event is None:
            raise ValueError(_("No event %(id)s in the organisation.") % {"id": text})
        return event

    def render(self, value, obj=None, **kwargs):
        return "" if value is None else str(value.pk)


class EmployeeNumberWidget(widgets.ForeignKeyWidget):
    """The employee by number, among the bound organisation's active employees."""

    def __init__(self, organisation: Organisation | None = None):
        super().__init__(Employee, field="employee_no")
        self.organisation = organisation

    def clean(self, value, row=None, **kwargs):
        number = cell_text(value, identifier=True)
        if not number:
            raise ValueError(_("Every row needs an employee number."))
        employee = Employee.objects.filter(
            organisation=self.organisation, employee_no=number, is_active=True
        ).first()
        if employee is None:
            raise ValueError(
                _("No active employee numbered %(number)s in the organisation.")
                % {"number": number}
            )
        return employee

    def render(self, value, obj=None, **kwargs):
        return "" if value is None else value.employee_no


class RegistrationWidget(widgets.CharWidget):
    def clean(self, value, row=None, **kwargs):
        text = cell_text(value).lower() or Registration.REGISTERED
        if text not in Registration.values:
            raise ValueError(
                _("Write one of %(choices)s, not %(text)r.")
                % {"choices": ", ".join(Registration.values), "text": text}
            )
        return text


class LocalTimeWidget(widgets.Widget):
    """A time of the export in the organisation's zone, ISO 8601 with its offset."""

    def __init__(self, organisation: Organisation | None = None):
        self.organisation = organisation

    def render(self, value, obj=None, **kwargs):
        if value is None:
            return ""
        return timezone.localtime(value, self.organisation.tz).isoformat()


def _export_only(attribute: str, column: str, widget=None) -> fields.Field:
    return fields.Field(
        attribute=attribute, column_name=column, widget=widget or TextWidget(), readonly=True
    )


class ParticipantResource(OrganisationResource):
    event = fields.Field(attribute="event", column_name="event", widget=EventWidget())
    employee_no = fields.Field(
        attribute="employee", column_name="employee_no", widget=EmployeeNumberWidget()
    )
    registration = fields.Field(
        attribute="registration", column_name="registration", widget=RegistrationWidget()
    )
    event_title = _export_only("event__title", "event_title")
    name = _export_only("employee__name", "name")
    attendance = _export_only("attendance", "attendance")
    marked_at = _export_only("marked_at", "marked_at", LocalTimeWidget())
    notes = _export_only("notes", "notes")

    class Meta:
        model = EventParticipant
        fields = (
            "event",
            "employee_no",
            "registration",
            "event_title",
            "name",
            "attendance",
            "marked_at",
            "notes",
        )
        import_id_fields = ("event", "employee_no")
        skip_unchanged = True
        report_skipped = True
        use_transactions = True
        name = "Participants"

    audit_action = AUDIT_ACTION
    bound_widgets = ("event", "employee_no", "marked_at")
    unbound_refusal = "A participant import or export works on one organisation."

    def get_queryset(self):
        return EventParticipant.objects.filter(
            event__organisation=self._bound_organisation()
        ).select_related("event", "employee")

    def filter_export(self, queryset, **kwargs):
        return queryset.filter(event__organisation=self._bound_organisation())

    def export(self, queryset=None, **kwargs):
        if queryset is not None:
            queryset = queryset.select_related("event", "employee")
        return super().export(queryset, **kwargs)

    # --- import ---------------------------------------------------------------------------

    def get_instance(self, instance_loader, row):
        try:
            return super().get_instance(instance_loader, row)
        except ValueError:
            # An unknown event or employee: no row to find. Importing the field again
            # reports the cell's error on its column (a validation error in the preview).
            return None

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        errors = dict(import_validation_errors or {})
        event = getattr(instance, "event", None) if instance.event_id else None
        if event is not None and event.status in FINISHED and "event" not in errors:
            errors["event"] = [
                ValidationError(_("The event is completed or cancelled: it takes no changes."))
            ]
        if errors:
            raise ValidationError(errors)

    def save_instance(self, instance, is_create, row, **kwargs):
        """Through the services, never a bare save: adding registers the employee (audited
        by ``participants_add``), a registration change is audited too. A dry run runs them
        as well, inside the import's transaction that the library rolls back."""
        actor = kwargs.get("user")
        wanted = instance.registration
        if is_create:
            services.participants_add(
                actor=actor, event=instance.event, employee_nos=[instance.employee.employee_no]
            )
            added = EventParticipant.objects.get(event=instance.event, employee=instance.employee)
            instance.pk = added.pk
            instance.registration = added.registration
        if instance.registration != wanted or not is_create:
            services.participant_registration_set(
                actor=actor, participant=instance, registration=wanted
            )
            instance.registration = wanted
