"""The admin centre: Django's admin, scoped to the admin's organisation, writing through
services.

Who sees what: superusers see every organisation; anybody else with ``is_staff`` (the
``attendance_admin`` role) sees only rows of ``request.user.employee.organisation`` and
acts through the model permissions the role's group carries. A staff login without an
employee sees nothing.

What is written where:

- organisation settings → ``services.organisation_settings_update`` (audited);
- roles → the "Assign role…" / "Unassign role…" actions → ``services.roles_batch_apply``
  (one summary audit event per organisation); group and permission fields are read-only
  for everybody but superusers;
- adjustment requests → "Approve" / "Reject" actions → the request services;
- API tokens → a small issue form → ``services.api_token_issue``, the raw token shown once;
  "Revoke selected" → ``services.api_token_revoke``;
- employees and organisations saved through their forms write an audit event in the same
  transaction as the save.

Day records and punches are read-only here: corrections go through adjustment requests.
Nothing that would escape the audit log is deleted here (employees are deactivated).
"""

from __future__ import annotations

import functools
from collections import defaultdict

from axes.models import AccessAttempt
from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Prefetch, Q, QuerySet
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.translation import gettext, gettext_lazy, pgettext_lazy
from import_export.formats.base_formats import CSV, XLSX

from attendance import lockouts, services
from attendance.admin_imports import OrganisationImportExportMixin
from attendance.forms import NetworkListField, WorkdaysField
from attendance.models import (
    AdjustmentRequest,
    ApiToken,
    AttendanceRecord,
    Employee,
    Organisation,
    Punch,
)
from attendance.resources import EmployeeResource
from audit.services import audit_record
from common import roles
from common.exceptions import ApplicationError

User = get_user_model()

ROLE_CHOICES = [(name, roles.label(name)) for name in roles.ALL]
ROLE_PAGE_TEMPLATE = "admin/attendance/role_action.html"
# How many of the selected people the role page names (the count is always shown).
ROLE_PAGE_LIST_LIMIT = 50


# --- the site ---------------------------------------------------------------------------


class AttendanceAdminSite(admin.AdminSite):
    """Django's admin site, but a signed-in person who may not use the admin centre (an
    employee, an approver) gets the app's 403 page instead of the admin's sign-in form
    (which would suggest signing in again would help). Anonymous visitors still get the
    sign-in form; the logout view stays open to everybody signed in."""

    def admin_view(self, view, cacheable=False):
        guarded = super().admin_view(view, cacheable)

        @functools.wraps(view)
        def refuse_signed_in_outsiders(request, *args, **kwargs):
            if (
                request.user.is_authenticated
                and not self.has_permission(request)
                and request.path != reverse("admin:logout", current_app=self.name)
            ):
                raise PermissionDenied  # handler403: templates/403.html
            return guarded(request, *args, **kwargs)

        return refuse_signed_in_outsiders


# The default site (config/urls.py mounts ``admin.site``) is given the behaviour in place:
# every app registers on that very instance, so replacing it would lose registrations.
# This module is imported by autodiscover, before the URLs are built.
admin.site.__class__ = AttendanceAdminSite


# --- scoping ----------------------------------------------------------------------------


def admin_organisation_id(request) -> int | None:
    """The organisation a non-superuser administers; None for superusers and for staff
    logins without an employee (``scope`` then shows them nothing)."""
    if request.user.is_superuser:
        return None
    employee = getattr(request.user, "employee", None)
    return employee.organisation_id if employee is not None else None


def admin_organisation(request) -> Organisation | None:
    if request.user.is_superuser:
        return None
    employee = getattr(request.user, "employee", None)
    return employee.organisation if employee is not None else None


def scope(request, queryset: QuerySet, lookup: str = "organisation_id") -> QuerySet:
    """Superusers: everything. Others: rows where ``lookup`` is their organisation."""
    if request.user.is_superuser:
        return queryset
    organisation_id = admin_organisation_id(request)
    if organisation_id is None:
        return queryset.none()
    return queryset.filter(**{lookup: organisation_id})


