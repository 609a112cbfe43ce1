"""`Idempotency-Key` on POSTs that create something: the first response is stored and replayed.

A second request with the same key while the first is still running gets 409; with the same key on
another endpoint gets 422. Keys are per user.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.db import IntegrityError, transaction
from drf_spectacular.utils import OpenApiParameter
from rest_framework.response import Response

from portal.api.models import IdempotentRequest

IDEMPOTENCY_HEADER = OpenApiParameter(
    name="Idempotency-Key", location=OpenApiParameter.HEADER, required=False, type=str,
    description="A client-chosen unique key (e.g. a UUID). Retrying the POST with the same key returns the "
                "first response instead of creating a second object.",
)


def idempotent(view_method: Callable) -> Callable:
    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):  # noqa: ANN001, ANN202
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            return view_method(self, request, *args, **kwargs)
        if len(key) > 128:
            return Response({"error": {"code": "invalid", "message": "Idempotency-Key is longer than 128 characters",
                                       "fields": {}}}, status=400)
        endpoint = f"{request.method} {request.path}"[:200]
        try:
            with transaction.atomic():
                record = IdempotentRequest.objects.create(user=request.user, key=key, endpoint=endpoint)
        except IntegrityError:
            record = IdempotentRequest.objects.get(user=request.user, key=key)
            if record.endpoint != endpoint:
                return Response({"error": {"code": "idempotency_key_reused",
                                           "message": f"this Idempotency-Key was used for {record.endpoint}",
                                           "fields": {}}}, status=422)
            if record.status_code is None:
                return Response({"error": {"code": "in_progress", "message": "the first request with this "
                                           "Idempotency-Key is still being processed; retry shortly", "fields": {}}},
                                status=409)
            response = Response(record.body, status=record.status_code)
            response["Idempotent-Replayed"] = "true"
            return response
        try:
            response = view_method(self, request, *args, **kwargs)
        except Exception:
            record.delete()  # a failed first attempt must not block the retry
            raise
        if 200 <= response.status_code < 300:
            IdempotentRequest.objects.filter(pk=record.pk).update(status_code=response.status_code, body=response.data)
        else:
            record.delete()  # errors are not replayed: the client may fix the request and retry
        return response

    return wrapper
