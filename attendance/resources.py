"""Employees in and out of a spreadsheet (the admin's Import / Export, django-import-export).

One :class:`EmployeeResource` is bound to ONE organisation: it reads, creates and updates
only that organisation's employees, so a row whose number exists in another organisation
creates a new employee here and never touches theirs.

- Every cell is text. Identifiers (employee number, approver, DingTalk user id, device
  PIN) are never cast: ``00042`` stays ``00042``. A spreadsheet cell that already holds a
  number (or a date) in an identifier column is refused with a row error rather than
  guessed at: the spreadsheet has dropped any leading zeros before we see it.
- The approver column holds the approver's employee number, looked up in the same
  organisation (list an approver before the people they approve when both are new).
- Per-organisation uniqueness (number, DingTalk user id, device PIN) and the model's own
  field checks are row errors in the preview, never a database error.
- Exported text that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab,
  carriage return first) is prefixed with ``'``; an import strips that prefix again, so an
  export imports back unchanged.
- A real (not dry-run) import writes one summary audit event,
  ``attendance.employees.imported``, in the import's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from import_export import fields, resources, widgets
from import_export.results import RowResult

from attendance.models import Employee, Organisation
from audit.services import audit_record

AUDIT_ACTION = "attendance.employees.imported"

# What a spreadsheet runs as a formula when a cell starts with it (OWASP "CSV injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
FORMULA_ESCAPE = "'"

UNIQUE_IN_ORGANISATION = {
    "employee_no": gettext_lazy("An employee with this number already exists in the organisation."),
    "dingtalk_user_id": gettext_lazy("Another employee already has this DingTalk user ID."),
    "device_pin": gettext_lazy("Another employee already has this device PIN."),
}


def neutralise_formula(value):
    """``'``-prefix text a spreadsheet would otherwise evaluate; anything else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return FORMULA_ESCAPE + value
    return value


def restore_formula_escape(text: str) -> str:
    """Undo :func:`neutralise_formula` (``'=x`` → ``=x``), so an export imports back as is."""
    if text.startswith(FORMULA_ESCAPE) and text[1:].startswith(FORMULA_TRIGGERS):
        return text[1:]
    return text


def cell_text(value, *, identifier: bool = False) -> str:
    """A cell as text, stripped. CSV cells are already strings (tablib never casts them);
    an XLSX cell may hold a number, a boolean or a date. Those are refused in identifier
    columns (their leading zeros are already gone) and written out plainly elsewhere."""
    if value is None:
        return ""
    if not isinstance(value, str):
        if identifier:
            raise ValueError(
                _(
                    "The cell holds a %(type)s (%(value)r), not text. Format the column as "
                    "Text in the spreadsheet so numbers keep their leading zeros."
                )
                % {"type": type(value).__name__, "value": value}
            )
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif isinstance(value, dt.datetime | dt.date | dt.time):
            value = value.isoformat()
        value = str(value)
    return restore_formula_escape(value.strip())


class TextWidget(widgets.CharWidget):
    """Text in, text out: no casting either way (``render`` keeps strings even for XLSX)."""

    def __init__(self, *, identifier: bool = False):
        super().__init__(coerce_to_string=True, allow_blank=True)
        self.identifier = identifier

    def clean(self, value, row=None, **kwargs):
        return cell_text(value, identifier=self.identifier)

    def render(self, value, obj=None, **kwargs):
        return "" if value is None else str(value)


class ActiveWidget(widgets.BooleanWidget):
    """``1``/``0`` (also true/false, yes/no). Anything else is a row error, never a silent
    ``False`` (the library's BooleanWidget reads ``"yes"`` as False); a blank cell keeps the
    current value (the field does not save None)."""

    TRUE_TEXT = frozenset({"1", "true", "yes", "y"})
    FALSE_TEXT = frozenset({"0", "false", "no", "n"})

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, bool):
            return value
        text = cell_text(value).lower()
        if text == "":
            return None
        if text in self.TRUE_TEXT:
            return True
        if text in self.FALSE_TEXT:
            return False
        raise ValueError(f"Write 1 (active) or 0 (inactive), not {text!r}.")

    def render(self, value, obj=None, **kwargs):
        if value is None:
            return ""
        return "1" if value else "0"


