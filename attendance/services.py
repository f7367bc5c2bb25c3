"""Every attendance write. Each service is atomic, takes an explicit actor and writes its
audit event in the same transaction as the change."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext

from attendance import metrics, schedule
from attendance.choices import (
    CORRECTED_SOURCES,
    PunchKind,
    PunchSource,
    RecordSource,
    RecordStatus,
    RequestState,
)
from attendance.models import (
    AdjustmentRequest,
    ApiToken,
    AttendanceRecord,
    Employee,
    Organisation,
    Punch,
)
from audit.services import audit_record
from common import context as request_context
from common import db_errors, roles
from common.exceptions import Forbidden, NotFound, RequestStateConflict, ValidationFailed, _camel
from common.net import ip_allowed, parse_network

User = get_user_model()

# A night shift's out-punch after midnight still belongs to the day its in-punch started,
# as long as it comes within this long of that in-punch.
NIGHT_SHIFT_MAX_HOURS = 20


def _local_today(organisation: Organisation) -> dt.date:
    return timezone.localtime(timezone.now(), organisation.tz).date()


def _record_snapshot(record: AttendanceRecord | None) -> dict | None:
    if record is None:
        return None
    return {
        "firstIn": record.first_in.isoformat() if record.first_in else None,
        "lastOut": record.last_out.isoformat() if record.last_out else None,
        "workMinutes": record.work_minutes,
        "lateMinutes": record.late_minutes,
        "earlyLeaveMinutes": record.early_leave_minutes,
        "status": record.status,
        "source": record.source,
    }


# --- punches and day records ------------------------------------------------------------


def _work_date_for_punch(employee: Employee, kind: str, occurred_at: dt.datetime) -> dt.date:
    local_date = timezone.localtime(occurred_at, employee.organisation.tz).date()
    if kind != PunchKind.OUT:
        return local_date
    previous = (
        Punch.objects.filter(employee=employee, occurred_at__lt=occurred_at)
        .order_by("-occurred_at")
        .only("kind", "work_date", "occurred_at")
        .first()
    )
    if (
        previous is not None
        and previous.kind == PunchKind.IN
        and previous.work_date < local_date
        and occurred_at - previous.occurred_at <= dt.timedelta(hours=NIGHT_SHIFT_MAX_HOURS)
    ):
        return previous.work_date
    return local_date


def _day_for_update(employee: Employee, work_date: dt.date) -> AttendanceRecord | None:
    return (
        AttendanceRecord.objects.select_for_update()
        .filter(employee=employee, work_date=work_date)
        .first()
    )


def _insert_day(*, employee: Employee, work_date: dt.date, values: dict) -> AttendanceRecord | None:
    """Insert a day, or None when another transaction (an import, a punch) inserted it first
    and has committed by now: the caller then locks that row and decides again. (A lock on
    a row that does not exist yet is no lock: both inserts meet at the unique index.)"""
    try:
        with transaction.atomic():
            return AttendanceRecord.objects.create(
                organisation_id=employee.organisation_id,
                employee=employee,
                work_date=work_date,
                **values,
            )
    except IntegrityError as exc:
        if db_errors.constraint_name_of(exc) != "record_employee_day":
            raise
        return None


def attendance_record_rebuild(*, employee: Employee, work_date: dt.date) -> AttendanceRecord:
    """Re-derive one day from its punches. A day an approver corrected (source adjustment or
    manual) keeps the correction: later punches are stored but do not overwrite it."""
    record = _day_for_update(employee, work_date)
    if record is not None and record.source in CORRECTED_SOURCES:
        return record
    punches = list(
        Punch.objects.filter(employee=employee, work_date=work_date).values_list(
            "occurred_at", "kind"
        )
    )
    result = schedule.judge_day(employee.organisation, work_date, punches)
    values = {**result.record_fields(), "source": RecordSource.PUNCH, "batch": None}
    if record is None:
        created = _insert_day(employee=employee, work_date=work_date, values=values)
        if created is not None:
            return created
        record = _day_for_update(employee, work_date)
        if record.source in CORRECTED_SOURCES:
            return record
    for field, value in values.items():
        setattr(record, field, value)
    record.save(update_fields=[*values.keys(), "updated_at"])
    return record


@db_errors.retry_transient()
@transaction.atomic
def punch_create(
    *,
    actor,
    employee: Employee,
    kind: str,
    client_id: str | None = None,
    occurred_at: dt.datetime | None = None,
    source: str = PunchSource.WEB,
) -> tuple[Punch, AttendanceRecord, bool]:
    """Clock in or out. With a ``client_id`` a resend returns the first punch (created=False)."""
    if kind not in (PunchKind.IN, PunchKind.OUT):
        raise ValidationFailed(fields={"kind": [gettext("Must be 'in' or 'out'.")]})
    if not employee.is_active:
        raise Forbidden(gettext("Inactive employees cannot punch."))
    key_part = client_id or uuid.uuid4().hex
    source_key = f"{source}:{employee.pk}:{key_part}"
    # Serialise one employee's punches so night-shift attribution sees the previous punch,
    # and so two concurrent resends of one client_id find each other instead of one of them
    # failing on the unique source key. NO KEY UPDATE: a running import's foreign-key checks
    # take KEY SHARE on the same employee at their COMMIT; FOR UPDATE would block them while
    # this punch waits for a day the import holds, and PostgreSQL would kill one of the two.
    Employee.objects.select_for_update(no_key=True).filter(pk=employee.pk).first()
    existing = Punch.objects.filter(
        organisation_id=employee.organisation_id, source_key=source_key
    ).first()
    if existing is not None:
        # The day may have been rebuilt or rolled back since; derive it again if missing.
        record = AttendanceRecord.objects.filter(
            employee=employee, work_date=existing.work_date
        ).first() or attendance_record_rebuild(employee=employee, work_date=existing.work_date)
        return existing, record, False

    now = timezone.now()
    occurred_at = occurred_at or now
    punch = Punch.objects.create(
        organisation_id=employee.organisation_id,
        employee=employee,
        kind=kind,
        occurred_at=occurred_at,
        received_at=now,
        work_date=_work_date_for_punch(employee, kind, occurred_at),
        source=source,
        source_key=source_key,
    )
    record = attendance_record_rebuild(employee=employee, work_date=punch.work_date)
    audit_record(
        actor=actor,
        action="attendance.punch.created",
        organisation=employee.organisation,
        target=punch,
        data={"kind": kind, "workDate": punch.work_date.isoformat(), "status": record.status},
    )
    transaction.on_commit(lambda: metrics.PUNCHES.labels(kind=kind, source=source).inc())
    return punch, record, True


# --- adjustment requests ----------------------------------------------------------------

ADJUSTABLE_STATUSES = tuple(
    s for s in RecordStatus.values if s not in (RecordStatus.ADJUSTED, RecordStatus.PARTIAL)
)


def _validate_request_times(organisation, work_date, first_in, last_out) -> dict:
    errors: dict[str, list[str]] = {}
    tz = organisation.tz
    now = timezone.now()
    for field, value in (("firstIn", first_in), ("lastOut", last_out)):
        if value is None:
            continue
        local_day = timezone.localtime(value, tz).date()
        if local_day not in (work_date, work_date + dt.timedelta(days=1)):
            errors[field] = [
                gettext("Must fall on the work date (or the next morning for a night shift).")
            ]
        elif value > now:
            errors[field] = [gettext("Cannot be in the future.")]
    if first_in and last_out and last_out < first_in:
        errors.setdefault("lastOut", []).append(gettext("Must not be before firstIn."))
    return errors


@db_errors.retry_transient()
@transaction.atomic
def adjustment_request_create(
    *,
    actor,
    employee: Employee,
    work_date: dt.date,
    reason: str,
    first_in: dt.datetime | None = None,
    last_out: dt.datetime | None = None,
    status: str = "",
) -> AdjustmentRequest:
    organisation = employee.organisation
    errors: dict[str, list[str]] = {}
    today = _local_today(organisation)
    if work_date > today:
        errors["workDate"] = [gettext("Corrections cannot be requested for future dates.")]
    elif work_date < today - dt.timedelta(days=settings.CORRECTION_MAX_AGE_DAYS):
        # The same window as the API's serializer: pages and the shell are held to it too.
        errors["workDate"] = [
            gettext("Corrections can be requested for the last %(days)s days only.")
            % {"days": settings.CORRECTION_MAX_AGE_DAYS}
        ]
    if not (reason or "").strip():
        errors["reason"] = [gettext("A reason is required.")]
    if not (first_in or last_out or status):
        errors["nonFieldErrors"] = [gettext("Ask for a firstIn, a lastOut or a status.")]
    if status and status not in ADJUSTABLE_STATUSES:
        errors["status"] = [
            gettext("Must be one of: %(values)s.") % {"values": ", ".join(ADJUSTABLE_STATUSES)}
        ]
    if "workDate" not in errors:
        errors.update(_validate_request_times(organisation, work_date, first_in, last_out))
    if errors:
        raise ValidationFailed(fields=errors)
    try:
        with transaction.atomic():
            request = AdjustmentRequest.objects.create(
                organisation=organisation,
                employee=employee,
                work_date=work_date,
                requested_first_in=first_in,
                requested_last_out=last_out,
                requested_status=status,
                reason=reason.strip(),
                created_by=actor,
            )
    except IntegrityError as exc:
        # A registered constraint (one_pending_request_per_day: REQUEST_STATE_CONFLICT) is
        # the client's conflict; any other violation is a bug and surfaces as one
        # (INTERNAL_ERROR), not as "a pending request exists".
        error = db_errors.constraint_error(exc)
        if error is None:
            raise
        raise error from exc
    audit_record(
        actor=actor,
        action="attendance.request.created",
        organisation=organisation,
        target=request,
        data={
            "employeeNo": employee.employee_no,
            "workDate": work_date.isoformat(),
            "firstIn": first_in.isoformat() if first_in else None,
            "lastOut": last_out.isoformat() if last_out else None,
            "status": status,
        },
    )
    return request


def can_decide(user, request: AdjustmentRequest) -> bool:
    """The employee's approver or an admin of the organisation, never the requester."""
    actor_employee = getattr(user, "employee", None)
    if actor_employee is None or actor_employee.organisation_id != request.organisation_id:
        return False
    if request.employee_id == actor_employee.pk:
        return False
    if roles.has_any_role(user, roles.ADMIN):
        return True
    return (
        roles.has_any_role(user, roles.APPROVER)
        and request.employee.approver_id == actor_employee.pk
    )


