"""Events in the admin centre, scoped to the admin's organisation and writing through
``events.services`` (as attendance/admin.py does for the rest).

- Events: created and changed through ``event_create`` / ``event_update`` (a completed or
  cancelled event is read-only here); "Complete selected events" → ``event_complete``.
- Participants: added through ``participants_add``; their attendance and notes set through
  ``participant_mark``; a read-only history straight from the audit log
  (``selectors.participant_history``); Import / Export (events/resources.py).
- Nothing is deleted here: an event is cancelled or completed, its trail stays.

Who gets in: superusers, and staff who hold the ``attendance_admin`` role (the admin role's
group carries no model permissions for this app; the role itself is the permission).
"""

from __future__ import annotations

from types import SimpleNamespace

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, gettext_lazy
from import_export.formats.base_formats import CSV, XLSX

from attendance.admin import OrganisationScopedAdmin, admin_organisation
from attendance.admin_imports import OrganisationImportExportMixin
from common import roles
from common.exceptions import ApplicationError
from events import selectors, services
from events.choices import EventStatus
from events.models import Event, EventParticipant
from events.resources import ParticipantResource

EVENT_FIELDS = services.EDITABLE_FIELDS
FINISHED = (EventStatus.COMPLETED, EventStatus.CANCELLED)


def _local(moment, organisation) -> str:
    if moment is None:
        return "—"
    return timezone.localtime(moment, organisation.tz).strftime("%Y-%m-%d %H:%M %Z")


class OrganiserAdminAccess:
    """Superusers, or active staff with the attendance admin role and an employee."""

    def _may_use(self, request) -> bool:
        user = request.user
        return user.is_active and (
            user.is_superuser
            or (
                user.is_staff
                and getattr(user, "employee", None) is not None
                and roles.has_any_role(user, roles.ADMIN)
            )
        )

    def has_module_permission(self, request):
        return self._may_use(request)

    def may_import_export(self, request) -> bool:
        return self._may_use(request)

    def has_view_permission(self, request, obj=None):
        return self._may_use(request)

    def has_add_permission(self, request):
        return self._may_use(request)

    def has_change_permission(self, request, obj=None):
        return self._may_use(request)

    def has_delete_permission(self, request, obj=None):
        return False  # cancelled or completed, never deleted: the audit trail names it


# --- events -----------------------------------------------------------------------------


class EventAdminForm(forms.ModelForm):
    class Meta:
        model = Event
        fields = ("organisation", *EVENT_FIELDS)

    def clean(self):
        cleaned = super().clean()
        starts, ends = cleaned.get("starts_at"), cleaned.get("ends_at")
        if starts and ends and ends <= starts:
            self.add_error("ends_at", gettext("The end must be after the start."))
        elif starts and ends:
            window = SimpleNamespace(
                starts_at=starts,
                ends_at=ends,
                check_in_opens_at=cleaned.get("check_in_opens_at"),
                check_in_closes_at=cleaned.get("check_in_closes_at"),
            )
            opens, closes = selectors.check_in_window(window)
            if closes <= opens and "check_in_closes_at" not in self.errors:
                self.add_error("check_in_closes_at", gettext("Check-in must close after it opens."))
        return cleaned


@admin.register(Event)
class EventAdmin(OrganiserAdminAccess, OrganisationScopedAdmin):
    form = EventAdminForm
    list_display = (
        "title",
        "starts",
        "ends",
        "location",
        "status",
        "completed",
        "participant_count",
        "organisation",
    )
    list_filter = ("status", ("starts_at", admin.DateFieldListFilter), "organisation")
    search_fields = ("title", "location")
    list_select_related = ("organisation",)
    date_hierarchy = "starts_at"
    actions = ("complete_selected",)
    readonly_fields = ("status", "completed_at", "completed_by", "created_at")

    def get_fields(self, request, obj=None):
        fields = list(EVENT_FIELDS)
        if request.user.is_superuser:
            fields.insert(0, "organisation")
        return fields + list(self.readonly_fields) if obj is not None else fields

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status in FINISHED:
            return (*EVENT_FIELDS, *self.readonly_fields)
        if obj is not None:
            return ("organisation", *self.readonly_fields)
        return ()

    @admin.display(description=gettext_lazy("starts"), ordering="starts_at")
    def starts(self, obj):
        return _local(obj.starts_at, obj.organisation)

    @admin.display(description=gettext_lazy("ends"), ordering="ends_at")
    def ends(self, obj):
        return _local(obj.ends_at, obj.organisation)

    @admin.display(description=gettext_lazy("completed"), ordering="completed_at")
    def completed(self, obj):
        return _local(obj.completed_at, obj.organisation)

    def get_queryset(self, request):
        registered = Count("participants", filter=Q(participants__registration="registered"))
        return super().get_queryset(request).annotate(registered_total=registered)

    @admin.display(description=gettext_lazy("registered"), ordering="registered_total")
    def participant_count(self, obj):
        return obj.registered_total

    def save_model(self, request, obj, form, change):
        if change:
            stored = Event.objects.get(pk=obj.pk)
            changes = {
                name: getattr(obj, name) for name in form.changed_data if name in EVENT_FIELDS
            }
            try:
                saved = services.event_update(actor=request.user, event=stored, **changes)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return
        else:
            organisation = (
                obj.organisation if request.user.is_superuser else admin_organisation(request)
            )
            if organisation is None:
                raise PermissionDenied
            saved = services.event_create(
                actor=request.user,
                organisation=organisation,
                **{name: getattr(obj, name) for name in EVENT_FIELDS},
            )
        obj.pk = saved.pk
        obj.organisation = saved.organisation

    @admin.action(description=gettext_lazy("Complete selected events"), permissions=["change"])
    def complete_selected(self, request, queryset):
        done, failed = 0, []
        for event in queryset.select_related("organisation"):
            try:
                services.event_complete(actor=request.user, event=event)
            except ApplicationError as exc:
                failed.append(f"{event}: {exc.message}")
            else:
                done += 1
        if done:
            self.message_user(
                request,
                gettext("Completed %(count)d event(s); auto-absence follows after the delay.")
                % {"count": done},
                messages.SUCCESS,
            )
        if failed:
            self.message_user(
                request,
                gettext("%(count)d event(s) not completed: %(reasons)s")
                % {"count": len(failed), "reasons": "; ".join(failed)},
                messages.ERROR,
            )


