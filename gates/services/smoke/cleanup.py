"""What an earlier smoke stopped midway left behind: a batch committed by a job the worker
ran after its smoke gave up (rolled back in the advisory ``cleanup`` check, before the
import), and a pending request of the synthetic requester from a run stopped between asking
and approving (cancelled in ``correction-requester``, before the new request). Only what is
older than LEFTOVER_AGE counts, and only the smoke's own: batches by their file name, requests
by their requester."""

from __future__ import annotations

import datetime as dt

from django.utils.translation import gettext as _

from gates.services.http import GateClient
from gates.services.import_api import IMPORT_API
from gates.services.runs import GateContext
from gates.services.smoke.common import moment
from gates.services.smoke.round_trip import FILE_PREFIX

# A leftover is older than any run could be: a younger one may be a concurrent run's.
LEFTOVER_AGE = dt.timedelta(minutes=15)


def roll_back_leftover_batches(client: GateClient, ctx: GateContext):
    """Roll back what a smoke stopped midway left committed (a job the worker ran after
    its smoke gave up): synthetic rows only, recognised by the file name."""
    page = client.get(f"{IMPORT_API}/batches", params={"pageSize": 100})
    cutoff = dt.datetime.now(dt.UTC) - LEFTOVER_AGE
    leftovers = [
        batch["id"]
        for batch in page["items"]
        if batch["filename"].startswith(FILE_PREFIX)
        and batch["status"] == "committed"
        and moment(batch["createdAt"]) < cutoff
    ]
    for batch_id in leftovers:
        client.request("POST", f"{IMPORT_API}/rollback/{batch_id}", expect=(200, 202))
    if leftovers:
        ctx.warn(
            _("Rolled back batches an earlier smoke left committed: %(ids)s")
            % {"ids": ", ".join(map(str, leftovers))}
        )
    return _("%(count)s leftovers rolled back") % {"count": len(leftovers)}, {
        "rolledBack": leftovers
    }


def cancel_stale_requests(requester: GateClient) -> list[int]:
    """Cancel the requester's pending requests older than LEFTOVER_AGE; their ids."""
    pending = requester.get(
        "/api/attendance/requests",
        params={"mine": "true", "status": "pending", "pageSize": 200},
    )
    cutoff = dt.datetime.now(dt.UTC) - LEFTOVER_AGE
    stale = [item["id"] for item in pending["items"] if moment(item["createdAt"]) < cutoff]
    for request_id in stale:
        requester.post(f"/api/attendance/requests/{request_id}/cancel")
    return stale
