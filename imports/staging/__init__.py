"""Set-based import engine: parsed rows → ``COPY`` into a stage table → plan (insert / update /
unchanged / skip / invalid / duplicate) → apply with per-row pre-images → exact rollback.

- ``stage``: the stage tables and the binary COPY of a parser's results;
- ``engine``: :class:`ImportEngine`, the plan, the preview's reads and the apply's loop;
- ``apply``: the SQL that writes days and the SQL that undoes them, side by side.
"""

from imports.staging.apply import (
    APPLIED_ACTIONS,
    CHANGED_DURING_IMPORT,
    PRIOR_COLUMNS,
    RollbackCount,
    rollback_conflicts,
    rollback_delete_created_employees,
    rollback_delete_inserted,
    rollback_delete_punches,
    rollback_restore_updated,
    rollback_survey,
)
from imports.staging.engine import ACTIONS, STAT_KEYS, ImportEngine, Plan
from imports.staging.stage import (
    STAGE_COLUMNS,
    STAGE_SCHEMA,
    STAGE_TYPES,
    TEMP_STAGE,
    checked_stage_name,
    copy_parsed_rows,
    create_stage_table,
    drop_stage_table,
    fill_stage_table,
    staged_rows_present,
    upload_stage_name,
)

__all__ = [
    "ACTIONS",
    "APPLIED_ACTIONS",
    "CHANGED_DURING_IMPORT",
    "PRIOR_COLUMNS",
    "STAGE_COLUMNS",
    "STAGE_SCHEMA",
    "STAGE_TYPES",
    "STAT_KEYS",
    "TEMP_STAGE",
    "ImportEngine",
    "Plan",
    "RollbackCount",
    "checked_stage_name",
    "copy_parsed_rows",
    "create_stage_table",
    "drop_stage_table",
    "fill_stage_table",
    "rollback_conflicts",
    "rollback_delete_created_employees",
    "rollback_delete_inserted",
    "rollback_delete_punches",
    "rollback_restore_updated",
    "rollback_survey",
    "staged_rows_present",
    "upload_stage_name",
]