def _lock_request(request_id: int, organisation_id: int) -> AdjustmentRequest:
    request = (
        AdjustmentRequest.objects.select_for_update(of=("self",))
        .select_related("employee", "employee__organisation")
        .filter(pk=request_id, organisation_id=organisation_id)
        .first()
    )
    if request is None:
        raise NotFound()
    return request


def _pending_request_to_decide(actor, request: AdjustmentRequest) -> AdjustmentRequest:
    """The request, locked, once the actor may decide it and it is still pending."""
    request = _lock_request(request.pk, request.organisation_id)
    if not can_decide(actor, request):
        raise Forbidden(
            gettext("Only the employee's approver or an admin can decide this request.")
        )
    if request.state != RequestState.PENDING:
        raise RequestStateConflict(
            gettext("The request is %(state)s, not pending.")
            % {"state": str(RequestState(request.state).label).lower()}
        )
    return request


def _corrected_values(request: AdjustmentRequest, record: AttendanceRecord | None) -> dict:
    """The day as the approved request makes it: the asked times over the day's own."""
    first_in = request.requested_first_in or (record.first_in if record else None)
    last_out = request.requested_last_out or (record.last_out if record else None)
    if first_in and last_out and last_out < first_in:
        raise RequestStateConflict(gettext("The corrected times would end before they start."))
    return {
        "first_in": first_in,
        "last_out": last_out,
        "work_minutes": schedule.whole_minutes(last_out - first_in) if first_in and last_out else 0,
        "late_minutes": 0,
        "early_leave_minutes": 0,
        "status": request.requested_status or RecordStatus.ADJUSTED,
        "source": RecordSource.ADJUSTMENT,
        "batch": None,
        "note": f"Correction #{request.pk} approved",
    }


