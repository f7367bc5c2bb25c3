"""Import endpoints (roles importer or admin). The organisation is always the caller's."""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser, DataAndFiles, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import query_params, validated
from common.csv_export import copy_csv_response, streaming_csv_response
from common.exceptions import ValidationFailed
from common.pagination import PageNumberPagination
from common.permissions import IsImporterOrAdmin
from common.schema import PAGED, operation_doc
from imports import formats, selectors, services
from imports.api import serializers as s
from imports.models import ImportJob

TOKEN_ERRORS = {
    400: OpenApiResponse(description="COMMIT_TOKEN_REQUIRED, IMPORT_TOO_LARGE_FOR_SYNC, …"),
    403: OpenApiResponse(description="COMMIT_TOKEN_INVALID, FORBIDDEN"),
    409: OpenApiResponse(
        description="IDEMPOTENCY_KEY_CONFLICT, IMPORT_IN_PROGRESS, or BUSY (another import or "
        "rollback of the organisation is running: retry after Retry-After)"
    ),
    410: OpenApiResponse(description="UPLOAD_EXPIRED"),
    415: OpenApiResponse(description="UNSUPPORTED_FORMAT"),
}
SOURCE_ERRORS = {
    400: OpenApiResponse(description="VALIDATION_ERROR, EMPTY_FILE, IMPORT_TOO_LARGE_FOR_SYNC"),
    410: OpenApiResponse(description="UPLOAD_EXPIRED"),
    415: OpenApiResponse(description="UNSUPPORTED_FORMAT"),
}
IMPORTERS = (
    "importers and admins (role importer or admin); others are refused (FORBIDDEN). "
    "Files, batches and jobs are the caller's organisation's only."
)
SOURCE_DOC = (
    "The rows come from an upload (`fileId`) or from `csvText`, exactly one of them; "
    "`format` is detected when left out, `mapping` renames the file's columns to the "
    "format's, `timezone` reads times without an offset (default: the organisation's). "
    "Rows naming nobody in the organisation are skipped (UNKNOWN_EMPLOYEE) unless "
    "`createMissingEmployees` is true."
)
SOURCE_ERROR_DOC = (
    "VALIDATION_ERROR or EMPTY_FILE (400); IMPORT_TOO_LARGE_FOR_SYNC (400) above "
    "IMPORT_SYNC_MAX_ROWS rows; UPLOAD_EXPIRED (410): the upload is past its TTL; "
    "UNSUPPORTED_FORMAT (415)"
)
COMMIT_DOC = (
    "`mode` is `override` (the file's values replace the day, the default) or `merge` "
    "(earliest in, latest out). Needs a `commitToken` from prepare, consumed by the commit. "
    "A retry with the same `idempotencyKey` answers the first result with "
    "`idempotent: true` and needs no new token. Days changed between the plan and the apply "
    "are left as they were (row errors CHANGED_DURING_IMPORT)."
)
COMMIT_ERROR_DOC = (
    "COMMIT_TOKEN_REQUIRED (400); COMMIT_TOKEN_INVALID (403): unknown, used, expired or "
    "another user's; IDEMPOTENCY_KEY_CONFLICT (409): the key's first request had another "
    "input; IMPORT_IN_PROGRESS (409): the key's first request still runs; BUSY (409): "
    "another import or rollback of the organisation runs, retry after `Retry-After`; "
    "UPLOAD_EXPIRED (410); UNSUPPORTED_FORMAT (415); RATE_LIMITED (429) past "
    "RATELIMIT_COMMIT"
)
BATCH_NOT_FOUND = "NOT_FOUND (404): no such batch in the caller's organisation"

# Multipart framing around the file: the Content-Length check leaves room for it.
MULTIPART_SLACK = 64 * 1024


def _organisation(request):
    return request.user.employee.organisation


def options_from(data: dict) -> services.ImportOptions:
    return services.ImportOptions(
        file_id=data.get("fileId"),
        csv_text=data.get("csvText"),
        format=data.get("format") or None,
        mapping=dict(data.get("mapping") or {}),
        time_zone=data.get("timezone") or None,
        mode=data.get("mode") or "override",
        create_missing_employees=data.get("createMissingEmployees", False),
        preview_limit=data.get("previewLimit", 50),
        idempotency_key=data.get("idempotencyKey") or None,
        return_items=data.get("returnItems", False),
        items_limit=data.get("itemsLimit", 100),
    )


