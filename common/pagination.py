import re

from django.core.paginator import InvalidPage
from django.utils.translation import gettext as _
from rest_framework import pagination
from rest_framework.response import Response

from common.exceptions import ValidationFailed

# ASCII digits only (str.isdigit() also accepts "²", which int() refuses), and short enough
# that int() never meets Python's limit on digits.
_POSITIVE_INT = re.compile(r"[0-9]{1,18}")
# Far past any real list; what the schema declares as page's maximum.
MAX_PAGE = 1_000_000_000


def _int_in_range(raw: str, maximum: int) -> int | None:
    if not _POSITIVE_INT.fullmatch(raw or ""):
        return None
    value = int(raw)
    return value if 1 <= value <= maximum else None


class PageNumberPagination(pagination.PageNumberPagination):
    """``?page=&pageSize=`` → ``{items, page, pageSize, total}``; a page past the end is empty.

    ``pageSize`` above 200 is refused (VALIDATION_ERROR), not lowered: the schema declares
    ``maximum: 200``, and a client asking for 500 rows should learn it gets at most 200."""

    page_query_param = "page"
    page_size_query_param = "pageSize"
    max_page_size = 200
    page_size = 50

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        raw_page = request.query_params.get(self.page_query_param, "1")
        raw_size = request.query_params.get(self.page_size_query_param, str(self.page_size))
        page_number = _int_in_range(raw_page, MAX_PAGE)
        size = _int_in_range(raw_size, self.max_page_size)
        errors = {}
        if page_number is None:
            errors["page"] = [
                _("An integer from 1 to %(maximum)d is required.") % {"maximum": MAX_PAGE}
            ]
        if size is None:
            errors["pageSize"] = [
                _("An integer from 1 to %(maximum)d is required.") % {"maximum": self.max_page_size}
            ]
        if errors:
            raise ValidationFailed(fields=errors)
        self.page_number = page_number
        self.size = size
        paginator = self.django_paginator_class(queryset, self.size)
        self.total = paginator.count
        try:
            self.page = paginator.page(self.page_number)
        except InvalidPage:
            return []
        return list(self.page)

    def get_paginated_response(self, data):
        return Response(
            {"items": data, "page": self.page_number, "pageSize": self.size, "total": self.total}
        )

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["items", "page", "pageSize", "total"],
            "properties": {
                "items": schema,
                "page": {"type": "integer", "minimum": 1},
                "pageSize": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
                "total": {"type": "integer", "minimum": 0},
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": "page",
                "in": "query",
                "required": False,
                "description": "1-based; a page past the end is empty.",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1},
            },
            {
                "name": "pageSize",
                "in": "query",
                "required": False,
                "description": f"At most {self.max_page_size}; larger values are refused.",
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": self.max_page_size,
                    "default": self.page_size,
                },
            },
        ]