def scoped_employees(request) -> QuerySet[Employee]:
    return scope(request, Employee.objects.all())


def organisation_users(request) -> QuerySet:
    """Logins a non-superuser may issue a token for: people of their organisation, never a
    superuser (a token would hand them the superuser's rights)."""
    users = User.objects.all()
    if request.user.is_superuser:
        return users
    organisation_id = admin_organisation_id(request)
    if organisation_id is None:
        return users.none()
    return users.filter(is_superuser=False, employee__organisation_id=organisation_id)


def linkable_users(request, users: QuerySet | None = None) -> QuerySet:
    """Logins a non-superuser may link to an employee: their organisation's, plus logins
    not linked to anybody yet that are neither staff nor superuser (one just created in
    the user admin). Never a superuser or another organisation's login."""
    users = User.objects.all() if users is None else users
    if request.user.is_superuser:
        return users
    organisation_id = admin_organisation_id(request)
    if organisation_id is None:
        return users.none()
    return users.filter(is_superuser=False).filter(
        Q(employee__organisation_id=organisation_id) | Q(employee__isnull=True, is_staff=False)
    )


class OrganisationScopedAdmin(admin.ModelAdmin):
    """get_queryset and foreign-key choices limited to the admin's organisation."""

    organisation_lookup = "organisation_id"

    def get_queryset(self, request):
        return scope(request, super().get_queryset(request), self.organisation_lookup)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not request.user.is_superuser:
            related = db_field.related_model
            if related is Organisation:
                kwargs["queryset"] = scope(request, Organisation.objects.all(), "pk")
            elif related is Employee:
                kwargs["queryset"] = scoped_employees(request)
            elif related is User:
                kwargs["queryset"] = linkable_users(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        if not request.user.is_superuser and "organisation" in columns:
            columns.remove("organisation")
        return columns

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        if not request.user.is_superuser and "organisation" in filters:
            filters.remove("organisation")
        return filters


class ViewOnlyAdmin(OrganisationScopedAdmin):
    """Listed and opened, never added, changed or deleted here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- roles (shared by the employee and the user admin) ----------------------------------


class RoleForm(forms.Form):
    role = forms.ChoiceField(
        label=gettext_lazy("Role"), choices=ROLE_CHOICES, widget=forms.RadioSelect
    )


def role_names_of(user) -> str:
    """The role labels people read (never the group names), from a prefetched
    ``user.groups``."""
    if user is None:
        return ""
    names = sorted(
        str(roles.label(group.name)) for group in user.groups.all() if group.name in roles.ALL
    )
    return ", ".join(names)


def role_groups_prefetch(lookup: str) -> Prefetch:
    return Prefetch(lookup, queryset=Group.objects.filter(name__in=roles.ALL).order_by("name"))


def run_role_action(modeladmin, request, queryset, *, assign: bool, targets):
    """The intermediate page of "Assign role…" / "Unassign role…", then the change.

    ``targets(queryset)`` yields ``(organisation, user_id, employee_no, label)`` per selected
    row. Rows are grouped by organisation: one ``roles_batch_apply`` call (and so one
    summary audit event) per organisation. A non-superuser's rows are all in their own
    organisation (the queryset is scoped); rows with no organisation (a login without an
    employee) are reported as missing.
    """
    action = "assign_role" if assign else "unassign_role"
    form = RoleForm(request.POST if request.POST.get("apply") else None)
    rows = list(targets(queryset))
    if not form.is_bound or not form.is_valid():
        opts = modeladmin.model._meta
        context = {
            **modeladmin.admin_site.each_context(request),
            "title": gettext("Assign a role") if assign else gettext("Unassign a role"),
            "opts": opts,
            "form": form,
            "assign": assign,
            "action": action,
            "rows": rows[:ROLE_PAGE_LIST_LIMIT],
            "more": max(0, len(rows) - ROLE_PAGE_LIST_LIMIT),
            "count": len(rows),
            "selected": [str(pk) for pk in queryset.values_list("pk", flat=True)],
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "media": modeladmin.media,
        }
        request.current_app = modeladmin.admin_site.name
        return TemplateResponse(request, ROLE_PAGE_TEMPLATE, context)

    role = form.cleaned_data["role"]
    own_organisation = admin_organisation(request)
    by_organisation: dict[int, tuple[Organisation, list[int], list[str]]] = {}
    totals = defaultdict(int)
    for organisation, user_id, employee_no, _ in rows:
        if organisation is None:
            totals["missing"] += 1
            continue
        if not request.user.is_superuser and organisation.pk != getattr(
            own_organisation, "pk", None
        ):
            raise PermissionDenied  # cannot happen through a scoped queryset
        _, user_ids, employee_nos = by_organisation.setdefault(
            organisation.pk, (organisation, [], [])
        )
        if user_id is not None:
            user_ids.append(user_id)
        elif employee_no:
            employee_nos.append(employee_no)  # no login: the service reports it as missing
    try:
        with transaction.atomic():
            for organisation, user_ids, employee_nos in by_organisation.values():
                result = services.roles_batch_apply(
                    actor=request.user,
                    organisation=organisation,
                    role=role,
                    assign=assign,
                    user_ids=user_ids,
                    employee_nos=employee_nos,
                )
                for key in ("updated", "unchanged", "missing", "inactive"):
                    totals[key] += len(result[key])
    except ApplicationError as exc:
        modeladmin.message_user(
            request,
            gettext("Nothing changed: %(reason)s") % {"reason": exc.message},
            messages.ERROR,
        )
        return None
    if assign:
        template = gettext(
            "Role %(role)s assigned: %(updated)d updated, %(unchanged)d unchanged, "
            "%(missing)d missing (no login in the organisation), %(inactive)d inactive."
        )
    else:
        template = gettext(
            "Role %(role)s unassigned: %(updated)d updated, %(unchanged)d unchanged, "
            "%(missing)d missing (no login in the organisation), %(inactive)d inactive."
        )
    modeladmin.message_user(
        request,
        template
        % {
            "role": roles.label(role),
            **{k: totals[k] for k in ("updated", "unchanged", "missing", "inactive")},
        },
        messages.SUCCESS if totals["updated"] else messages.WARNING,
    )
    return None


# --- organisations ----------------------------------------------------------------------


class OrganisationAdminForm(forms.ModelForm):
    """Workdays as checkboxes and the IP allowlist one network a line (each line checked,
    a bad one named), instead of the JSON the two are stored as."""

    actor = None  # the admin saving the form (set by OrganisationAdmin.get_form)
    workdays = WorkdaysField(
        label=gettext_lazy("Workdays"), help_text=Organisation._meta.get_field("workdays").help_text
    )
    ip_allowlist = NetworkListField(
        label=gettext_lazy("IP allowlist"),
        help_text=Organisation._meta.get_field("ip_allowlist").help_text,
    )

    class Meta:
        model = Organisation
        fields = ("name", "slug", "ip_allowlist")  # the admin's fieldsets add the others

    def clean_ip_allowlist(self):
        entries = self.cleaned_data.get("ip_allowlist") or []
        # Each line is checked by the field; the service refuses a self-lockout too, asked
        # here so the admin sees it on the field.
        lockout = services.allowlist_self_lockout_error(
            actor=self.actor, organisation=self.instance, allowlist=entries
        )
        if lockout:
            raise forms.ValidationError(lockout)
        return entries

    def clean_audit_retention_days(self):
        days = self.cleaned_data.get("audit_retention_days")
        too_short = services.retention_below_minimum_error(days)
        if too_short:
            raise forms.ValidationError(too_short)
        return days


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    form = OrganisationAdminForm
    list_display = (
        "name",
        "slug",
        "time_zone",
        "work_start",
        "work_end",
        "grace_minutes",
        "auto_absence_delay_minutes",
        "audit_retention_days",
    )
    search_fields = ("name", "slug")
    fieldsets = (
        (None, {"fields": ("name", "slug", "created_at")}),
        (
            gettext_lazy("Working time"),
            {"fields": ("time_zone", "work_start", "work_end", "grace_minutes", "workdays")},
        ),
        (gettext_lazy("Access"), {"fields": ("ip_allowlist",)}),
        (
            gettext_lazy("Automation and retention"),
            {"fields": ("auto_absence_delay_minutes", "audit_retention_days")},
        ),
    )

    def get_queryset(self, request):
        return scope(request, super().get_queryset(request), "pk")

    def get_readonly_fields(self, request, obj=None):
        if request.user.is_superuser:
            return ("created_at",)
        return ("name", "slug", "created_at")

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        # Deleting an organisation would escape the audit log (and is PROTECTed anyway).
        return False

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.actor = request.user
        return form

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            if not change:
                super().save_model(request, obj, form, change)
                audit_record(
                    actor=request.user,
                    action="attendance.organisation.created",
                    organisation=obj,
                    target=obj,
                    data={"name": obj.name, "slug": obj.slug},
                )
                return
            # The form already wrote the new values onto ``obj``; the service needs the
            # stored row to record what it was before.
            current = Organisation.objects.select_for_update().get(pk=obj.pk)
            # changed_data also names JSON fields whose hidden initial was not posted back;
            # only real differences are written (and audited).
            settings_changes = {
                name: form.cleaned_data[name]
                for name in form.changed_data
                if name in services.SETTINGS_FIELDS
                and form.cleaned_data[name] != getattr(current, name)
            }
            other = [
                name
                for name in form.changed_data
                if name not in services.SETTINGS_FIELDS and name in ("name", "slug")
            ]
            if other:  # only superusers have these fields on their form
                before = {name: getattr(current, name) for name in other}
                for name in other:
                    setattr(current, name, form.cleaned_data[name])
                current.save(update_fields=other)
                audit_record(
                    actor=request.user,
                    action="attendance.organisation.updated",
                    organisation=current,
                    target=current,
                    data={"before": before, "after": {n: getattr(current, n) for n in other}},
                )
            if settings_changes:
                services.organisation_settings_update(
                    actor=request.user, organisation=current, **settings_changes
                )


# --- employees --------------------------------------------------------------------------


class RoleActionsMixin:
    """ "Assign role…" / "Unassign role…" for a changelist whose ``_role_targets`` yields
    ``(organisation, user id, employee number, label)`` for the selected rows."""

    @admin.action(description=gettext_lazy("Assign role…"), permissions=["change"])
    def assign_role(self, request, queryset):
        return run_role_action(self, request, queryset, assign=True, targets=self._role_targets)

    @admin.action(description=gettext_lazy("Unassign role…"), permissions=["change"])
    def unassign_role(self, request, queryset):
        return run_role_action(self, request, queryset, assign=False, targets=self._role_targets)


class EmployeeForm(forms.ModelForm):
    """``organisation`` is not on a non-superuser's form, so Django would skip the
    per-organisation unique constraints; the form fixes the organisation first and checks
    them itself, and keeps the approver in the same organisation (and not the employee)."""

    fixed_organisation: Organisation | None = None
    UNIQUE_IN_ORGANISATION = {
        "employee_no": gettext_lazy(
            "An employee with this number already exists in the organisation."
        ),
        "dingtalk_user_id": gettext_lazy("Another employee already has this DingTalk user ID."),
        "device_pin": gettext_lazy("Another employee already has this device PIN."),
    }

    class Meta:
        model = Employee
        fields = (
            "organisation",
            "employee_no",
            "name",
            "department",
            "user",
            "approver",
            "dingtalk_user_id",
            "device_pin",
            "is_active",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.fixed_organisation is not None and self.instance.organisation_id is None:
            self.instance.organisation = self.fixed_organisation
        approver = self.fields.get("approver")
        if approver is not None and self.instance.pk is not None:
            approver.queryset = approver.queryset.exclude(pk=self.instance.pk)

    def _organisation_id(self):
        if "organisation" in self.fields:
            organisation = self.cleaned_data.get("organisation")
            return organisation.pk if organisation else None
        return self.instance.organisation_id

    def clean(self):
        cleaned = super().clean()
        organisation_id = self._organisation_id()
        approver = cleaned.get("approver")
        if approver is not None:
            if self.instance.pk is not None and approver.pk == self.instance.pk:
                self.add_error(
                    "approver", gettext("An employee cannot approve their own requests.")
                )
            elif organisation_id is not None and approver.organisation_id != organisation_id:
                self.add_error(
                    "approver", gettext("The approver must be in the same organisation.")
                )
        if organisation_id is not None and "organisation" not in self.fields:
            others = Employee.objects.filter(organisation_id=organisation_id).exclude(
                pk=self.instance.pk
            )
            for field, message in self.UNIQUE_IN_ORGANISATION.items():
                value = cleaned.get(field)
                if value and others.filter(**{field: value}).exists():
                    self.add_error(field, message)
        return cleaned


@admin.register(Employee)
class EmployeeAdmin(OrganisationImportExportMixin, RoleActionsMixin, OrganisationScopedAdmin):
    """Employees, with Import / Export (CSV, XLSX) of the admin's own organisation.

    Import and export need the change permission on employees and an organisation: the
    resource is bound to ``admin_organisation(request)`` (a superuser administers no one
    organisation, so is told to sign in as the organisation's admin). An import is a preview
    (dry run) then a confirmation; only a file this login previewed can be confirmed, and a
    confirmation that no longer validates (the data changed since the preview) writes
    nothing.
    """

    form = EmployeeForm
    resource_classes = (EmployeeResource,)
    imports_session_key = "attendance_employee_imports"
    export_audit_action = "attendance.employees.exported"
    rows_noun = gettext_lazy("employees")
    # ``formats`` is a property of the mixin (and ``import_formats`` / ``export_formats``
    # read the unprefixed IMPORT_FORMATS / EXPORT_FORMATS settings): pin all three here.
    formats = (CSV, XLSX)
    import_formats = formats
    export_formats = formats
    list_display = (
        "employee_no",
        "name",
        "department",
        "approver",
        "user",
        "roles",
        "is_active",
        "month_link",
        "organisation",
    )
    list_display_links = ("employee_no", "name")
    list_filter = ("is_active", "department", "organisation")
    search_fields = (
        "employee_no",
        "name",
        "dingtalk_user_id",
        "device_pin",
        "user__username",
    )
    list_select_related = ("approver", "user", "organisation")
    autocomplete_fields = ("approver", "user")
    fields = (*EmployeeForm.Meta.fields, "created_at", "month_link")
    actions = ("assign_role", "unassign_role")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related(role_groups_prefetch("user__groups"))

    def get_readonly_fields(self, request, obj=None):
        # An employee never moves organisation: their days and audit trail stay behind.
        if obj is not None or not request.user.is_superuser:
            return ("organisation", "created_at", "month_link")
        return ("created_at", "month_link")

    @admin.display(description=gettext_lazy("Month"))
    def month_link(self, obj):
        """A link to the person's month in the app (who may open it is that page's rule)."""
        if obj is None or obj.pk is None:
            return "—"
        try:
            url = reverse("attendance:person_month", args=[obj.pk])
        except NoReverseMatch:  # the page is not deployed: no link rather than an error
            return "—"
        return format_html('<a href="{}">{}</a>', url, gettext("Open their month"))

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.fixed_organisation = admin_organisation(request)
        return form

    def has_delete_permission(self, request, obj=None):
        # Deactivate instead: deleting would lose the audit trail's subject (and is
        # PROTECTed by punches and records).
        return False

    @admin.display(description=gettext_lazy("Roles"))
    def roles(self, obj):
        return role_names_of(obj.user)

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            if not change and not request.user.is_superuser:
                organisation = admin_organisation(request)
                if organisation is None:
                    raise PermissionDenied
                obj.organisation = organisation
            super().save_model(request, obj, form, change)
            audit_record(
                actor=request.user,
                action="attendance.employee.updated" if change else "attendance.employee.created",
                organisation=obj.organisation,
                target=obj,
                data={"changed": list(form.changed_data), "employeeNo": obj.employee_no},
            )

    @staticmethod
    def _role_targets(queryset):
        for employee in queryset.select_related("organisation", "user"):
            yield (
                employee.organisation,
                employee.user_id,
                employee.employee_no,
                f"{employee} ({employee.user.get_username() if employee.user else 'no login'})",
            )


# --- day records, punches ---------------------------------------------------------------


@admin.register(AttendanceRecord)
class AttendanceRecordAdmin(ViewOnlyAdmin):
    """Read-only: a day is corrected through an adjustment request, never edited here."""

    list_display = (
        "work_date",
        "employee",
        "status",
        "source",
        "first_in",
        "last_out",
        "work_minutes",
        "late_minutes",
        "early_leave_minutes",
        "batch",
        "organisation",
    )
    list_filter = ("status", "source", "organisation")
    search_fields = ("employee__employee_no", "employee__name")
    date_hierarchy = "work_date"
    list_select_related = ("employee", "batch", "organisation")
    raw_id_fields = ("employee", "batch")
    show_full_result_count = False


@admin.register(Punch)
class PunchAdmin(ViewOnlyAdmin):
    list_display = (
        "occurred_at",
        "employee",
        "kind",
        "source",
        "work_date",
        "received_at",
        "batch",
        "organisation",
    )
    list_filter = ("kind", "source", "organisation")
    search_fields = ("employee__employee_no", "employee__name", "=source_key")
    date_hierarchy = "work_date"
    list_select_related = ("employee", "batch", "organisation")
    raw_id_fields = ("employee", "batch")
    show_full_result_count = False


# --- adjustment requests ----------------------------------------------------------------

DECISION_COMMENT = "Decided in the admin centre"


@admin.register(AdjustmentRequest)
class AdjustmentRequestAdmin(ViewOnlyAdmin):
    """Decided through the actions (the services check who may decide); never edited."""

    list_display = (
        "id",
        "employee",
        "work_date",
        "requested_first_in",
        "requested_last_out",
        "requested_status",
        "state",
        "created_at",
        "decided_by",
        "decided_at",
        "organisation",
    )
    list_filter = ("state", "requested_status", "organisation")
    search_fields = ("employee__employee_no", "employee__name", "reason")
    date_hierarchy = "work_date"
    list_select_related = ("employee", "decided_by", "organisation")
    raw_id_fields = ("employee",)
    actions = ("approve_selected", "reject_selected")  # the only way to decide here

    def has_decide_permission(self, request):
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def _decide(self, request, queryset, decide, verb: str):
        done, failed = [], []
        for adjustment in queryset.select_related("employee"):
            try:
                decide(actor=request.user, request=adjustment, comment=DECISION_COMMENT)
            except ApplicationError as exc:
                failed.append(f"#{adjustment.pk} ({adjustment.employee}): {exc.message}")
            else:
                done.append(adjustment.pk)
        approved = verb == "approved"
        if done:
            done_text = (
                gettext("Approved %(count)d correction(s).")
                if approved
                else gettext("Rejected %(count)d correction(s).")
            )
            self.message_user(request, done_text % {"count": len(done)}, messages.SUCCESS)
        if failed:
            failed_text = (
                gettext("%(count)d correction(s) not approved: %(reasons)s")
                if approved
                else gettext("%(count)d correction(s) not rejected: %(reasons)s")
            )
            self.message_user(
                request,
                failed_text % {"count": len(failed), "reasons": "; ".join(failed)},
                messages.ERROR,
            )

    @admin.action(description=gettext_lazy("Approve selected corrections"), permissions=["decide"])
    def approve_selected(self, request, queryset):
        self._decide(request, queryset, services.adjustment_request_approve, "approved")

    @admin.action(description=gettext_lazy("Reject selected corrections"), permissions=["decide"])
    def reject_selected(self, request, queryset):
        self._decide(request, queryset, services.adjustment_request_reject, "rejected")


# --- API tokens -------------------------------------------------------------------------


class TokenIssueForm(forms.Form):
    user = forms.ModelChoiceField(label=gettext_lazy("User"), queryset=User.objects.none())
    name = forms.CharField(
        label=pgettext_lazy("API token", "Name"),
        max_length=100,
        required=False,
        help_text=gettext_lazy("What the token is for."),
    )

    def __init__(self, *args, users, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = users


@admin.register(ApiToken)
class ApiTokenAdmin(OrganisationScopedAdmin):
    """Only the hash is stored; the raw token is shown once, on the page after issuing."""

    organisation_lookup = "user__employee__organisation_id"
    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("prefix", "name", "user__username")
    list_select_related = ("user",)
    fields = ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ("revoke_selected",)

    def has_change_permission(self, request, obj=None):
        return False  # view-only page: nothing about a token is edited after issuing

    def has_revoke_permission(self, request):
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        users = organisation_users(request).filter(is_active=True).order_by("username")
        form = TokenIssueForm(request.POST or None, users=users)
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Issue an API token"),
            "opts": self.opts,
            "form": form,
            "media": self.media + form.media,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        if request.method == "POST" and form.is_valid():
            token, raw = services.api_token_issue(
                actor=request.user,
                user=form.cleaned_data["user"],
                name=form.cleaned_data["name"],
            )
            self.log_addition(request, token, [{"added": {}}])
            context.update({"title": gettext("API token issued"), "token": token, "raw_token": raw})
            return TemplateResponse(request, "admin/attendance/token_issued.html", context)
        return TemplateResponse(request, "admin/attendance/token_issue.html", context)

    @admin.action(description=gettext_lazy("Revoke selected API tokens"), permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        revoked = 0
        for token in queryset.select_related("user").filter(revoked_at__isnull=True):
            services.api_token_revoke(actor=request.user, token=token)
            revoked += 1
        self.message_user(
            request, gettext("Revoked %(count)d token(s).") % {"count": revoked}, messages.SUCCESS
        )

    def _audit_deleted(self, request, token):
        employee = getattr(token.user, "employee", None)
        audit_record(
            actor=request.user,
            action="attendance.token.deleted",
            organisation=employee.organisation if employee else None,
            target_type=token._meta.label_lower,
            target_id=token.pk,
            data={"prefix": token.prefix, "username": token.user.get_username()},
        )

    def delete_model(self, request, obj):
        with transaction.atomic():
            self._audit_deleted(request, obj)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for token in queryset.select_related("user", "user__employee__organisation"):
                self._audit_deleted(request, token)
            super().delete_queryset(request, queryset)


# --- login lockouts ----------------------------------------------------------------------


@admin.register(AccessAttempt)
class LoginLockoutAdmin(admin.ModelAdmin):
    """Failed sign-ins counted by django-axes (attendance/lockouts.py), unlocked only by the
    audited actions. Attendance admins see and unlock their organisation's usernames;
    superusers see everything and also unlock addresses."""

    list_display = ("username", "ip_address", "failures_since_start", "attempt_time", "path_info")
    search_fields = ("username", "ip_address")
    ordering = ("-attempt_time",)
    fields = ("username", "ip_address", "user_agent", "path_info", "failures_since_start")
    readonly_fields = fields
    actions = ("unlock_usernames", "unlock_addresses")

    def _may_see(self, request) -> bool:
        user = request.user
        return user.is_active and (
            user.is_superuser
            or (
                getattr(user, "employee", None) is not None
                and roles.has_any_role(user, roles.ADMIN)
            )
        )

    def has_module_permission(self, request):
        return self._may_see(request)

    def has_view_permission(self, request, obj=None):
        return self._may_see(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # an unlock is an audited action, never a silent delete

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(username__in=organisation_users(request).values("username"))

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.is_superuser:
            actions.pop("unlock_addresses", None)
        return actions

    def _unlock(self, request, **target):
        try:
            cleared = lockouts.login_lockout_reset(actor=request.user, **target)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return 0
        return cleared

    @admin.action(description=gettext_lazy("Unlock the selected usernames (audited)"))
    def unlock_usernames(self, request, queryset):
        usernames = sorted({name for name in queryset.values_list("username", flat=True) if name})
        cleared = sum(self._unlock(request, username=name) for name in usernames)
        self.message_user(
            request,
            gettext("Unlocked %(names)s: %(count)d failed sign-in record(s) cleared.")
            % {"names": ", ".join(usernames) or "—", "count": cleared},
            messages.SUCCESS,
        )

    @admin.action(description=gettext_lazy("Unlock the selected addresses (audited)"))
    def unlock_addresses(self, request, queryset):
        addresses = sorted({ip for ip in queryset.values_list("ip_address", flat=True) if ip})
        cleared = sum(self._unlock(request, ip=address) for address in addresses)
        self.message_user(
            request,
            gettext("Unlocked %(addresses)s: %(count)d failed sign-in record(s) cleared.")
            % {"addresses": ", ".join(addresses) or "—", "count": cleared},
            messages.SUCCESS,
        )


# --- users ------------------------------------------------------------------------------


class UserAdmin(RoleActionsMixin, DjangoUserAdmin):
    """Django's user admin with roles, scoped to the organisation for non-superusers.

    Non-superusers see their organisation's logins (never a superuser) and logins not yet
    linked to any employee (so a login they just created can be opened and then linked on
    the employee). Roles change only through the actions; groups, permissions and the
    staff/superuser flags are read-only to them (``is_staff`` follows the admin role).
    """

    list_display = (
        "username",
        "employee_link",
        "roles",
        "email",
        "is_active",
        "is_staff",
        "last_login",
    )
    list_select_related = ("employee", "employee__organisation")
    actions = ("assign_role", "unassign_role")
    PROTECTED_FIELDS = ("is_staff", "is_superuser", "groups", "user_permissions")

    def get_queryset(self, request):
        users = super().get_queryset(request).prefetch_related(role_groups_prefetch("groups"))
        return linkable_users(request, users)

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        if request.user.is_superuser:
            return fields
        return (*fields, *self.PROTECTED_FIELDS, "last_login", "date_joined")

    def get_list_filter(self, request):
        if request.user.is_superuser:
            return super().get_list_filter(request)
        return ("is_active", "is_staff")

    @admin.display(description=gettext_lazy("Employee"), ordering="employee__employee_no")
    def employee_link(self, obj):
        employee = getattr(obj, "employee", None)
        if employee is None:
            return "—"
        return f"{employee} · {employee.organisation.name}"

    @admin.display(description=gettext_lazy("Roles"))
    def roles(self, obj):
        return role_names_of(obj)

    @staticmethod
    def _organisation_of(user):
        employee = getattr(user, "employee", None)
        return employee.organisation if employee else None

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            audit_record(
                actor=request.user,
                action="attendance.user.updated" if change else "attendance.user.created",
                organisation=self._organisation_of(obj),
                target=obj,
                # Field names only: the add form's are password1/password2, never their values.
                data={"username": obj.get_username(), "changed": list(form.changed_data)},
            )

    def user_change_password(self, request, id, form_url=""):
        with transaction.atomic():
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:  # saved
                user = self.get_object(request, id)
                audit_record(
                    actor=request.user,
                    action="attendance.user.password_changed",
                    organisation=self._organisation_of(user),
                    target=user,
                    data={"username": user.get_username()},
                )
        return response

    def _audit_deleted(self, request, user):
        audit_record(
            actor=request.user,
            action="attendance.user.deleted",
            organisation=self._organisation_of(user),
            target_type=user._meta.label_lower,
            target_id=user.pk,
            data={"username": user.get_username()},
        )

    def delete_model(self, request, obj):
        with transaction.atomic():
            self._audit_deleted(request, obj)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for user in queryset.select_related("employee__organisation"):
                self._audit_deleted(request, user)
            super().delete_queryset(request, queryset)

    @staticmethod
    def _role_targets(queryset):
        for user in queryset.select_related("employee", "employee__organisation"):
            employee = getattr(user, "employee", None)
            yield (
                employee.organisation if employee else None,
                user.pk,
                None,
                f"{user.get_username()} ({employee if employee else 'no employee'})",
            )


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, UserAdmin)
