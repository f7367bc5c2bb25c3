"""Every write of the import pipeline, one module per concern:

- ``uploads``: storage, the one read of a file at upload, expiry and the purge;
- ``tokens``: single-use commit tokens; ``idempotency``: keys and their first answers;
- ``preview``: the commit's engine in a transaction that is always rolled back;
- ``commit``: sync and queued commits; ``jobs``: the worker's body, heartbeat, the reaper;
- ``rollback``: exact rollback, or a refusal that says which batch to roll back first;
- ``exports``: the audit event of a batch report export;
- ``errors``: the refusals and their codes.

Locks come from ``common.locking`` (one order, typed key spaces); the SQL of stage, plan,
apply and rollback lives in ``imports.staging``.
"""

from imports.services.commit import QueuedCommit, import_commit, import_commit_async
from imports.services.errors import (
    AlreadyRolledBack,
    CommitTokenInvalid,
    CommitTokenRequired,
    IdempotencyKeyConflict,
    ImportInProgress,
    ImportTooLargeForSync,
    RollbackConflict,
    UploadExpired,
    UploadTooLarge,
)
from imports.services.exports import batch_export_audit
from imports.services.jobs import JobPulse, import_job_fail, import_job_run, import_jobs_reap
from imports.services.options import ImportOptions
from imports.services.preview import import_preview, preview_errors_csv
from imports.services.rollback import import_rollback
from imports.services.tokens import commit_token_issue
from imports.services.uploads import purge_expired_uploads, upload_create, upload_get

__all__ = [
    "AlreadyRolledBack",
    "CommitTokenInvalid",
    "CommitTokenRequired",
    "IdempotencyKeyConflict",
    "ImportInProgress",
    "ImportOptions",
    "ImportTooLargeForSync",
    "JobPulse",
    "QueuedCommit",
    "RollbackConflict",
    "UploadExpired",
    "UploadTooLarge",
    "batch_export_audit",
    "commit_token_issue",
    "import_commit",
    "import_commit_async",
    "import_job_fail",
    "import_job_run",
    "import_jobs_reap",
    "import_preview",
    "import_rollback",
    "preview_errors_csv",
    "purge_expired_uploads",
    "upload_create",
    "upload_get",
]
