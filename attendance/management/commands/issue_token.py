from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from attendance import services


class Command(BaseCommand):
    help = (
        "Issue an API bearer token for USERNAME. The token is printed once, alone on the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for")

    def handle(self, *args, username: str, name: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive.")
        token, raw = services.api_token_issue(actor=None, user=user, name=name)
        self.stderr.write(f"Issued token {token.prefix}… for {username}; it is shown only once.")
        self.stdout.write(raw)