@db_errors.retry_transient()
@transaction.atomic
def adjustment_request_approve(
    *, actor, request: AdjustmentRequest, comment: str = ""
) -> AdjustmentRequest:
    request = _pending_request_to_decide(actor, request)

    record = _day_for_update(request.employee, request.work_date)
    inserted = None
    if record is None:
        values = _corrected_values(request, None)
        inserted = _insert_day(
            employee=request.employee, work_date=request.work_date, values=values
        )
        # None: an import wrote the day meanwhile; correct that one instead.
        record = inserted or _day_for_update(request.employee, request.work_date)
    before = None if inserted else _record_snapshot(record)
    if not inserted:
        values = _corrected_values(request, record)
        for field, value in values.items():
            setattr(record, field, value)
        record.save(update_fields=[*values.keys(), "updated_at"])

    request.state = RequestState.APPROVED
    request.decided_by = actor
    request.decided_at = timezone.now()
    request.decision_comment = comment or ""
    request.save(update_fields=["state", "decided_by", "decided_at", "decision_comment"])
    audit_record(
        actor=actor,
        action="attendance.request.approved",
        organisation=request.employee.organisation,
        target=request,
        data={
            "comment": comment,
            "record": record.pk,
            "before": before,
            "after": _record_snapshot(record),
        },
    )
    transaction.on_commit(lambda: metrics.REQUEST_DECISIONS.labels(outcome="approved").inc())
    return request


