"""The smoke's first steps: the deployment is alive and ready (``livez``, ``readyz``), the
token's user is an admin with an employee (``me``: the organisation and its today, which
the later steps work in) and the records list answers a page (``records``)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils.translation import gettext as _

from gates.choices import FailureKind, OwnerRole
from gates.services.runs import CheckFailed
from gates.services.smoke.common import expect

if TYPE_CHECKING:
    from gates.services.smoke import SmokePass

ADMIN_ROLE = "attendance_admin"


class Basics:
    def __init__(self, smoke: SmokePass):
        self.smoke = smoke
        self.client = smoke.client

    def run(self) -> None:
        self.smoke.step(
            "livez",
            self._livez,
            remediation=_('/livez must answer 200 {"status": "ok"} while the process runs.'),
            owner=OwnerRole.OPS,
        )
        self.smoke.step(
            "readyz",
            self._readyz,
            remediation=_("/readyz names the failing dependency: bring it back."),
            owner=OwnerRole.OPS,
        )
        self.smoke.step(
            "me",
            self._me,
            remediation=_("The token's user must be an admin with an employee."),
            owner=OwnerRole.OPS,
        )
        self.smoke.step(
            "records",
            self._records,
            remediation=_("The records list must answer a page of the organisation's days."),
        )

    def _livez(self):
        # A 404 here is the address's fault (see gates.services.http.classify).
        response = self.client.request("GET", "/livez")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("status") != "ok":
            raise CheckFailed(
                _("Something other than the application answers /livez at %(url)s.")
                % {"url": self.client.base_url},
                kind=FailureKind.CONFIG,
                evidence={"body": response.text[:300]},
                remediation=_("Give the application's own address as the base URL."),
                owner=OwnerRole.OPS,
            )
        self.smoke.root_confirmed = True
        return "200 ok"

    def _readyz(self):
        response = self.client.request("GET", "/readyz", expect=(200, 503))
        body = response.json()
        checks = sorted(body.get("checks") or {})
        if response.status_code == 503:
            failing = ", ".join(body.get("failing") or []) or "?"
            raise CheckFailed(
                _("/readyz answered 503: %(failing)s failing.") % {"failing": failing},
                kind=FailureKind.DEPENDENCY,
                evidence={"failing": body.get("failing"), "checks": body.get("checks")},
                remediation=_(
                    "Bring back what /readyz names (%(failing)s): the database reachable and "
                    "migrated, the broker reachable."
                )
                % {"failing": failing},
                owner=OwnerRole.OPS,
            )
        return (
            _("200: %(checks)s") % {"checks": ", ".join(checks)},
            {"checks": checks, "warnings": body.get("warnings") or []},
        )

    def _me(self):
        me = self.client.get("/api/attendance/me")
        roles = me.get("roles") or []
        if ADMIN_ROLE not in roles:
            raise CheckFailed(
                _("%(user)s is not an admin (roles: %(roles)s).")
                % {"user": me.get("username"), "roles": ", ".join(roles) or "-"},
                kind=FailureKind.CONFIG,
                remediation=_(
                    "Run the smoke with an admin's token: it imports, approves and reads the "
                    "audit log."
                ),
                owner=OwnerRole.OPS,
            )
        self.smoke.me = me
        organisation = me["organisation"]
        try:
            tz = ZoneInfo(organisation["timeZone"])
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CheckFailed(
                _("The organisation's time zone %(zone)r is unknown here.")
                % {"zone": organisation["timeZone"]},
                kind=FailureKind.CONFIG,
                owner=OwnerRole.OPS,
            ) from exc
        self.smoke.today = dt.datetime.now(tz).date()
        return (
            _("%(user)s, admin of %(organisation)s")
            % {"user": me["username"], "organisation": organisation["name"]},
            {"userId": me["userId"], "organisationId": organisation["id"], "roles": roles},
        )

    def _records(self):
        today = self.smoke.today
        page = self.client.get(
            "/api/attendance/records",
            params={
                "from": (today - dt.timedelta(days=6)).isoformat(),
                "to": today.isoformat(),
                "pageSize": 1,
            },
        )
        expect(
            isinstance(page.get("items"), list) and isinstance(page.get("total"), int),
            _("The records list is not a page (items, total)."),
            answer=str(page)[:300],
        )
        return _("%(total)s days in the last week") % {"total": page["total"]}
