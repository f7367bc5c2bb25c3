"""Import endpoints (roles importer or admin). The organisation is always the caller's."""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse
from django.http.multipartparser import MultiPartParserError
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
    @extend_schema(operation_id="import_formats", responses=s.FormatSerializer(many=True))
    def get(self, request):
        items = [
            {
                "name": fmt.name,
                "label": fmt.label,
                "kind": fmt.kind,
                "containers": list(fmt.containers),
                "columns": [
                    {
                        "header": column.header,
                        "required": column.required,
                        "description": column.description,
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
                raise ValidationFailed(f"Malformed multipart body: {exc}") from exc
            if upload is None:
                raise ValidationFailed(fields={"file": ["Attach the file as 'file'."]})
            filename = upload.name
            chunks = upload.chunks()
        else:
            filename = request.query_params.get("filename") or "upload"
            chunks = iter(lambda: django_request.read(1024 * 1024), b"")
        if "\x00" in filename:
            # Never a real name: a sign of a truncation trick. (Other control and bidi
            # characters are removed by the upload service.)
            raise ValidationFailed(
                fields={"filename": ["A file name must not contain NUL characters."]}
            )
        record = services.upload_create(
            actor=request.user,
            organisation=_organisation(request),
            filename=filename,
            chunks=chunks,
        )
        return Response(s.UploadSerializer(record).data, status=201)


class PrepareView(ImportView):
    @extend_schema(operation_id="import_prepare", request=None, responses=s.PrepareSerializer)
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
    @extend_schema(operation_id="import_job", responses=s.JobEnvelopeSerializer)
    def get(self, request, job_id):
        job = selectors.job_get(organisation=_organisation(request), job_id=job_id)
        return Response(job_body(job))


class BatchListView(ImportView):
    pagination_class = PageNumberPagination

    @extend_schema(operation_id="import_batches", responses=s.BatchSerializer(many=True))
    def get(self, request):
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(
            selectors.batch_list(organisation=_organisation(request)), request, view=self
        )
        return paginator.get_paginated_response(s.BatchSerializer(page, many=True).data)


class BatchDetailView(ImportView):
    @extend_schema(operation_id="import_batch", responses=s.BatchSerializer)
    def get(self, request, batch_id):
        batch = selectors.batch_get(organisation=_organisation(request), batch_id=batch_id)
        return Response(s.BatchSerializer(batch).data)


class BatchItemsView(ImportView):
    pagination_class = PageNumberPagination

    @extend_schema(
        operation_id="import_batch_items",
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
