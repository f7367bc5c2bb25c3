"""The import pipeline's refusals, with their codes (API.md)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy

from common.exceptions import ApplicationError


class CommitTokenRequired(ApplicationError):
    status_code = 400
    code = "COMMIT_TOKEN_REQUIRED"
    default_message = gettext_lazy(
        "A commit needs a commitToken from POST /api/attendance/import/prepare."
    )


class CommitTokenInvalid(ApplicationError):
    status_code = 403
    code = "COMMIT_TOKEN_INVALID"
    default_message = gettext_lazy(
        "The commit token is unknown, already used, expired or not yours."
    )


class IdempotencyKeyConflict(ApplicationError):
    status_code = 409
    code = "IDEMPOTENCY_KEY_CONFLICT"
    default_message = gettext_lazy("This idempotency key was already used for a different import.")


class ImportInProgress(ApplicationError):
    status_code = 409
    code = "IMPORT_IN_PROGRESS"
    default_message = gettext_lazy("An import with this idempotency key is still running.")


class UploadTooLarge(ApplicationError):
    status_code = 413
    code = "UPLOAD_TOO_LARGE"
    default_message = gettext_lazy("The file is larger than the upload limit.")


class UploadExpired(ApplicationError):
    status_code = 410
    code = "UPLOAD_EXPIRED"
    default_message = gettext_lazy("The upload has expired; upload the file again.")


class ImportTooLargeForSync(ApplicationError):
    status_code = 400
    code = "IMPORT_TOO_LARGE_FOR_SYNC"
    default_message = gettext_lazy(
        "Too many rows for a synchronous request; upload the file and use commit-async."
    )


class RollbackConflict(ApplicationError):
    status_code = 409
    code = "ROLLBACK_CONFLICT"
    default_message = gettext_lazy(
        "Later writes changed days of this batch; rolling back would undo them."
    )


class AlreadyRolledBack(ApplicationError):
    status_code = 409
    code = "ALREADY_ROLLED_BACK"
    default_message = gettext_lazy("This batch was already rolled back.")
