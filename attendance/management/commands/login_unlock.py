from django.core.management.base import BaseCommand, CommandError

from attendance import lockouts
from common.exceptions import ApplicationError


class Command(BaseCommand):
    help = (
        "Lift a login lockout: clear the failed sign-ins of a username or of a client "
        "address (audited as security.lockout.reset). Prints the number of records cleared."
    )

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--username", help="the login name that is locked out")
        target.add_argument("--ip", help="the client address that is locked out")

    def handle(self, *args, username=None, ip=None, **options):
        try:
            cleared = lockouts.login_lockout_reset(actor=None, username=username, ip=ip)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write(f"Unlocked {username or ip}: {cleared} failed sign-in record(s) cleared.")
        self.stdout.write(str(cleared))