# --- participants -----------------------------------------------------------------------


class ParticipantAddForm(forms.ModelForm):
    class Meta:
        model = EventParticipant
        fields = ("event", "employee")


class ParticipantChangeForm(forms.ModelForm):
    class Meta:
        model = EventParticipant
        fields = ("attendance", "notes")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["attendance"].required = True


@admin.register(EventParticipant)
class EventParticipantAdmin(
    OrganisationImportExportMixin, OrganiserAdminAccess, OrganisationScopedAdmin
):
    """Participants; attendance and notes are set through ``participant_mark`` (an
    organiser's mark). Import / Export (CSV, XLSX) of the admin's own organisation, a
    preview then a confirmation of a file this login previewed (as for employees)."""

    organisation_lookup = "event__organisation_id"
    resource_classes = (ParticipantResource,)
    imports_session_key = "events_participant_imports"
    export_audit_action = "events.participants.exported"
    rows_noun = gettext_lazy("participants")
    formats = (CSV, XLSX)
    import_formats = formats
    export_formats = formats
    list_display = (
        "employee",
        "event",
        "registration",
        "attendance",
        "marked",
        "marked_by",
        "marked_by_organiser",
    )
    list_filter = ("attendance", "registration", "marked_by_organiser")
    search_fields = ("employee__employee_no", "employee__name", "event__title")
    list_select_related = ("employee", "event", "event__organisation", "marked_by")
    raw_id_fields = ("event", "employee")
    readonly_fields = ("event", "employee", "registration", "marked_at", "marked_by", "history")

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = ParticipantChangeForm if obj is not None else ParticipantAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("event", "employee")
        return (*self.readonly_fields[:5], "attendance", "notes", "history")

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "event" and not request.user.is_superuser:
            organisation = admin_organisation(request)
            kwargs["queryset"] = Event.objects.filter(organisation=organisation).exclude(
                status__in=FINISHED
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description=gettext_lazy("marked at"), ordering="marked_at")
    def marked(self, obj):
        return _local(obj.marked_at, obj.event.organisation)

    @admin.display(description=gettext_lazy("history"))
    def history(self, obj):
        rows = selectors.participant_history(obj)
        if not rows:
            return gettext("No attendance changes yet.")
        organisation = obj.event.organisation
        header = format_html(
            "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            gettext("When"),
            gettext("Who"),
            gettext("What"),
            gettext("From"),
            gettext("To"),
            gettext("Notes"),
        )
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    _local(row["at"], organisation),
                    row["actor"],
                    row["action"],
                    row["from"] or "—",
                    row["to"] or "—",
                    row["notes"] or "",
                )
                for row in rows
            ),
        )
        return format_html('<table class="participant-history">{}{}</table>', header, body)

    def save_model(self, request, obj, form, change):
        try:
            if change:
                stored = EventParticipant.objects.get(pk=obj.pk)
                services.participant_mark(
                    actor=request.user,
                    participant=stored,
                    status=obj.attendance,
                    notes=obj.notes,
                )
            else:
                services.participants_add(
                    actor=request.user, event=obj.event, employee_nos=[obj.employee.employee_no]
                )
                obj.pk = EventParticipant.objects.get(event=obj.event, employee=obj.employee).pk
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
