"""What the import pages call the codes the engine and the API speak in.

The API keeps the codes (clients key on them); a person reads these labels, in their
language, with the code beside them where it helps to search or report it.
"""

from django.utils.translation import gettext_lazy as _

from attendance.choices import RecordStatus
from imports.formats.base import RowCode
from imports.models import ItemAction

ROW_CODE_LABELS = {
    "UNKNOWN_EMPLOYEE": _("Unknown employee"),
    RowCode.MISSING_EMPLOYEE: _("No employee named"),
    RowCode.INVALID_DATE: _("Invalid date"),
    RowCode.INVALID_TIME: _("Invalid time"),
    RowCode.FUTURE_DATE: _("Date in the future"),
    RowCode.MISSING_VALUE: _("Missing value"),
    RowCode.INVALID_VALUE: _("Invalid value"),
    RowCode.INVALID_PUNCH: _("Punch marked invalid by DingTalk"),
    "OUT_BEFORE_IN": _("Last punch before the first"),
    "DUPLICATE_ROW": _("Duplicate row"),
    "CORRECTED_DAY_KEPT": _("Corrected day kept"),
    "CHANGED_DURING_IMPORT": _("Changed during the import"),
}

# The keys of a preview's (and a batch's) stats.
STAT_LABELS = {
    "insert": _("Insert"),
    "update": _("Update"),
    "unchanged": _("Unchanged"),
    "skip": _("Skip"),
    "invalid": _("Invalid"),
    "duplicate": _("Duplicate"),
}


def row_code_label(code: str) -> str:
    return str(ROW_CODE_LABELS.get(code, code))


def wizard_labels() -> dict:
    """The labels the wizard's script shows, in the request's language (for json_script)."""
    return {
        "codes": {code: str(label) for code, label in ROW_CODE_LABELS.items()},
        "stats": {key: str(label) for key, label in STAT_LABELS.items()},
        "actions": {value: str(label) for value, label in ItemAction.choices},
        "statuses": {value: str(label) for value, label in RecordStatus.choices},
    }
