"""Errors raised by services. Views and the API turn them into responses."""

from __future__ import annotations


class ServiceError(Exception):
    """A request that cannot be carried out as asked. ``code`` is stable, ``message`` is for people."""

    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class NotAllowed(ServiceError):
    """The user may see the object but not change it (e.g. a lab viewer launching a job)."""

    code = "not_allowed"
