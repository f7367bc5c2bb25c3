"""Commit tokens: single use, short lived, bound to one user, stored as their SHA-256."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from django.conf import settings
from django.utils import timezone

from attendance.models import Organisation
from imports.models import CommitToken
from imports.services.errors import CommitTokenInvalid, CommitTokenRequired


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def commit_token_issue(*, actor, organisation: Organisation) -> tuple[str, CommitToken]:
    token = secrets.token_urlsafe(32)
    record = CommitToken.objects.create(
        organisation=organisation,
        user=actor,
        token_hash=_token_hash(token),
        expires_at=timezone.now() + dt.timedelta(seconds=settings.IMPORT_COMMIT_TOKEN_TTL_SECONDS),
    )
    return token, record


def commit_token_consume(*, actor, organisation: Organisation, token: str | None) -> None:
    """Single use: the row is marked inside the commit's transaction, so a failed commit
    leaves the token usable and two concurrent commits cannot both spend it."""
    if not token:
        raise CommitTokenRequired()
    used = CommitToken.objects.filter(
        token_hash=_token_hash(token),
        user=actor,
        organisation=organisation,
        used_at__isnull=True,
        expires_at__gt=timezone.now(),
    ).update(used_at=timezone.now())
    if used != 1:
        raise CommitTokenInvalid()
