"""Storage helpers: write files through Django's storage API, hashing as the bytes go by."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from django.core.files import File
from django.core.files.storage import default_storage


class HashingFile(File):
    """Wraps an uploaded file so that one pass through ``chunks()`` both stores and hashes it."""

    def __init__(self, file, name: str | None = None) -> None:  # noqa: ANN001 - any file-like
        super().__init__(file, name=name)
        self.hasher = hashlib.sha256()
        self.bytes_seen = 0

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        for chunk in super().chunks(chunk_size):
            self.hasher.update(chunk)
            self.bytes_seen += len(chunk)
            yield chunk

    @property
    def sha256(self) -> str:
        return self.hasher.hexdigest()


def storage_save_hashed(*, path: str, file, name: str | None = None) -> tuple[str, str, int]:  # noqa: ANN001
    """Save ``file`` under ``path``; returns (stored name, sha256, size in bytes)."""
    wrapped = HashingFile(file, name=name)
    if hasattr(file, "seek"):
        file.seek(0)
    stored = default_storage.save(path, wrapped)
    return stored, wrapped.sha256, wrapped.bytes_seen
