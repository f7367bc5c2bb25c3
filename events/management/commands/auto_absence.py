"""``manage.py auto_absence run [--event ID] [--dry-run] [--batch-size N]``: mark the
no-shows of due events now (what the beat does every minute)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from events.models import Event
from events.services import auto_absence_run


class Command(BaseCommand):
    help = _("Mark registered participants still 'unknown' as absent for due completed events.")

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        run = sub.add_parser("run", help=_("Run auto-absence now."))
        run.add_argument("--event", type=int, help=_("Only this event (id)."))
        run.add_argument(
            "--dry-run", action="store_true", help=_("Print what would be marked; change nothing.")
        )
        run.add_argument("--batch-size", type=int, help=_("Participants per transaction."))
        run.add_argument("--json", action="store_true", help=_("Print the result as JSON."))

    def handle(self, *args, **options):
        event = None
        if options.get("event") is not None:
            event = Event.objects.select_related("organisation").filter(pk=options["event"]).first()
            if event is None:
                raise CommandError(_("No event with id %(id)s.") % {"id": options["event"]})
        result = auto_absence_run(
            event=event, dry_run=options["dry_run"], batch_size=options.get("batch_size")
        )
        if options["json"]:
            self.stdout.write(json.dumps(result, sort_keys=True))
            return
        for event_id in result["skipped"]:
            self.stdout.write(
                _("Event %(id)s is not due: not completed, or its delay has not passed.")
                % {"id": event_id}
            )
        if options["dry_run"]:
            for event_id, count in result["perEvent"].items():
                self.stdout.write(
                    _("Event %(id)s: would mark %(n)s participant(s) absent.")
                    % {"id": event_id, "n": count}
                )
            self.stdout.write(
                _("Dry run: would mark %(n)s participant(s) absent in %(events)s event(s).")
                % {"n": result["wouldMark"], "events": len(result["events"])}
            )
            return
        self.stdout.write(
            _(
                "Marked %(n)s participant(s) absent in %(events)s event(s), "
                "%(batches)s batch(es), %(ms)s ms."
            )
            % {
                "n": result["marked"],
                "events": len(result["events"]),
                "batches": result["batches"],
                "ms": result["elapsedMs"],
            }
        )