@db_errors.retry_transient()
@transaction.atomic
def adjustment_request_reject(
    *, actor, request: AdjustmentRequest, comment: str = ""
) -> AdjustmentRequest:
    request = _pending_request_to_decide(actor, request)
    request.state = RequestState.REJECTED
    request.decided_by = actor
    request.decided_at = timezone.now()
    request.decision_comment = comment or ""
    request.save(update_fields=["state", "decided_by", "decided_at", "decision_comment"])
    audit_record(
        actor=actor,
        action="attendance.request.rejected",
        organisation=request.employee.organisation,
        target=request,
        data={"comment": comment},
    )
    transaction.on_commit(lambda: metrics.REQUEST_DECISIONS.labels(outcome="rejected").inc())
    return request


@db_errors.retry_transient()
@transaction.atomic
def adjustment_request_cancel(*, actor, request: AdjustmentRequest) -> AdjustmentRequest:
    request = _lock_request(request.pk, request.organisation_id)
    if request.employee.user_id != actor.pk:
        raise Forbidden(gettext("Only the employee who asked can cancel a request."))
    if request.state != RequestState.PENDING:
        raise RequestStateConflict(
            gettext("The request is %(state)s, not pending.")
            % {"state": str(RequestState(request.state).label).lower()}
        )
    request.state = RequestState.CANCELLED
    request.decided_by = actor
    request.decided_at = timezone.now()
    request.save(update_fields=["state", "decided_by", "decided_at"])
    audit_record(
        actor=actor,
        action="attendance.request.cancelled",
        organisation=request.employee.organisation,
        target=request,
    )
    transaction.on_commit(lambda: metrics.REQUEST_DECISIONS.labels(outcome="cancelled").inc())
    return request


# --- roles and provisioning -------------------------------------------------------------

# What each role may do in the admin centre (Django model permissions).
ROLE_MODEL_PERMISSIONS = {
    roles.ADMIN: {
        "attendance": [
            "organisation",
            "employee",
            "attendancerecord",
            "adjustmentrequest",
            "apitoken",
            "punch",
        ],
        "audit": ["auditevent"],
        "imports": ["importbatch"],
        "auth": ["user"],
    },
}
READ_ONLY_MODELS = {("audit", "auditevent"), ("attendance", "punch")}


def role_groups_ensure() -> dict[str, Group]:
    """Create the four role groups (and the admin role's permissions) when missing."""
    groups = {}
    for name in roles.ALL:
        group, created = Group.objects.get_or_create(name=name)
        groups[name] = group
        wanted = ROLE_MODEL_PERMISSIONS.get(name)
        if wanted and (created or not group.permissions.exists()):
            permissions = []
            for app_label, models in wanted.items():
                for model in models:
                    actions = (
                        ["view"]
                        if (app_label, model) in READ_ONLY_MODELS
                        else ["view", "add", "change"]
                    )
                    if (app_label, model) == ("attendance", "apitoken"):
                        actions.append("delete")
                    permissions += Permission.objects.filter(
                        content_type__app_label=app_label,
                        content_type__model=model,
                        codename__in=[f"{action}_{model}" for action in actions],
                    )
            group.permissions.set(permissions)
    return groups


