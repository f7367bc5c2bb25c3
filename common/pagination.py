import re

from django.core.paginator import InvalidPage
from rest_framework import pagination
from rest_framework.response import Response

from common.exceptions import ValidationFailed

# ASCII digits only (str.isdigit() also accepts "²", which int() refuses), and short enough
# that int() never meets Python's limit on digits.
_POSITIVE_INT = re.compile(r"[0-9]{1,18}")


def _positive_int(raw: str) -> int | None:
    if not _POSITIVE_INT.fullmatch(raw or ""):
        return None
    value = int(raw)
    return value if value >= 1 else None


class PageNumberPagination(pagination.PageNumberPagination):
    """``?page=&pageSize=`` → ``{items, page, pageSize, total}``; a page past the end is empty."""

    page_query_param = "page"
    page_size_query_param = "pageSize"
    max_page_size = 200
    page_size = 50

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        raw_page = request.query_params.get(self.page_query_param, "1")
        raw_size = request.query_params.get(self.page_size_query_param, str(self.page_size))
        page_number, size = _positive_int(raw_page), _positive_int(raw_size)
        errors = {}
        if page_number is None:
            errors["page"] = ["A positive integer is required."]
        if size is None:
            errors["pageSize"] = ["A positive integer is required."]
        if errors:
            raise ValidationFailed(fields=errors)
        self.page_number = page_number
        self.size = min(size, self.max_page_size)
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
                "page": {"type": "integer"},
                "pageSize": {"type": "integer"},
                "total": {"type": "integer"},
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {"name": "page", "in": "query", "required": False, "schema": {"type": "integer"}},
            {
                "name": "pageSize",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "maximum": self.max_page_size, "default": 50},
            },
        ]
