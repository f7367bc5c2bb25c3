from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from attendance import services
from attendance.models import Employee, Organisation
from common import roles
from common.exceptions import ApplicationError


class Command(BaseCommand):
    help = (
        "Create or update a login with its employee and roles. "
        "Example: provision_user alice --org demo --employee-no 1001 --name 'Alice' "
        "--role approver --unassign importer"
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--org", required=True, help="organisation slug")
        parser.add_argument("--employee-no", help="required when the user has no employee yet")
        parser.add_argument("--name", help="employee name (default: the username)")
        parser.add_argument("--department", default="")
        parser.add_argument("--approver", help="employee number of the approver")
        parser.add_argument(
            "--role", action="append", default=[], help="role to assign (repeatable)"
        )
        parser.add_argument(
            "--unassign", action="append", default=[], help="role to remove (repeatable)"
        )
        parser.add_argument("--password", help="set this password (default: unusable)")

    def handle(self, *args, **options):
        organisation = Organisation.objects.filter(slug=options["org"]).first()
        if organisation is None:
            raise CommandError(f"No organisation with slug {options['org']!r}.")
        for role in options["role"] + options["unassign"]:
            if roles.normalise(role) is None:
                raise CommandError(
                    f"Unknown role {role!r}; use one of {', '.join(roles.SHORT_NAMES)}."
                )
        User = get_user_model()
        user = User.objects.filter(username=options["username"]).first()
        current = getattr(user, "employee", None) if user else None
        employee_no = options["employee_no"] or (current.employee_no if current else None)
        if not employee_no:
            raise CommandError("--employee-no is required for a new user.")
        approver = None
        if options["approver"]:
            approver = Employee.objects.filter(
                organisation=organisation, employee_no=options["approver"]
            ).first()
            if approver is None:
                raise CommandError(f"No employee {options['approver']!r} to be the approver.")
        try:
            with transaction.atomic():
                employee, created = services.user_provision(
                    actor=None,
                    organisation=organisation,
                    username=options["username"],
                    employee_no=employee_no,
                    name=options["name"] or (current.name if current else options["username"]),
                    department=options["department"],
                    approver=approver,
                    role_names=options["role"] or ([roles.EMPLOYEE] if not current else []),
                    password=options["password"],
                )
                for role in options["unassign"]:
                    services.role_unassign(actor=None, user=employee.user, role=role)
        except ApplicationError as error:
            raise CommandError(f"{error.code}: {error.message} {error.details or ''}") from error
        employee.user.__dict__.pop("_attendance_roles", None)
        role_list = ", ".join(sorted(roles.user_roles(employee.user))) or "none"
        self.stdout.write(
            f"{'Created' if created else 'Updated'} {employee.user.username} "
            f"(employee {employee.employee_no}, roles: {role_list})"
        )
