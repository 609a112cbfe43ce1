"""Dataset validation on a worker: the portal's dataset row meets mlcore's validators here.

The original upload is copied from storage to local scratch (storage may be S3), validated record by
record with `mlcore.validation.validate_file` under the dataset's policy, and the canonical Parquet
copy of the valid records is stored beside the original. Whatever happens, the dataset ends `ready`
or `invalid`: an unreadable file is `invalid` with the reader's message, and any other exception
is `invalid` with its traceback, never stuck in `validating`.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import traceback
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File

from mlcore.columns import ColumnMapping
from mlcore.readers import ReadError
from mlcore.validation import ValidationOptions, validate_file
from portal.common.errors import ServiceError
from portal.common.storage import storage_save_hashed
from portal.datasets import services as dataset_services
from portal.datasets.models import Dataset, dataset_canonical_path

log = logging.getLogger(__name__)


def validation_options(requested: dict[str, Any]) -> ValidationOptions:
    """The upload's own options under the deployment's bounds (settings, never the upload's say)."""
    return dataclasses.replace(
        ValidationOptions(**requested),
        max_line_bytes=settings.LABFORMER_VALIDATION_MAX_LINE_BYTES,
        max_header_bytes=settings.LABFORMER_VALIDATION_MAX_HEADER_BYTES,
        max_decompressed_bytes=settings.LABFORMER_VALIDATION_MAX_DECOMPRESSED_BYTES,
        max_gzip_ratio=settings.LABFORMER_VALIDATION_MAX_GZIP_RATIO,
        max_seconds=settings.LABFORMER_VALIDATION_MAX_SECONDS,
    )


def _local_name(dataset: Dataset) -> str:
    """The uploaded file's own base name (so messages name the user's file), made safe for a path.

    Readers recognise formats by suffix (.csv, .tsv, .fasta, .sdf, .parquet, + .gz) and magic bytes.
    """
    name = Path(dataset.original_filename or dataset.original_file.name).name
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).lstrip(".")
    return safe or "upload.csv"


def dataset_validate_run(*, dataset_id: int) -> str | None:
    """Validate one dataset; returns its final status (None when another run owns it or it is gone)."""
    try:
        dataset = dataset_services.dataset_validation_start(dataset_id=dataset_id)
    except Dataset.DoesNotExist:
        log.warning("dataset %s no longer exists", dataset_id)
        return None
    work = Path(tempfile.mkdtemp(prefix=f"dataset-{dataset_id}-", dir=_scratch()))
    try:
        local = work / _local_name(dataset)
        with dataset.original_file.open("rb") as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
        schema = dataset.schema or {}
        options = validation_options(schema.get("options", {}))
        canonical_local = work / "canonical.parquet"
        try:
            try:
                mapping = ColumnMapping.from_dict(schema)
            except ValueError as exc:  # a mapping stored before the form and the API checked its roles
                raise ReadError(dataset.original_filename or local.name, f"column mapping: {exc}") from None
            result = validate_file(
                local, modality=dataset.modality, task=schema.get("task") or None, mapping=mapping,
                policy=dataset.policy, options=options, output=canonical_local,
            )
        except ReadError as exc:
            # The file itself cannot be read (format, encoding, a mapped column missing): invalid,
            # with the reader's one-line reason where the problems would be.
            reason = str(exc)  # one line; ReadError cuts whatever it quotes from the file
            report = {"status": "invalid", "error": {"message": reason}, "rows": 0, "valid": 0, "invalid": 0,
                      "problems": [{"line": exc.line, "column": None, "code": "unreadable", "reason": exc.reason}],
                      "totals": {"unreadable": 1}}
            return dataset_services.dataset_validation_finish(
                dataset_id=dataset_id, valid=False, report=report, row_count=0, canonical_name=None
            ).status
        report = result.report()
        report["source"] = dataset.original_filename
        report["output"] = None  # a worker's scratch path means nothing to anyone else
        canonical_name = None
        if result.ok and canonical_local.exists():
            with open(canonical_local, "rb") as fh:
                canonical_name, _, _ = storage_save_hashed(
                    path=dataset_canonical_path(dataset, "canonical.parquet"), file=File(fh)
                )
        return dataset_services.dataset_validation_finish(
            dataset_id=dataset_id, valid=result.ok, report=report, row_count=result.valid,
            canonical_name=canonical_name,
        ).status
    except Exception as exc:  # noqa: BLE001 - a crash must leave the dataset invalid, with the error
        log.exception("validation of dataset %s crashed", dataset_id)
        try:
            return dataset_services.dataset_validation_crash(
                dataset_id=dataset_id, message=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()
            ).status
        except ServiceError as conflict:
            log.warning("dataset %s: %s", dataset_id, conflict)
            return None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _scratch() -> Path:
    path = Path(settings.LABFORMER_WORK_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path
