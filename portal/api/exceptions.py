"""Every API error is JSON: {"error": {"code": ..., "message": ..., "fields": {...}}}, never an HTML page."""

from __future__ import annotations

import logging

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from portal.common.errors import NotAllowed, ServiceError

log = logging.getLogger(__name__)

_STATUS_FOR_CODE = {"conflict": 409, "in_use": 409, "offset_mismatch": 409, "incomplete": 409,
                    "checksum_mismatch": 422, "not_allowed": 403, "job_not_finished": 409, "no_model": 409,
                    "not_ready": 409, "no_file": 409, "prediction_failed": 500}


def _body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def not_found_body(path: str) -> dict:
    """The body of a 404 for a path no API route matches."""
    return _body("not_found", f"no API route matches {path[:200]}; ids in routes are whole numbers "
                              "(upload ids are UUIDs); see /api/docs/")


def api_exception_handler(exc: Exception, context: dict) -> Response:
    if isinstance(exc, NotAllowed):
        return Response(_body(exc.code, exc.message, {exc.field: [exc.message]} if exc.field else None), status=403)
    if isinstance(exc, ServiceError):
        # Most name one field; some (records that cannot be predicted) name several.
        fields = getattr(exc, "fields", None) or ({exc.field: [exc.message]} if exc.field else None)
        return Response(_body(exc.code, exc.message, fields), status=_STATUS_FOR_CODE.get(exc.code, 400))
    if isinstance(exc, (ObjectDoesNotExist, Http404)):
        return Response(_body("not_found", "not found"), status=404)
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        log.exception("unhandled API error", exc_info=exc)
        return Response(_body("server_error", "the server failed to handle this request; it has been logged"),
                        status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        first = next(iter(detail.values()), ["invalid"])
        message = str(first[0] if isinstance(first, list) and first else first)
        response.data = _body("invalid", message, detail)
    elif isinstance(exc, exceptions.APIException):
        response.data = _body(exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code, str(exc.detail))
    return response
