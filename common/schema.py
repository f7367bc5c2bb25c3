"""drf-spectacular post-processing: describe the envelope on every operation."""

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