def _role_group(role: str) -> Group:
    name = roles.normalise(role)
    if name is None:
        raise ValidationFailed(
            fields={"role": [f"Unknown role {role!r}; use one of: {', '.join(roles.SHORT_NAMES)}."]}
        )
    return role_groups_ensure()[name]


def _sync_staff_flag(user) -> None:
    """Admins use the admin centre (Django admin), which needs ``is_staff``."""
    wants_staff = user.is_superuser or user.groups.filter(name=roles.ADMIN).exists()
    if user.is_staff != wants_staff:
        user.is_staff = wants_staff
        user.save(update_fields=["is_staff"])


def _apply_role(user, group: Group, assign: bool) -> bool:
    has = user.groups.filter(pk=group.pk).exists()
    if has == assign:
        return False
    (user.groups.add if assign else user.groups.remove)(group)
    user.__dict__.pop("_attendance_roles", None)
    _sync_staff_flag(user)
    return True


def _check_same_organisation(actor, user) -> Organisation:
    actor_employee = getattr(actor, "employee", None)
    target_employee = getattr(user, "employee", None)
    if actor_employee is not None and (
        target_employee is None or target_employee.organisation_id != actor_employee.organisation_id
    ):
        raise NotFound()
    return target_employee.organisation if target_employee else None


@transaction.atomic
def role_assign(*, actor, user, role: str) -> bool:
    """Give ``user`` the role; False when they already had it."""
    group = _role_group(role)
    organisation = _check_same_organisation(actor, user)
    changed = _apply_role(user, group, assign=True)
    if changed:
        audit_record(
            actor=actor,
            action="attendance.role.assigned",
            organisation=organisation,
            target=user,
            data={"role": group.name, "username": user.get_username()},
        )
    return changed


@transaction.atomic
def role_unassign(*, actor, user, role: str) -> bool:
    group = _role_group(role)
    organisation = _check_same_organisation(actor, user)
    if group.name == roles.ADMIN and user.pk == getattr(actor, "pk", None):
        raise Forbidden(gettext("You cannot remove your own admin role."))
    changed = _apply_role(user, group, assign=False)
    if changed:
        audit_record(
            actor=actor,
            action="attendance.role.unassigned",
            organisation=organisation,
            target=user,
            data={"role": group.name, "username": user.get_username()},
        )
    return changed


@transaction.atomic
def roles_batch_apply(
    *,
    actor,
    organisation: Organisation,
    role: str,
    assign: bool,
    user_ids: Iterable[int] = (),
    employee_nos: Iterable[str] = (),
) -> dict:
    """Assign or unassign one role for many people; one summary audit event.

    Answers ``{role, requested, updated, unchanged, missing, inactive}``: ``missing`` lists
    the ids/numbers that name nobody (with a login) in the organisation, ``inactive`` those
    whose user or employee is deactivated (left untouched).
    """
    group = _role_group(role)
    user_ids = list(dict.fromkeys(user_ids))
    employee_nos = list(dict.fromkeys(str(no).strip() for no in employee_nos))
    employees = Employee.objects.filter(organisation=organisation).select_related("user")
    by_user = {e.user_id: e for e in employees.filter(user_id__in=user_ids)} if user_ids else {}
    by_no = (
        {e.employee_no: e for e in employees.filter(employee_no__in=employee_nos)}
        if employee_nos
        else {}
    )

    requested = [("userId", uid, by_user.get(uid)) for uid in user_ids] + [
        ("employeeNo", no, by_no.get(no)) for no in employee_nos
    ]
    updated, unchanged, missing, inactive = [], [], [], []
    seen_users = set()
    for _, ident, employee in requested:
        if employee is None or employee.user is None:
            missing.append(ident)
            continue
        user = employee.user
        if not (user.is_active and employee.is_active):
            inactive.append(ident)
            continue
        if user.pk in seen_users:
            unchanged.append(ident)
            continue
        seen_users.add(user.pk)
        if not assign and group.name == roles.ADMIN and user.pk == actor.pk:
            unchanged.append(ident)
            continue
        (updated if _apply_role(user, group, assign) else unchanged).append(ident)
    result = {
        "role": group.name,
        "requested": len(requested),
        "updated": updated,
        "unchanged": unchanged,
        "missing": missing,
        "inactive": inactive,
    }
    audit_record(
        actor=actor,
        action="attendance.role.batch_assigned" if assign else "attendance.role.batch_unassigned",
        organisation=organisation,
        target_type="auth.group",
        target_id=group.pk,
        data=result,
    )
    return result


