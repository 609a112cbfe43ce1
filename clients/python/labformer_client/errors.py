"""Exceptions raised by the client. Each carries the API's error code, message and field details,
and the CLI exit code that names what failed."""

from __future__ import annotations

from typing import Any


class LabformerError(Exception):
    """Base class. ``code``/``message``/``fields`` come from the API's JSON error body when there is one."""

    exit_code = 1

    def __init__(self, message: str, *, code: str = "error", fields: dict[str, Any] | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.fields = fields or {}
        self.status = status

    def __str__(self) -> str:
        where = f" [{self.status}]" if self.status else ""
        fields = "".join(f"\n  {name}: {_flat(detail)}" for name, detail in self.fields.items())
        return f"{self.code}{where}: {self.message}{fields}"


def _flat(detail: Any) -> str:
    if isinstance(detail, list):
        return "; ".join(_flat(d) for d in detail)
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {_flat(v)}" for k, v in detail.items())
    return str(detail)


class AuthError(LabformerError):
    """401/403: a missing, wrong, expired or revoked token, or an action the user may not take."""

    exit_code = 3


class NotFound(LabformerError):
    """404: the object does not exist or the user may not see it (the API does not say which)."""

    exit_code = 4


class InvalidInput(LabformerError):
    """400/409/422: the request was refused as it stands (bad field, offset mismatch, checksum, conflict),
    or a dataset came out of validation invalid."""

    exit_code = 5


class JobFailed(LabformerError):
    """A job ended failed or cancelled (raised by ``wait(..., raise_on_failure=True)``)."""

    exit_code = 6

    def __init__(self, message: str, *, job: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.job = job


class WaitTimeout(LabformerError):
    """Waiting for a job or dataset took longer than the timeout; the object is left as it is."""

    exit_code = 7


class ServerError(LabformerError):
    """5xx, or the network failed (connection refused or dropped, timeouts) after the retries."""

    exit_code = 8
