"""The smoke's correction: ``correction-requester``, ``correction-request``,
``correction-approve`` and ``correction-adjusted`` (the day is ``adjusted`` in records, with
the asked times).

**Who approves.** Nobody decides their own correction (``attendance.services.can_decide``:
"never the requester"), and ``POST /api/attendance/requests`` always asks for the caller's
own day, so one admin token cannot both ask and approve. The admin approves; the request
comes from a second identity: ``requester_token`` (``--requester-token``: a dedicated test
employee of the same organisation, whose days keep the corrections) when given, else the
smoke's own synthetic employee ``GATES-SMOKE`` (user ``gates-smoke-<organisation id>``,
role employee only, no usable password), created once through ``user_provision`` and given
a bearer token for the run only (``api_token_issue``, revoked when the pass ends, both
audited with the admin as actor). That token is issued in this process, so it needs the
deployment's database; the admin token is looked up there first, and a token this database
does not know fails the ``correction-requester`` check as ``config``. The synthetic
employee keeps real people's days untouched.

**Days.** The correction stays: it is the synthetic employee's n-th (n = their requests so
far), on the day ``n mod (CORRECTION_MAX_AGE_DAYS - 1)`` days before yesterday, so
consecutive runs (and strict's two passes) use different days inside the correction window;
when the cycle comes back to a day the asked times alternate, so a day is never "adjusted"
only because it already was. Pending requests of the synthetic employee older than
LEFTOVER_AGE (a run stopped between asking and approving) are cancelled first
(:mod:`.cleanup`).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils.translation import gettext as _

from gates.choices import FailureKind, OwnerRole
from gates.services.http import GateClient
from gates.services.runs import CheckFailed
from gates.services.smoke.cleanup import cancel_stale_requests
from gates.services.smoke.common import expect, moment

if TYPE_CHECKING:
    from gates.services.smoke import SmokePass

REQUESTER_EMPLOYEE_NO = "GATES-SMOKE"
REQUESTER_NAME = "Gates smoke (synthetic employee)"


class Correction:
    """The correction's steps, the request they make (``request``) and the requester's
    client and token, released by :meth:`release` whatever happened."""

    def __init__(self, smoke: SmokePass):
        self.smoke = smoke
        self.client = smoke.client
        self.requester: GateClient | None = None
        self.issued_token = None  # the synthetic requester's token, revoked at the end
        self.issued_by = None  # the admin, actor of its issue and of its revocation
        self.request: dict = {}

    def run(self) -> None:
        developer = _(
            "The correction flow did not answer as it should: read the "
            "check's evidence and the web log."
        )
        step = self.smoke.step
        step(
            "correction-requester",
            self._requester,
            remediation=_(
                "The correction needs a requester other than the approving admin: run the "
                "smoke where the deployment's database is (it then uses its own synthetic "
                "employee), or give --requester-token (a plain employee of the same "
                "organisation)."
            ),
            owner=OwnerRole.OPS,
        )
        step("correction-request", self._request, remediation=developer)
        step("correction-approve", self._approve, remediation=developer)
        step("correction-adjusted", self._adjusted, remediation=developer)

    def _requester(self):
        admin = self.smoke.me
        given = str(self.smoke.ctx.options.get("requester_token") or "").strip()
        source = "option"
        if not given:
            self.issued_token, given, self.issued_by = issue_requester_token(
                self.client.token, organisation_id=admin["organisation"]["id"]
            )
            source = "synthetic"
        self.requester = GateClient(self.client.base_url, given)
        me = self.requester.get("/api/attendance/me")
        if (
            me["organisation"]["id"] != admin["organisation"]["id"]
            or me["employee"]["id"] == admin["employee"]["id"]
        ):
            raise CheckFailed(
                _("The requester %(user)s is not another employee of the admin's organisation.")
                % {"user": me["username"]},
                kind=FailureKind.CONFIG,
            )
        self.requester_employee = me["employee"]
        cancelled = cancel_stale_requests(self.requester)
        history = self.requester.get(
            "/api/attendance/requests", params={"mine": "true", "pageSize": 1}
        )
        self._plan_correction(history["total"])
        return _("%(user)s (%(source)s), correction #%(number)s on %(day)s") % {
            "user": me["username"],
            "source": source,
            "number": history["total"] + 1,
            "day": self.correction_day,
        }, {
            "requester": me["username"],
            "employeeId": me["employee"]["id"],
            "source": source,
            "cancelledStale": cancelled,
        }

    def _plan_correction(self, earlier_requests: int) -> None:
        span = max(settings.CORRECTION_MAX_AGE_DAYS - 1, 1)
        day = self.smoke.today - dt.timedelta(days=1 + earlier_requests % span)
        # Back on a day it corrected before, the smoke asks for other times than then.
        minute = 1 + 17 * ((earlier_requests // span) % 2)
        self.correction_day = day.isoformat()
        self.correction_times = (
            dt.datetime.combine(day, dt.time(8, minute)).isoformat(),
            dt.datetime.combine(day, dt.time(17, 30 + minute)).isoformat(),
        )
        self.smoke.figures["correctionDay"] = self.correction_day

    def _request(self):
        first_in, last_out = self.correction_times
        request = self.requester.post(
            "/api/attendance/requests",
            json={
                "workDate": self.correction_day,
                "firstIn": first_in,
                "lastOut": last_out,
                "reason": f"Gates smoke {self.smoke.tag}: a synthetic correction",
            },
            expect=(201,),
        )
        expect(
            request.get("state") == "pending" and request.get("workDate") == self.correction_day,
            _("The new request is %(state)s for %(day)s.")
            % {"state": request.get("state"), "day": request.get("workDate")},
            request=request,
        )
        self.request = request
        self.smoke.figures["correctionId"] = request["id"]
        return _("request %(id)s pending for %(day)s") % {
            "id": request["id"],
            "day": self.correction_day,
        }

    def _approve(self):
        admin = self.smoke.me
        decided = self.client.post(
            f"/api/attendance/requests/{self.request['id']}/approve",
            json={"comment": f"Gates smoke {self.smoke.tag}"},
        )
        expect(
            decided.get("state") == "approved"
            and (decided.get("decidedBy") or {}).get("id") == admin["userId"],
            _("Request %(id)s is %(state)s after its approval.")
            % {"id": self.request["id"], "state": decided.get("state")},
            request=decided,
        )
        return _("approved by %(user)s") % {"user": admin["username"]}

    def _adjusted(self):
        page = self.client.get(
            "/api/attendance/records",
            params={
                "employee": self.requester_employee["id"],
                "from": self.correction_day,
                "to": self.correction_day,
            },
        )
        items = page["items"]
        expect(len(items) == 1, _("Not one record for the corrected day."), items=items)
        record = items[0]
        expect(
            record["status"] == "adjusted"
            and record["source"] == "adjustment"
            and moment(record["firstIn"]) == moment(self.request["firstIn"])
            and moment(record["lastOut"]) == moment(self.request["lastOut"]),
            _(
                "The corrected day is %(status)s (%(source)s), %(first)s–%(last)s, not adjusted "
                "with the asked times."
            )
            % {
                "status": record["status"],
                "source": record["source"],
                "first": record["firstIn"],
                "last": record["lastOut"],
            },
            record=record,
            asked={"firstIn": self.request["firstIn"], "lastOut": self.request["lastOut"]},
        )
        return _("%(day)s adjusted, %(minutes)s minutes") % {
            "day": self.correction_day,
            "minutes": record["workMinutes"],
        }, {"recordId": record["id"]}

    def release(self) -> None:
        if self.requester is not None:
            self.requester.close()
        if self.issued_token is not None:
            try:
                revoke_requester_token(self.issued_token, actor=self.issued_by)
            except Exception as exc:  # the run's result stands; the operator must know
                self.smoke.ctx.warn(
                    _("The synthetic requester's token %(prefix)s… was not revoked: %(error)s")
                    % {"prefix": self.issued_token.prefix, "error": exc}
                )


def issue_requester_token(admin_token: str, *, organisation_id: int):
    """``(token, raw token, admin)``: a bearer token, for this run, of the smoke's synthetic
    employee in the admin's organisation (created the first time). The admin token is
    looked up in this process's database: one it does not know means the gate does not run
    beside the deployment it tests, and its token would not be known there either."""
    from attendance import services
    from attendance.models import ApiToken, Employee
    from common import roles

    found = (
        ApiToken.objects.select_related("user__employee__organisation")
        .filter(key_hash=services.hash_token(admin_token), revoked_at__isnull=True)
        .first()
    )
    admin_employee = getattr(found.user, "employee", None) if found else None
    if admin_employee is None or admin_employee.organisation_id != organisation_id:
        raise CheckFailed(
            _(
                "This database does not know the admin token: the smoke's own requester can be "
                "given a token only beside the deployment's database."
            ),
            kind=FailureKind.CONFIG,
        )
    admin, organisation = found.user, admin_employee.organisation
    username = f"gates-smoke-{organisation.pk}"
    requester = (
        Employee.objects.select_related("user")
        .filter(organisation=organisation, employee_no=REQUESTER_EMPLOYEE_NO)
        .first()
    )
    if requester is None:
        requester, _created = services.user_provision(
            actor=admin,
            organisation=organisation,
            username=username,
            employee_no=REQUESTER_EMPLOYEE_NO,
            name=REQUESTER_NAME,
            role_names=[roles.EMPLOYEE],
        )
    elif requester.user is None or requester.user.username != username:
        raise CheckFailed(
            _(
                "The employee number %(number)s belongs to someone else than the smoke's user "
                "%(user)s."
            )
            % {"number": REQUESTER_EMPLOYEE_NO, "user": username},
            kind=FailureKind.CONFIG,
        )
    if not (requester.is_active and requester.user.is_active):
        raise CheckFailed(
            _("The smoke's synthetic employee %(number)s is deactivated.")
            % {"number": REQUESTER_EMPLOYEE_NO},
            kind=FailureKind.CONFIG,
        )
    token, raw = services.api_token_issue(
        actor=admin, user=requester.user, name="gates smoke (revoked when its run ends)"
    )
    return token, raw, admin


def revoke_requester_token(token, *, actor) -> None:
    from attendance import services

    services.api_token_revoke(actor=actor, token=token)