class ApproverWidget(widgets.ForeignKeyWidget):
    """The approver by employee number, only among the bound organisation's employees."""

    def __init__(self, organisation: Organisation | None = None):
        super().__init__(Employee, field="employee_no")
        self.organisation = organisation

    def get_queryset(self, value, row, *args, **kwargs):
        return Employee.objects.filter(organisation=self.organisation)

    def clean(self, value, row=None, **kwargs):
        number = cell_text(value, identifier=True)
        if not number:
            return None
        try:
            return self.get_queryset(number, row).get(employee_no=number)
        except Employee.DoesNotExist:
            raise ValueError(
                _(
                    "No employee numbered %(number)s in the organisation (a new approver must "
                    "come before the people they approve)."
                )
                % {"number": number}
            ) from None

    def render(self, value, obj=None, **kwargs):
        return "" if value is None else value.employee_no


def _text_field(name: str, *, identifier: bool = False) -> fields.Field:
    return fields.Field(attribute=name, column_name=name, widget=TextWidget(identifier=identifier))


class OrganisationResource(resources.ModelResource):
    """A resource bound to ONE organisation (employees here, event participants in
    events/resources.py): it reads and writes only that organisation's rows, audits a real
    import once, and neutralises formulas on export.

    Subclasses name ``audit_action`` (the import's summary event), ``bound_widgets`` (the
    fields whose widgets look rows up in the organisation) and ``unbound_refusal``."""

    audit_action = ""
    bound_widgets: tuple[str, ...] = ()
    unbound_refusal = gettext_lazy("An import or export works on one organisation.")

    def __init__(self, organisation: Organisation | None = None, **kwargs):
        # ``organisation`` may only be missing for looking at the columns: the library's
        # export form instantiates resource classes without arguments to list them.
        super().__init__(**kwargs)
        self.organisation = organisation
        # self.fields is this instance's deep copy: its widgets can hold the organisation.
        for name in self.bound_widgets:
            self.fields[name].widget.organisation = organisation

    def _bound_organisation(self) -> Organisation:
        if self.organisation is None:
            raise ValueError(self.unbound_refusal)
        return self.organisation

    def import_data(self, dataset, *args, **kwargs):
        self._bound_organisation()
        return super().import_data(dataset, *args, **kwargs)

    def export(self, queryset=None, **kwargs):
        self._bound_organisation()
        return super().export(queryset, **kwargs)

    def after_import(self, dataset, result, **kwargs):
        """One summary audit event for a real import, inside the import's transaction (so
        it is rolled back with the rows if the import is).

        ``ModelResource.after_import`` is deliberately not called: it resets the table's id
        sequence to ``max(id)``, which this import never needs (it never writes ids) and
        which could rewind the sequence under a concurrent insert.
        """
        # The library adds ``dry_run`` to these kwargs only once it has imported a row; an
        # empty file writes nothing, and an unknown flag counts as a dry run.
        if kwargs.get("dry_run", True):
            return
        totals = result.totals
        audit_record(
            actor=kwargs.get("user"),
            action=self.audit_action,
            organisation=self.organisation,
            data={
                "new": totals[RowResult.IMPORT_TYPE_NEW],
                "update": totals[RowResult.IMPORT_TYPE_UPDATE],
                "skip": totals[RowResult.IMPORT_TYPE_SKIP],
                "error": totals[RowResult.IMPORT_TYPE_ERROR]
                + totals[RowResult.IMPORT_TYPE_INVALID],
                "rows": result.total_rows,
                "fileName": str(kwargs.get("file_name") or "")[:200],
            },
        )

    # --- export ---------------------------------------------------------------------------

    def export_field(self, field, instance, **kwargs):
        return neutralise_formula(super().export_field(field, instance, **kwargs))


