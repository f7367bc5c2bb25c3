"""Load a demo organisation: ~50 people, three months of days, users in every role.

Idempotent: people are matched by employee number and days by (employee, date), so a
second run adds nothing. Refuses to run in production (it sets a known password).
"""

from __future__ import annotations

import datetime as dt
import random

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from attendance import schedule, services
from attendance.choices import PunchKind, PunchSource, RecordSource, RecordStatus
from attendance.models import AdjustmentRequest, AttendanceRecord, Organisation, Punch
from audit.services import audit_record

DEPARTMENTS = ["Engineering", "Sales", "Support", "Finance", "Operations"]
GIVEN = ["Wei", "Li", "Na", "Min", "Jun", "Hui", "Lan", "Tao", "Yan", "Lei"]
FAMILY = ["Wang", "Zhang", "Liu", "Chen", "Yang"]
DEMO_USERS = [
    # username, employee number, name, roles
    ("admin", "D0001", "Ada Admin", ["employee", "admin"]),
    ("approver", "D0002", "Arthur Approver", ["employee", "approver"]),
    ("employee", "D0003", "Emma Employee", ["employee"]),
    ("importer", "D0004", "Ivan Importer", ["employee", "importer"]),
]


class Command(BaseCommand):
    help = "Create (or complete) the demo organisation with people, users and 3 months of days."

    def add_arguments(self, parser):
        parser.add_argument("--employees", type=int, default=50)
        parser.add_argument("--days", type=int, default=92)

    def handle(self, *args, employees: int, days: int, **options):
        if settings.IS_PRODUCTION:
            raise CommandError("seed_demo sets a known password and is refused in production.")
        password = settings.DEMO_PASSWORD
        with transaction.atomic():
            organisation, created = Organisation.objects.get_or_create(
                slug="demo",
                defaults={
                    "name": "Demo Organisation",
                    "time_zone": settings.DEFAULT_ORGANISATION_TIME_ZONE,
                },
            )
            people = self._people(organisation, employees, password)
            new_days = self._days(organisation, people, days)
            self._requests(organisation, people)
            new_events = self._events(organisation, people)
            audit_record(
                actor=None,
                action="attendance.demo.seeded",
                organisation=organisation,
                target=organisation,
                data={
                    "employees": len(people),
                    "newDays": new_days,
                    "newEvents": new_events,
                    "organisationCreated": created,
                },
            )
        self.stdout.write(
            f"Demo organisation '{organisation.name}': "
            f"{len(people)} employees, {new_days} new days."
        )
        self.stdout.write("Users: admin, approver, employee, importer")
        self.stdout.write(f"Demo password: {password}")

    def _people(self, organisation, count, password):
        approver = None
        people = []
        for username, number, name, role_names in DEMO_USERS:
            employee, _ = services.user_provision(
                actor=None,
                organisation=organisation,
                username=username,
                employee_no=number,
                name=name,
                role_names=role_names,
                password=password,
                department="Operations",
                approver=approver if username == "employee" else None,
            )
            if username == "approver":
                approver = employee
            people.append(employee)
        approver.reports.add(*[p for p in people if p.user.username in ("employee", "importer")])
        randomiser = random.Random(42)  # the same people on every run
        for index in range(len(people) + 1, count + 1):
            number = f"D{index:04d}"
            name = f"{randomiser.choice(FAMILY)} {randomiser.choice(GIVEN)}"
            employee = organisation.employees.filter(employee_no=number).first()
            if employee is None:
                employee = organisation.employees.create(
                    employee_no=number,
                    name=name,
                    department=randomiser.choice(DEPARTMENTS),
                    approver=approver,
                    device_pin=str(7000 + index),
                )
            people.append(employee)
        return people

    def _days(self, organisation, people, days) -> int:
        today = timezone.localtime(timezone.now(), organisation.tz).date()
        existing = set(
            AttendanceRecord.objects.filter(organisation=organisation).values_list(
                "employee_id", "work_date"
            )
        )
        now = timezone.now()
        punches, records = [], []
        for employee in people:
            randomiser = random.Random(f"{employee.employee_no}")
            for offset in range(days, 0, -1):
                work_date = today - dt.timedelta(days=offset)
                if (employee.pk, work_date) in existing:
                    continue
                day_punches = self._day_punches(organisation, work_date, randomiser)
                for moment, kind in day_punches:
                    punches.append(
                        Punch(
                            organisation=organisation,
                            employee=employee,
                            kind=kind,
                            occurred_at=moment,
                            received_at=now,
                            work_date=work_date,
                            source=PunchSource.DEVICE,
                            source_key=f"demo:{employee.employee_no}:{work_date}:{kind}",
                        )
                    )
                result = schedule.judge_day(organisation, work_date, day_punches)
                status = result.status
                if status == RecordStatus.ABSENT and randomiser.random() < 0.5:
                    status = RecordStatus.LEAVE
                records.append(
                    AttendanceRecord(
                        organisation=organisation,
                        employee=employee,
                        work_date=work_date,
                        **{**result.record_fields(), "status": status},
                        source=RecordSource.PUNCH,
                    )
                )
        Punch.objects.bulk_create(punches, batch_size=2000, ignore_conflicts=True)
        AttendanceRecord.objects.bulk_create(records, batch_size=2000, ignore_conflicts=True)
        return len(records)

    @staticmethod
    def _day_punches(organisation, work_date, randomiser):
        if not schedule.is_workday(organisation, work_date):
            return []
        roll = randomiser.random()
        if roll < 0.04:
            return []  # absent (or on leave)
        start, end = schedule.shift_bounds(organisation, work_date)
        arrive = start + dt.timedelta(minutes=randomiser.randint(-40, 4))
        leave = end + dt.timedelta(minutes=randomiser.randint(0, 90))
        if roll < 0.14:
            arrive = start + dt.timedelta(minutes=randomiser.randint(6, 75))
        elif roll < 0.20:
            leave = end - dt.timedelta(minutes=randomiser.randint(10, 120))
        if roll > 0.97:
            return [(arrive, PunchKind.IN)]  # forgot to punch out
        return [(arrive, PunchKind.IN), (leave, PunchKind.OUT)]

    @staticmethod
    def _events(organisation, people) -> int:
        """Three events so the events pages are not empty: one running now (the demo users
        are among its participants and can check in), one tomorrow, one last week already
        completed and marked. Made once, through the events services."""
        from events import services as event_services
        from events.models import Event

        if Event.objects.filter(organisation=organisation).exists():
            return 0
        organiser = next(p for p in people if p.user and p.user.username == "approver").user
        numbers = [person.employee_no for person in people[:20]]
        now = timezone.now().replace(second=0, microsecond=0)
        plans = [
            ("Fire safety training", "Room 301", now - dt.timedelta(minutes=20), 2),
            ("Quarterly all-hands", "Main hall", now + dt.timedelta(days=1), 1),
            ("Volunteer shift: book fair", "Lobby", now - dt.timedelta(days=7), 3),
        ]
        for title, location, starts_at, hours in plans:
            event = event_services.event_create(
                actor=organiser,
                organisation=organisation,
                title=title,
                location=location,
                starts_at=starts_at,
                ends_at=starts_at + dt.timedelta(hours=hours),
            )
            event_services.participants_add(actor=organiser, event=event, employee_nos=numbers)
            if starts_at < now - dt.timedelta(days=1):
                # All but two came; one was excused; the last is left for auto-absence.
                *came, excused, _unknown = list(event.participants.order_by("id"))
                for participant in came:
                    event_services.participant_mark(
                        actor=organiser, participant=participant, status="present"
                    )
                event_services.participant_mark(
                    actor=organiser,
                    participant=excused,
                    status="excused",
                    notes="On leave that week.",
                )
                event_services.event_complete(actor=organiser, event=event)
        event_services.events_start_due(now=now)
        return len(plans)

    @staticmethod
    def _requests(organisation, people):
        """A pending correction so the approver's inbox is not empty."""
        employee = next(p for p in people if p.user and p.user.username == "employee")
        partial = (
            AttendanceRecord.objects.filter(employee=employee)
            .exclude(status=RecordStatus.NORMAL)
            .order_by("-work_date")
            .first()
        )
        if partial is None or AdjustmentRequest.objects.filter(employee=employee).exists():
            return
        start, end = schedule.shift_bounds(organisation, partial.work_date)
        services.adjustment_request_create(
            actor=employee.user,
            employee=employee,
            work_date=partial.work_date,
            first_in=start - dt.timedelta(minutes=5),
            last_out=end + dt.timedelta(minutes=10),
            reason="The device did not register my punches that day.",
        )
