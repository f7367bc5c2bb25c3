"""The smoke's audit steps: ``audit-events`` (the audit-logs API lists the batch's and the
request's events) and ``audit-export`` (the audit CSV holds the batch's)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import gettext as _

from gates.services.smoke.common import BOM, csv_rows, expect

if TYPE_CHECKING:
    from gates.services.smoke import SmokePass

AUDIT = "/api/attendance-admin/audit-logs"
BATCH_TARGET = "imports.importbatch"
REQUEST_TARGET = "attendance.adjustmentrequest"
BATCH_ACTIONS = {"imports.batch.committed", "imports.batch.exported", "imports.batch.rolled_back"}
REQUEST_ACTIONS = {"attendance.request.created", "attendance.request.approved"}


class AuditTrail:
    def __init__(self, smoke: SmokePass, *, batch_id, request_id):
        self.smoke = smoke
        self.client = smoke.client
        self.batch_id = batch_id
        self.request_id = request_id

    def run(self) -> None:
        remediation = _(
            "Every import and correction must leave its audit events, listed and "
            "exported by the audit API."
        )
        self.smoke.step("audit-events", self._audit_events, remediation=remediation)
        self.smoke.step("audit-export", self._audit_export, remediation=remediation)

    def _audit_actions(self, target_type: str, target_id) -> set[str]:
        page = self.client.get(
            AUDIT, params={"targetType": target_type, "targetId": str(target_id), "pageSize": 100}
        )
        return {item["action"] for item in page["items"]}

    def _audit_events(self):
        batch_actions = self._audit_actions(BATCH_TARGET, self.batch_id)
        request_actions = self._audit_actions(REQUEST_TARGET, self.request_id)
        missing = sorted((BATCH_ACTIONS - batch_actions) | (REQUEST_ACTIONS - request_actions))
        expect(
            not missing,
            _("The audit log lacks: %(missing)s.") % {"missing": ", ".join(missing)},
            batch=sorted(batch_actions),
            request=sorted(request_actions),
        )
        return _("%(count)s events of the batch and the request") % {
            "count": len(batch_actions) + len(request_actions)
        }, {"batch": sorted(batch_actions), "request": sorted(request_actions)}

    def _audit_export(self):
        response = self.client.request(
            "GET",
            f"{AUDIT}/export.csv",
            params={"targetType": BATCH_TARGET, "targetId": str(self.batch_id)},
        )
        rows = csv_rows(response.text)
        actions = {row.get("action") for row in rows}
        expect(
            response.text.startswith(BOM)
            and actions >= BATCH_ACTIONS
            and {row.get("target_id") for row in rows} == {str(self.batch_id)},
            _("The audit CSV does not hold batch %(batch)s's events.") % {"batch": self.batch_id},
            actions=sorted(action for action in actions if action),
            head=response.text[:500],
        )
        return _("%(rows)s events, %(bytes)s bytes") % {
            "rows": len(rows),
            "bytes": len(response.content),
        }