class EmployeeResource(OrganisationResource):
    employee_no = _text_field("employee_no", identifier=True)
    name = _text_field("name")
    department = _text_field("department")
    dingtalk_user_id = _text_field("dingtalk_user_id", identifier=True)
    device_pin = _text_field("device_pin", identifier=True)
    is_active = fields.Field(
        attribute="is_active",
        column_name="is_active",
        widget=ActiveWidget(),
        saves_null_values=False,
    )
    approver = fields.Field(attribute="approver", column_name="approver", widget=ApproverWidget())

    class Meta:
        model = Employee
        fields = (
            "employee_no",
            "name",
            "department",
            "dingtalk_user_id",
            "device_pin",
            "is_active",
            "approver",
        )
        import_id_fields = ("employee_no",)
        skip_unchanged = True
        report_skipped = True
        use_transactions = True
        name = "Employees"

    audit_action = AUDIT_ACTION
    bound_widgets = ("approver",)
    unbound_refusal = gettext_lazy("An employee import or export works on one organisation.")

    def __init__(self, organisation: Organisation | None = None, **kwargs):
        super().__init__(organisation, **kwargs)
        self._repeated_numbers: set[str] = set()

    # --- scoping: only the bound organisation, ever -------------------------------------

    def get_queryset(self):
        # Also what the instance loader searches for an existing row's employee number.
        employees = Employee.objects.filter(organisation=self._bound_organisation())
        return employees.select_related("approver")

    def init_instance(self, row=None):
        return Employee(organisation=self._bound_organisation())

    def filter_export(self, queryset, **kwargs):
        return queryset.filter(organisation=self._bound_organisation())

    # --- import ---------------------------------------------------------------------------

    def before_import(self, dataset, **kwargs):
        self._repeated_numbers = set()
        if dataset.headers and "employee_no" in dataset.headers:
            numbers = Counter()
            for value in dataset["employee_no"]:
                try:
                    numbers[cell_text(value, identifier=True)] += 1
                except ValueError:
                    continue  # reported on its row
            self._repeated_numbers = {n for n, count in numbers.items() if n and count > 1}

    def before_import_row(self, row, **kwargs):
        # The number finds the existing row, so check it before the lookup: a bad cell is
        # then a row error on the number rather than an exception in the instance loader.
        try:
            number = cell_text(row.get("employee_no"), identifier=True)
        except ValueError as exc:
            raise ValidationError({"employee_no": str(exc)}) from None
        if not number:
            raise ValidationError({"employee_no": _("Every row needs an employee number.")})

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        """Field checks of the model, then the per-organisation unique constraints and the
        approver rules, all as row errors (the preview lists them; nothing is written)."""
        errors = dict(import_validation_errors or {})
        try:
            instance.full_clean(
                exclude=[*errors, "organisation", "user"],
                validate_unique=False,
                validate_constraints=False,
            )
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)

        def add(field, message):
            errors.setdefault(field, []).append(ValidationError(message))

        if instance.organisation_id != self.organisation.pk:
            add("employee_no", _("The employee belongs to another organisation."))
        if instance.employee_no in self._repeated_numbers:
            add("employee_no", _("This employee number appears more than once in the file."))
        others = Employee.objects.filter(organisation=self.organisation)
        if instance.pk is not None:
            others = others.exclude(pk=instance.pk)
        for field, message in UNIQUE_IN_ORGANISATION.items():
            value = getattr(instance, field)
            if field not in errors and value and others.filter(**{field: value}).exists():
                add(field, message)
        approver = instance.approver
        if approver is not None:
            if instance.pk is not None and approver.pk == instance.pk:
                add("approver", _("An employee cannot approve their own requests."))
            elif approver.organisation_id != self.organisation.pk:
                add("approver", _("The approver must be in the same organisation."))
        if errors:
            raise ValidationError(errors)

    def before_save_instance(self, instance, row, **kwargs):
        # Belt and braces: validate_instance already refused this.
        if instance.organisation_id != self.organisation.pk:
            raise ValidationError("The employee belongs to another organisation.")