@transaction.atomic
def user_provision(
    *,
    actor,
    organisation: Organisation,
    username: str,
    employee_no: str,
    name: str,
    role_names: Iterable[str] = (roles.EMPLOYEE,),
    password: str | None = None,
    email: str = "",
    department: str = "",
    approver: Employee | None = None,
) -> tuple[Employee, bool]:
    """Create or update a login with its employee and roles (idempotent by username)."""
    user, user_created = User.objects.get_or_create(username=username, defaults={"email": email})
    if password:
        user.set_password(password)
        user.save(update_fields=["password"])
    elif user_created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    employee = Employee.objects.filter(organisation=organisation, employee_no=employee_no).first()
    if employee is None:
        employee = Employee.objects.create(
            organisation=organisation,
            employee_no=employee_no,
            name=name,
            department=department,
            user=user,
            approver=approver,
        )
    else:
        employee.name, employee.user = name, user
        employee.department = department or employee.department
        employee.approver = approver or employee.approver
        employee.save(update_fields=["name", "user", "department", "approver"])
    groups = role_groups_ensure()
    for role in role_names:
        name_ = roles.normalise(role)
        if name_ is None:
            raise ValidationFailed(fields={"role": [f"Unknown role {role!r}."]})
        _apply_role(user, groups[name_], assign=True)
    audit_record(
        actor=actor,
        action="attendance.user.provisioned",
        organisation=organisation,
        target=user,
        data={
            "username": username,
            "employeeNo": employee_no,
            "roles": sorted(roles.user_roles(user)),
            "created": user_created,
        },
    )
    return employee, user_created


# --- exports ----------------------------------------------------------------------------


def _export_scope(user) -> str:
    """Which day records an export of ``user`` can hold (attendance.selectors.visible_employees):
    the whole organisation, the approver's own and their reports', or only their own."""
    if roles.has_any_role(user, roles.ADMIN):
        return "organisation"
    if roles.has_any_role(user, roles.APPROVER):
        return "self_and_reports"
    return "self"


@transaction.atomic
def attendance_records_export_audit(*, actor, filters: dict) -> None:
    """Who exported day records, with the filters as given and the rows they could cover;
    written when the export starts (the CSV streams afterwards)."""
    audit_record(
        actor=actor,
        action="attendance.records.exported",
        organisation=actor.employee.organisation,
        data={
            "filters": {
                name: value.isoformat() if isinstance(value, dt.date) else value
                for name, value in filters.items()
                if value not in (None, "")
            },
            "scope": _export_scope(actor),
        },
    )


# --- API tokens -------------------------------------------------------------------------

TOKEN_PREFIX = "att_"  # noqa: S105 (a marker, not a secret)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def api_token_issue(*, actor, user, name: str = "") -> tuple[ApiToken, str]:
    """Issue a bearer token; the raw token is returned once and only its hash is kept.

    An actor who is not a superuser may issue only for people of their own organisation,
    and never for a superuser (a token acts with its owner's full rights)."""
    if actor is not None and not actor.is_superuser:
        actor_employee = getattr(actor, "employee", None)
        target_employee = getattr(user, "employee", None)
        same_organisation = (
            actor_employee is not None
            and target_employee is not None
            and actor_employee.organisation_id == target_employee.organisation_id
        )
        if user.is_superuser or not same_organisation:
            raise Forbidden(gettext("You can issue tokens only for people of your organisation."))
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=raw[:10], key_hash=hash_token(raw))
    employee = getattr(user, "employee", None)
    audit_record(
        actor=actor,
        action="attendance.token.issued",
        organisation=employee.organisation if employee else None,
        target=token,
        data={"username": user.get_username(), "name": name, "prefix": token.prefix},
    )
    return token, raw


