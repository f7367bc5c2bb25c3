"""Logins, failed logins and logouts, from Django's auth signals (connected in
``AuditConfig.ready``), whichever login view sent them: ``/accounts/login/``,
``/admin/login/``, or a ``login()`` elsewhere (django-axes keeps them firing).

- ``security.login.succeeded``: the user is the actor and the target.
- ``security.login.failed``: the actor is "anonymous"; ``data.username`` is the name that
  was tried (never the password: Django hands the receiver credentials whose secrets are
  already blanked, and only the username is read). When the name belongs to a login, that
  login is the target and its employee's organisation the event's, so an organisation's
  admins see attempts on their people; an unknown name has no organisation.
- ``security.logout``: when someone was logged in.

``data.via`` says which door: ``admin`` (``/admin/…``), ``pages`` (any other path), or
``other`` when there was no request (``authenticate()`` from a shell or a command).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from audit.services import audit_record

USERNAME_MAX = 150


def _via(request) -> dict:
    path = getattr(request, "path", None)
    if path is None:
        return {"via": "other"}
    return {"via": "admin" if path.startswith("/admin/") else "pages", "path": path[:200]}


def _organisation_of(user):
    employee = getattr(user, "employee", None)
    return employee.organisation if employee is not None else None


def login_succeeded(sender, request, user, **kwargs) -> None:
    audit_record(
        actor=user,
        action="security.login.succeeded",
        organisation=_organisation_of(user),
        target=user,
        data={"username": user.get_username(), **_via(request)},
    )


def login_failed(sender, credentials, request=None, **kwargs) -> None:
    user_model = get_user_model()
    username = str(credentials.get(user_model.USERNAME_FIELD) or "")[:USERNAME_MAX]
    known = (
        user_model._default_manager.select_related("employee__organisation")
        .filter(**{user_model.USERNAME_FIELD: username})
        .first()
        if username
        else None
    )
    audit_record(
        actor=AnonymousUser(),
        action="security.login.failed",
        organisation=_organisation_of(known) if known else None,
        target=known,
        data={"username": username, "knownUser": known is not None, **_via(request)},
    )


def logged_out(sender, request, user, **kwargs) -> None:
    if user is None or not user.is_authenticated:
        return
    audit_record(
        actor=user,
        action="security.logout",
        organisation=_organisation_of(user),
        target=user,
        data={"username": user.get_username(), **_via(request)},
    )
