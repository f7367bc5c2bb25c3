"""drf-spectacular helpers: the envelope on every operation, the tags that group the
operations by area, and one shape for every operation's description."""

# The areas of the API, in the order the docs list them (tags=[...] of each extend_schema).
API_TAGS = [
    {"name": "records", "description": "The caller, punches, attendance days and exports."},
    {"name": "requests", "description": "Corrections of a day: ask, approve, reject, cancel."},
    {"name": "imports", "description": "Upload, preview, commit and roll back import files."},
    {"name": "events", "description": "Events, their participants, check-in and attendance."},
    {"name": "admin", "description": "Users, roles and the organisation's settings."},
    {"name": "audit", "description": "The organisation's audit events."},
    {"name": "gates", "description": "Release gates: stored runs, dashboard, go/no-go."},
]
PAGED = (
    "Paged: `page` (from 1) and `pageSize` (default 50, at most 200) answer `{items, page, "
    "pageSize, total}`."
)
ANY_USER = (
    "any attendance user (an active employee of an organisation, from an address the "
    "organisation's IP allowlist accepts)"
)


def operation_doc(what: str, *, who: str, paging: str = "", errors: str = "") -> str:
    """An operation's description, always in the same order: what it does, who may call it,
    its paging and filters, then the error codes worth knowing beyond the common ones
    (UNAUTHENTICATED, FORBIDDEN, IP_RESTRICTED, RATE_LIMITED, DB_NOT_READY, INTERNAL_ERROR,
    which every operation may answer)."""
    parts = [what, f"**Who may call:** {who[:1].upper()}{who[1:]}"]
    if paging:
        parts.append(paging)
    if errors:
        parts.append(f"**Errors:** {errors}")
    return "\n\n".join(parts)


ERROR_ENVELOPE = {
    "type": "object",
    "required": ["ok", "error"],
    "properties": {
        "ok": {"type": "boolean", "enum": [False]},
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "example": "VALIDATION_ERROR"},
                "message": {"type": "string"},
                "details": {"type": "object", "additionalProperties": True},
            },
        },
    },
}
COMMON_ERRORS = {
    "400": "VALIDATION_ERROR",
    "401": "UNAUTHENTICATED",
    "403": "FORBIDDEN or IP_RESTRICTED",
    "404": "NOT_FOUND",
    "429": "RATE_LIMITED",
    "500": "INTERNAL_ERROR",
    "503": "DB_NOT_READY",
}


def _body_is_required(component: dict) -> bool:
    """A body with required keys, or with a rule that asks for one of several (anyOf/oneOf
    of ``required``), cannot be left out: drf-spectacular sees only the first kind."""
    if component.get("required"):
        return True
    return any(
        all(branch.get("required") for branch in component.get(rule, []))
        for rule in ("anyOf", "oneOf")
        if component.get(rule)
    )


def _mark_required_bodies(result) -> None:
    components = result.get("components", {}).get("schemas", {})
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            body = operation.get("requestBody")
            if not body:
                continue
            for media in body.get("content", {}).values():
                ref = (media.get("schema") or {}).get("$ref", "")
                component = components.get(ref.rsplit("/", 1)[-1]) if ref else None
                if component and _body_is_required(component):
                    body["required"] = True


def wrap_in_envelope(result, generator, request, public):
    _mark_required_bodies(result)
    # Declared next to the views' helpers rather than in settings: the docs list the areas
    # in this order, each with its description.
    result["tags"] = API_TAGS
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorEnvelope"] = ERROR_ENVELOPE
    error_ref = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, response in list(responses.items()):
                content = response.get("content", {})
                json_body = content.get("application/json")
                if status.startswith("2") and json_body and "schema" in json_body:
                    json_body["schema"] = {
                        "type": "object",
                        "required": ["ok", "data"],
                        "properties": {
                            "ok": {"type": "boolean", "enum": [True]},
                            "data": json_body["schema"],
                        },
                    }
                elif status[0] in "45":
                    response["content"] = {"application/json": {"schema": error_ref}}
            for status, description in COMMON_ERRORS.items():
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": error_ref}},
                    },
                )
    return result