def job_body(job: ImportJob, *, idempotent: bool | None = None) -> dict:
    body = {"job": s.JobSerializer(job).data}
    if idempotent is not None:
        body["idempotent"] = idempotent
    return body


class FileFormatParameterNegotiation(DefaultContentNegotiation):
    """``?format=`` names the import file format here, not DRF's renderer override: every
    answer is the JSON envelope (or a CSV download built by the view)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ImportView(APIView):
    permission_classes = [IsImporterOrAdmin]
    content_negotiation_class = FileFormatParameterNegotiation


class FormatsView(ImportView):
    @extend_schema(
        operation_id="import_formats",
        tags=["imports"],
        summary="List the import formats",
        description=operation_doc(
            "Every format an import understands: its name (for `format`), label, kind, the "
            "containers it comes in (CSV, XLSX, DAT), its columns (header, required, "
            "description) and whether a template can be downloaded.",
            who=IMPORTERS,
        ),
        responses=s.FormatSerializer(many=True),
    )
    def get(self, request):
        items = [
            {
                "name": fmt.name,
                "label": str(fmt.label),
                "kind": fmt.kind,
                "containers": list(fmt.containers),
                "columns": [
                    {
                        "header": column.header,
                        "required": column.required,
                        "description": str(column.description),
                    }
                    for column in fmt.columns
                ],
                "templateAvailable": fmt.name in ("standard", "dingtalk_daily"),
            }
            for fmt in formats.FORMATS.values()
        ]
        return Response(items)


class TemplateView(ImportView):
    @extend_schema(
        operation_id="import_template",
        tags=["imports"],
        summary="Download an import template as CSV",
        description=operation_doc(
            "A CSV (UTF-8 with a BOM) with the format's header and example rows: `format` "
            "is `standard` (the default) or `dingtalk_daily` (its column names as DingTalk "
            "writes them).",
            who=IMPORTERS,
            errors="VALIDATION_ERROR (400): another format.",
        ),
        parameters=[s.TemplateFilterSerializer],
        responses={(200, "text/csv"): str},
    )
    def get(self, request):
        name = validated(s.TemplateFilterSerializer, query_params(request))["format"]
        rows = formats.get_format(name).template_rows()
        return streaming_csv_response(f"attendance-import-{name}.csv", rows[0], rows[1:])


class RawBodyParser(BaseParser):
    """Accepts any body without reading it: the view streams ``request._request`` to disk
    itself. (DRF parses bodies on first access, e.g. the session CSRF check, and would
    refuse a file's media type with 415 before the view runs.)"""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return DataAndFiles({}, {})


class UploadView(ImportView):
    parser_classes = [MultiPartParser, RawBodyParser]

    @extend_schema(
        operation_id="import_upload",
        tags=["imports"],
        summary="Upload an import file",
        description=operation_doc(
            "Stores a CSV, XLSX or DAT file for preview and commit, sent as the raw body "
            "(name in `?filename=`) or as the multipart field `file`. Answers 201 with its "
            "`fileId`, size, SHA-256, the format and encoding detected, its row count and "
            "when it expires (after IMPORT_UPLOAD_TTL_SECONDS).",
            who=IMPORTERS,
            errors="EMPTY_FILE or VALIDATION_ERROR (400): an empty file, a broken multipart "
            "body, no `file`, a NUL in the name; UPLOAD_TOO_LARGE (413) over "
            "IMPORT_UPLOAD_MAX_BYTES, refused before the body is read when Content-Length "
            "says so; UNSUPPORTED_FORMAT (415): binary, a zip bomb, nothing a format reads; "
            "RATE_LIMITED (429) past RATELIMIT_UPLOAD.",
        ),
        parameters=[OpenApiParameter("filename", str, description="For a raw body")],
        request={
            "application/octet-stream": {"type": "string", "format": "binary"},
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            },
        },
        responses={
            201: s.UploadSerializer,
            400: OpenApiResponse(description="EMPTY_FILE"),
            413: OpenApiResponse(description="UPLOAD_TOO_LARGE"),
            415: OpenApiResponse(description="UNSUPPORTED_FORMAT"),
        },
    )
    def post(self, request):
        django_request = request._request
        limit = settings.IMPORT_UPLOAD_MAX_BYTES
        try:
            declared = int(django_request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        # Refuse before reading a byte when the client says it is too large.
        if declared > limit + MULTIPART_SLACK:
            raise services.UploadTooLarge(
                f"The file is larger than the upload limit of {limit} bytes.",
                details={"maxBytes": limit},
            )
        content_type = django_request.META.get("CONTENT_TYPE", "")
        if content_type.startswith("multipart/form-data"):
            try:
                upload = django_request.FILES.get("file")
            except MultiPartParserError as exc:  # no boundary, a broken frame: the client's
                raise ValidationFailed(
                    gettext("Malformed multipart body: %(error)s") % {"error": exc}
                ) from exc
            if upload is None:
                raise ValidationFailed(fields={"file": [gettext("Attach the file as 'file'.")]})
            filename = upload.name
            chunks = upload.chunks()
        else:
            filename = request.query_params.get("filename") or "upload"
            chunks = iter(lambda: django_request.read(1024 * 1024), b"")
        if "\x00" in filename:
            # Never a real name: a sign of a truncation trick. (Other control and bidi
            # characters are removed by the upload service.)
            raise ValidationFailed(
                fields={"filename": [gettext("A file name must not contain NUL characters.")]}
            )
        record = services.upload_create(
            actor=request.user,
            organisation=_organisation(request),
            filename=filename,
            chunks=chunks,
        )
        return Response(s.UploadSerializer(record).data, status=201)


class PrepareView(ImportView):
    @extend_schema(
        operation_id="import_prepare",
        tags=["imports"],
        summary="Get a commit token",
        description=operation_doc(
            "Issues the token one commit needs: for the caller only, used once, valid for "
            "`ttlSeconds` (IMPORT_COMMIT_TOKEN_TTL_SECONDS). A preview does not use it up.",
            who=IMPORTERS,
            errors="RATE_LIMITED (429) past RATELIMIT_PREVIEW.",
        ),
        request=None,
        responses=s.PrepareSerializer,
    )
    def post(self, request):
        token, record = services.commit_token_issue(
            actor=request.user, organisation=_organisation(request)
        )
        return Response(
            {
                "commitToken": token,
                "expiresAt": record.expires_at,
                "ttlSeconds": settings.IMPORT_COMMIT_TOKEN_TTL_SECONDS,
            }
        )


class PreviewView(ImportView):
    @extend_schema(
        operation_id="import_preview",
        tags=["imports"],
        summary="Preview an import",
        description=operation_doc(
            "Reads and plans the rows without writing anything: what each would do "
            "(`stats`: insert, update, unchanged, skip, invalid, duplicate), the first "
            "`previewLimit` rows, the row errors (row, column, code, message; up to "
            "IMPORT_ERRORS_LIMIT, `errorsTotal` counts them all) and how many employees "
            f"would be created. {SOURCE_DOC}",
            who=IMPORTERS,
            errors=f"{SOURCE_ERROR_DOC}; RATE_LIMITED (429) past RATELIMIT_PREVIEW.",
        ),
        request=s.PreviewInputSerializer,
        responses={200: s.PreviewSerializer, **SOURCE_ERRORS},
    )
    def post(self, request):
        data = validated(s.PreviewInputSerializer, request.data)
        result = services.import_preview(
            actor=request.user, organisation=_organisation(request), options=options_from(data)
        )
        return Response(result)


class PreviewErrorsView(ImportView):
    @extend_schema(
        operation_id="import_preview_errors_csv",
        tags=["imports"],
        summary="Download a preview's row errors as CSV",
        description=operation_doc(
            "Plans the rows as the preview does (the same body, nothing written) and "
            "answers every row error, not only the first IMPORT_ERRORS_LIMIT, as a CSV "
            f"download. {SOURCE_DOC}",
            who=IMPORTERS,
            errors=f"{SOURCE_ERROR_DOC}; RATE_LIMITED (429) past RATELIMIT_EXPORT.",
        ),
        request=s.PreviewInputSerializer,
        responses={(200, "text/csv"): str, **SOURCE_ERRORS},
    )
    def post(self, request):
        data = validated(s.PreviewInputSerializer, request.data)
        spool = services.preview_errors_csv(
            actor=request.user, organisation=_organisation(request), options=options_from(data)
        )
        response = FileResponse(
            spool,
            as_attachment=True,
            filename="import-errors.csv",
            content_type="text/csv; charset=utf-8",
        )
        response["X-Content-Type-Options"] = "nosniff"
        return response


class CommitView(ImportView):
    @extend_schema(
        operation_id="import_commit",
        tags=["imports"],
        summary="Commit an import",
        description=operation_doc(
            "Applies the rows now, as one batch that can be rolled back, and answers its "
            "`batchId`, `stats` and time taken (with the rows' outcomes when `returnItems`, "
            f"up to `itemsLimit`). {COMMIT_DOC} {SOURCE_DOC}",
            who=IMPORTERS,
            errors=f"{COMMIT_ERROR_DOC}; IMPORT_TOO_LARGE_FOR_SYNC (400) above "
            "IMPORT_SYNC_MAX_ROWS rows: use commit-async.",
        ),
        request=s.CommitInputSerializer,
        responses={200: s.CommitSerializer, **TOKEN_ERRORS},
    )
    def post(self, request):
        data = validated(s.CommitInputSerializer, request.data)
        result = services.import_commit(
            actor=request.user,
            organisation=_organisation(request),
            options=options_from(data),
            commit_token=data.get("commitToken"),
        )
        return Response(result)


class CommitAsyncView(ImportView):
    @extend_schema(
        operation_id="import_commit_async",
        tags=["imports"],
        summary="Queue an import commit as a job",
        description=operation_doc(
            "The commit's body, run by a worker: answers 202 with the `job` to follow at "
            "`jobs/{id}`; its result is the commit's. When the idempotency key's first "
            "commit ran synchronously, nothing is queued: 200 with `job: null`, "
            f"`idempotent: true` and that commit's `result`. {COMMIT_DOC}",
            who=IMPORTERS,
            errors=f"{COMMIT_ERROR_DOC}.",
        ),
        request=s.CommitInputSerializer,
        responses={202: s.JobEnvelopeSerializer, **TOKEN_ERRORS},
    )
    def post(self, request):
        data = validated(s.CommitInputSerializer, request.data)
        queued = services.import_commit_async(
            actor=request.user,
            organisation=_organisation(request),
            options=options_from(data),
            commit_token=data.get("commitToken"),
        )
        if queued.job is None:
            # The key's first commit ran synchronously: nothing is queued, its answer stands.
            return Response({"job": None, "idempotent": True, "result": queued.result})
        return Response(job_body(queued.job, idempotent=queued.idempotent), status=202)


class JobView(ImportView):
    @extend_schema(
        operation_id="import_job",
        tags=["imports"],
        summary="Get an import job's progress",
        description=operation_doc(
            "A queued commit or rollback: its status (queued, running, succeeded, failed, "
            "cancelled), rows processed of the total and the percentage, then its batch, "
            "result or error, and when it started and finished. Poll until it has finished.",
            who=IMPORTERS,
            errors="NOT_FOUND (404): no such job in the caller's organisation.",
        ),
        responses=s.JobEnvelopeSerializer,
    )
    def get(self, request, job_id):
        job = selectors.job_get(organisation=_organisation(request), job_id=job_id)
        return Response(job_body(job))


class BatchListView(ImportView):
    pagination_class = PageNumberPagination

    @extend_schema(
        operation_id="import_batches",
        tags=["imports"],
        summary="List import batches",
        description=operation_doc(
            "The organisation's committed (and rolled back) imports, the newest first: "
            "file, format, mode, stats, who committed and who rolled back, and when.",
            who=IMPORTERS,
            paging=PAGED,
            errors="VALIDATION_ERROR (400): a page or pageSize out of range.",
        ),
        responses=s.BatchSerializer(many=True),
    )
    def get(self, request):
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(
            selectors.batch_list(organisation=_organisation(request)), request, view=self
        )
        return paginator.get_paginated_response(s.BatchSerializer(page, many=True).data)


class BatchDetailView(ImportView):
    @extend_schema(
        operation_id="import_batch",
        tags=["imports"],
        summary="Get an import batch",
        description=operation_doc(
            "One batch, as in the list.", who=IMPORTERS, errors=f"{BATCH_NOT_FOUND}."
        ),
        responses=s.BatchSerializer,
    )
    def get(self, request, batch_id):
        batch = selectors.batch_get(organisation=_organisation(request), batch_id=batch_id)
        return Response(s.BatchSerializer(batch).data)


class BatchItemsView(ImportView):
    pagination_class = PageNumberPagination

    @extend_schema(
        operation_id="import_batch_items",
        tags=["imports"],
        summary="List an import batch's rows",
        description=operation_doc(
            "The batch's rows in file order, each with what the import did with it "
            "(`action`) and why.",
            who=IMPORTERS,
            paging=f"{PAGED} Filter: `action` (inserted, updated, unchanged, skipped, "
            "invalid, duplicate).",
            errors=f"{BATCH_NOT_FOUND}; VALIDATION_ERROR (400): an unknown action.",
        ),
        parameters=[s.ItemFilterSerializer],
        responses=s.ItemSerializer(many=True),
    )
    def get(self, request, batch_id):
        filters = validated(s.ItemFilterSerializer, query_params(request))
        batch = selectors.batch_get(organisation=_organisation(request), batch_id=batch_id)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(
            selectors.batch_items(batch=batch, action=filters.get("action")), request, view=self
        )
        return paginator.get_paginated_response(s.ItemSerializer(page, many=True).data)


class BatchExportView(ImportView):
    @extend_schema(
        operation_id="import_batch_export_csv",
        tags=["imports"],
        summary="Export an import batch's rows as CSV",
        description=operation_doc(
            "The batch's rows streamed as CSV in UTF-8 with a BOM, text a spreadsheet would "
            "run as a formula prefixed with `'`: `type` is `all` (the default), `imported` "
            "(inserted or updated), `skipped` (skipped, invalid, duplicate) or `anomalies` "
            "(days imported with a status worth a look). Every export is audited.",
            who=IMPORTERS,
            errors=f"{BATCH_NOT_FOUND}; VALIDATION_ERROR (400): an unknown type; "
            "RATE_LIMITED (429) past RATELIMIT_EXPORT.",
        ),
        parameters=[s.ExportFilterSerializer],
        responses={(200, "text/csv"): str},
    )
    def get(self, request, batch_id):
        export_type = validated(s.ExportFilterSerializer, query_params(request))["type"]
        batch = selectors.batch_get(organisation=_organisation(request), batch_id=batch_id)
        services.batch_export_audit(actor=request.user, batch=batch, export_type=export_type)
        sql, params = selectors.batch_export_sql(batch=batch, export_type=export_type)
        return copy_csv_response(f"import-batch-{batch.pk}-{export_type}.csv", sql, params)


class RollbackView(ImportView):
    @extend_schema(
        operation_id="import_rollback",
        tags=["imports"],
        summary="Roll back an import batch",
        description=operation_doc(
            "Deletes the days the batch inserted, puts back the values of the days it "
            "updated, removes its punches and the employees it created that nothing else "
            "uses; answers what was restored and deleted. A batch above "
            "IMPORT_ASYNC_ROLLBACK_ROWS rows is rolled back by a job: 202 with the job.",
            who=IMPORTERS,
            errors=f"{BATCH_NOT_FOUND}; ROLLBACK_CONFLICT (409): later batches replaced "
            "days of this one (`details.laterBatches`, roll those back first) or days "
            "changed since (`details.conflicts`); ALREADY_ROLLED_BACK (409); BUSY (409): "
            "another import or rollback runs; RATE_LIMITED (429) past RATELIMIT_COMMIT.",
        ),
        request=None,
        responses={
            200: s.RollbackSerializer,
            202: s.JobEnvelopeSerializer,
            409: OpenApiResponse(
                description="ROLLBACK_CONFLICT (details.laterBatches: roll those back first; "
                "details.conflicts: the days changed later), ALREADY_ROLLED_BACK, or BUSY "
                "(another import or rollback is running)"
            ),
        },
    )
    def post(self, request, batch_id):
        result = services.import_rollback(
            actor=request.user, organisation=_organisation(request), batch_id=batch_id
        )
        if isinstance(result, ImportJob):
            return Response(job_body(result), status=202)
        return Response(result)
