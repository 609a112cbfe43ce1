"""Reads of datasets. Every access to a dataset on behalf of a user goes through here."""

from __future__ import annotations

import csv
import gzip
import io
import math
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from portal.accounts.selectors import visible_to_user_q
from portal.datasets.models import Dataset, UploadSession


def dataset_list_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Dataset]:
    return Dataset.objects.filter(visible_to_user_q(user=user)).select_related("owner", "lab")


def dataset_get_for_user(*, user: AbstractBaseUser | AnonymousUser, dataset_id: int) -> Dataset:
    """The dataset if ``user`` may see it; ``Dataset.DoesNotExist`` otherwise (a 404, never a 403)."""
    return dataset_list_for_user(user=user).get(pk=dataset_id)


def upload_session_list_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[UploadSession]:
    """The user's own chunked uploads (an upload is never shared, not even within a lab)."""
    return UploadSession.objects.filter(owner_id=user.pk)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def dataset_preview(*, dataset: Dataset, rows: int) -> dict[str, Any]:
    """The first `rows` rows (bounded reads): from the canonical Parquet copy when it exists, else the
    original's text (its first MiB)."""
    n = rows
    if dataset.canonical_file:
        import pyarrow.parquet as pq

        with dataset.canonical_file.open("rb") as fh:
            pf = pq.ParquetFile(fh)
            batch = next(pf.iter_batches(batch_size=n), None)
            columns = pf.schema_arrow.names
            rows = [] if batch is None else [[_clean(v) for v in row.values()] for row in batch.to_pylist()]
        return {"columns": columns, "rows": rows, "source": "canonical"}
    with dataset.original_file.open("rb") as fh:
        head = fh.read(1 << 20)
    if head[:2] == b"\x1f\x8b":
        head = gzip.GzipFile(fileobj=io.BytesIO(head)).read(1 << 20) if len(head) < (1 << 20) else b""
    text = head.decode("utf-8", errors="replace")
    lines = text.splitlines()[: n + 1]
    name = (dataset.original_filename or "").lower()
    if name.endswith((".csv", ".tsv", ".csv.gz", ".tsv.gz", ".txt")):
        dialect = "excel-tab" if ".tsv" in name else "excel"
        parsed = list(csv.reader(lines, dialect=dialect))
        return {"columns": parsed[0] if parsed else [], "rows": parsed[1:], "source": "original"}
    return {"columns": ["line"], "rows": [[line] for line in lines[:n]], "source": "original"}
