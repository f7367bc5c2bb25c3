import json

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from audit.management.commands._times import parse_moment
from audit.services import audit_verify


class Command(BaseCommand):
    help = _(
        "Recompute the audit digest chain and the sealed hours; name every edited, deleted,"
        " inserted or moved event, missing hour and broken link. Exits 1 when anything is wrong."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="start", type=parse_moment, default=None)
        parser.add_argument("--to", dest="end", type=parse_moment, default=None)
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help=_("Print the report as JSON.")
        )

    def handle(self, *args, start, end, as_json, **options):
        report = audit_verify(start=start, end=end)
        if as_json:
            self.stdout.write(_dumps(report.as_dict()))
        else:
            self._write_text(report)
        if not report.ok:
            raise CommandError(
                _("Audit verification failed: %(count)s problem(s).")
                % {"count": sum(report.counts.values())},
                returncode=1,
            )

    def _write_text(self, report):
        summary = report.as_dict()
        self.stdout.write(
            _(
                "%(digests)s digest(s) from %(first)s to %(last)s; checked %(hours)s hour(s)"
                " and %(events)s event(s); %(pruned)s pruned hour(s); chain head %(head)s"
            )
            % {
                "digests": report.digests,
                "first": summary["firstHour"] or "-",
                "last": summary["lastHour"] or "-",
                "hours": report.checked_hours,
                "events": report.checked_events,
                "pruned": report.pruned_hours,
                "head": report.chain_head or "-",
            }
        )
        if report.ok:
            self.stdout.write(self.style.SUCCESS(_("OK: nothing was changed.")))
            return
        for kind, count in sorted(report.counts.items()):
            self.stdout.write(self.style.ERROR(f"{kind}: {count}"))
        for problem in summary["problems"]:
            event = f" event {problem['eventId']}" if problem["eventId"] is not None else ""
            self.stdout.write(
                f"  {problem['kind']}\t{problem['hour'] or '-'}{event}\t{problem['detail']}"
            )
        hidden = sum(report.counts.values()) - len(report.problems)
        if hidden:
            self.stdout.write(_("  … and %(count)s more (see the counts)") % {"count": hidden})


def _dumps(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)
