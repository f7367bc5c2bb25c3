"""What every preview and commit takes: the request's options and the file it reads."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.utils.translation import gettext

from imports.formats.reading import Table, open_table
from imports.formats.xlsx import FROM_SETTINGS
from imports.models import ImportMode, ImportUpload
from imports.services.errors import UploadExpired


@dataclass(frozen=True)
class ImportOptions:
    file_id: uuid.UUID | None = None
    csv_text: str | None = None
    format: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    time_zone: str | None = None
    mode: str = ImportMode.OVERRIDE
    create_missing_employees: bool = False
    preview_limit: int = 50
    idempotency_key: str | None = None
    return_items: bool = False
    items_limit: int = 100

    def as_params(self) -> dict:
        """JSON-safe, for a job row (an async commit keeps no inline text: see commit)."""
        params = asdict(self)
        params["file_id"] = str(self.file_id) if self.file_id else None
        params["csv_text"] = None
        return params

    @classmethod
    def from_params(cls, params: dict) -> ImportOptions:
        values = dict(params)
        values["file_id"] = uuid.UUID(values["file_id"]) if values.get("file_id") else None
        return cls(**values)


@dataclass
class Source:
    path: Path
    filename: str
    sha256: str
    upload: ImportUpload | None
    temporary: bool
    _table: Table | None = None
    # A web request reads a workbook within IMPORT_XLSX_MAX_PARSE_SECONDS; a job or a
    # command (None) takes the time it takes.
    max_parse_seconds: object = FROM_SETTINGS

    @property
    def table(self) -> Table:
        """The file, opened on first use: a plan from the upload's kept rows never reads it."""
        if self._table is None:
            if not self.path.is_file():
                raise UploadExpired(
                    gettext("The uploaded file is no longer stored; upload it again."),
                    details={"fileId": str(self.upload.pk) if self.upload else None},
                )
            self._table = open_table(
                self.path, filename=self.filename, max_parse_seconds=self.max_parse_seconds
            )
        return self._table

    def close(self) -> None:
        if self.temporary:
            self.path.unlink(missing_ok=True)
