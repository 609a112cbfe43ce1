"""OpenAPI schema post-processing: every operation documents the error answers it can give.

drf-spectacular documents the success answers a view declares. The errors come from one place
(`portal.api.exceptions`, always the same JSON body), so they are added here, once, to every
operation, instead of repeating them in each `extend_schema`.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every API error: a stable code, a readable message, and the offending fields.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "stable, e.g. invalid, not_found, conflict"},
                "message": {"type": "string", "description": "what went wrong and where, for a person"},
                "fields": {
                    "type": "object",
                    "description": "field or parameter -> messages (may be nested for nested fields)",
                    "additionalProperties": True,
                },
            },
            "required": ["code", "message", "fields"],
        },
    },
    "required": ["error"],
}

# Why each status can happen; the operations it applies to are chosen in `add_error_responses`.
_DESCRIPTIONS = {
    "400": "The request is invalid: a field, a query parameter or the body (see `error.fields`).",
    "401": "No valid API token (or session) was given.",
    "403": "Authenticated, but not allowed to do this (e.g. a viewer of the lab writing to it).",
    "404": "No such object, or not visible to you (ids in routes are whole numbers; upload ids are UUIDs).",
    "409": "The object's state does not allow this now (e.g. a job not finished, an upload at another offset).",
    "413": "The request body is larger than the server accepts.",
    "415": "The request body's Content-Type is not one this operation reads.",
    "422": "The upload's bytes do not match the sha256 given, or the Idempotency-Key was already used for "
           "another request.",
    "429": "Too many requests for this token; retry after the `Retry-After` header's seconds.",
}
_UNSAFE = {"post", "put", "patch", "delete"}


def _statuses(path: str, method: str, operation: dict) -> list[str]:
    statuses = ["400", "401", "403", "404", "429"]
    if method in _UNSAFE:
        statuses.append("409")
    if "requestBody" in operation:
        statuses += ["413", "415"]
    takes_key = any(p.get("in") == "header" and p.get("name") == "Idempotency-Key"
                    for p in operation.get("parameters", []))
    if path.endswith("/finish/") or takes_key:
        statuses.append("422")
    return statuses


def add_error_responses(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """drf-spectacular POSTPROCESSING_HOOKS entry: the `Error` component and, on every operation,
    the error statuses it can answer (an explicit declaration in a view wins)."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status in _statuses(path, method, operation):
                operation["responses"].setdefault(status, {
                    "description": _DESCRIPTIONS[status], "content": {"application/json": {"schema": ref}},
                })
    return result
