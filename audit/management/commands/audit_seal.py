from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from audit.management.commands._times import parse_moment
from audit.services import audit_seal


class Command(BaseCommand):
    help = _(
        "Seal every closed hour of audit events not sealed yet into the digest chain (the same"
        " code as the beat task): a checkpoint before a deploy."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--until",
            type=parse_moment,
            default=None,
            help=_("Seal hours ending by then (ISO date or time, UTC unless an offset is given)."),
        )

    def handle(self, *args, until, **options):
        result = audit_seal(until=until)
        self.stdout.write(
            _(
                "Sealed %(hours)s hour(s), %(events)s event(s); sealed until %(until)s;"
                " chain head %(head)s"
            )
            % {
                "hours": result.hours,
                "events": result.events,
                "until": result.sealed_until.isoformat() if result.sealed_until else "-",
                "head": result.chain_head or "-",
            }
        )
        if result.held_back_by:
            self.stdout.write(
                self.style.WARNING(
                    _("Held back by an open transaction (pid %(pid)s, since %(since)s).")
                    % result.held_back_by
                )
            )