@transaction.atomic
def api_token_revoke(*, actor, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        employee = getattr(token.user, "employee", None)
        audit_record(
            actor=actor,
            action="attendance.token.revoked",
            organisation=employee.organisation if employee else None,
            target=token,
            data={"prefix": token.prefix},
        )
    return token


# --- organisation settings --------------------------------------------------------------

SETTINGS_FIELDS = (
    "time_zone",
    "work_start",
    "work_end",
    "grace_minutes",
    "workdays",
    "ip_allowlist",
    "auto_absence_delay_minutes",
    "audit_retention_days",
)


def allowlist_self_lockout_error(*, actor, organisation: Organisation, allowlist) -> str | None:
    """Why saving ``allowlist`` would shut out the admin saving it, or None: the list leaves
    out the address of the current request and the actor belongs to the organisation. The
    admin centre's form asks before saving; ``organisation_settings_update`` refuses."""
    current = request_context.current()
    employee = getattr(actor, "employee", None) if actor is not None else None
    if not current.request_id or employee is None or employee.organisation_id != organisation.pk:
        return None  # no request (shell, command) or not one of the organisation's people
    if ip_allowed(current.ip, allowlist or []):
        return None
    return gettext(
        "This list does not include your own address (%(address)s): saving it would lock "
        "you out. Add your address or network to the list first."
    ) % {"address": current.ip or gettext("unknown")}


def retention_below_minimum_error(days) -> str | None:
    """Why ``days`` cannot be the organisation's audit retention, or None. The audit table is
    shared by every organisation and pruned by whole months, so an organisation may only
    lengthen the deployment's AUDIT_RETENTION_DAYS, never shorten it."""
    minimum = settings.AUDIT_RETENTION_DAYS
    if days is None or days >= minimum:
        return None
    return gettext(
        "Audit events are kept at least %(minimum)s days on this deployment "
        "(AUDIT_RETENTION_DAYS); an organisation may only lengthen that."
    ) % {"minimum": minimum}


@transaction.atomic
def organisation_settings_update(*, actor, organisation: Organisation, **changes) -> Organisation:
    unknown = set(changes) - set(SETTINGS_FIELDS)
    if unknown:
        raise ValidationFailed(fields={name: [gettext("Not a setting.")] for name in unknown})
    if "audit_retention_days" in changes:
        too_short = retention_below_minimum_error(changes["audit_retention_days"])
        if too_short:
            raise ValidationFailed(too_short, fields={"auditRetentionDays": [too_short]})
    if "ip_allowlist" in changes:
        for entry in changes["ip_allowlist"] or []:
            try:
                parse_network(entry)
            except ValueError:
                raise ValidationFailed(
                    fields={
                        "ipAllowlist": [
                            gettext("%(entry)r is not an IP network.") % {"entry": entry}
                        ]
                    }
                ) from None
        lockout = allowlist_self_lockout_error(
            actor=actor, organisation=organisation, allowlist=changes["ip_allowlist"]
        )
        if lockout:
            raise ValidationFailed(lockout, fields={"ipAllowlist": [lockout]})
    before = {name: getattr(organisation, name) for name in changes}
    for name, value in changes.items():
        setattr(organisation, name, value)
    try:
        organisation.full_clean(exclude=["slug", "name"])
    except DjangoValidationError as exc:
        # Callers other than the API (admin centre, shell) get the same refusal, not a 500.
        organisation.refresh_from_db(fields=list(changes))
        raise ValidationFailed(
            fields={
                "nonFieldErrors" if field == NON_FIELD_ERRORS else _camel(field): messages
                for field, messages in exc.message_dict.items()
            }
        ) from exc
    organisation.save(update_fields=list(changes))
    audit_record(
        actor=actor,
        action="attendance.settings.updated",
        organisation=organisation,
        target=organisation,
        data={
            "before": {k: str(v) for k, v in before.items()},
            "after": {k: str(v) for k, v in changes.items()},
        },
    )
    return organisation
