"""Writes of datasets: creation (with version numbering) and the validation status moves."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from mlcore.catalog import MODALITIES
from portal.accounts.models import Lab, Visibility
from portal.accounts.selectors import membership_get
from portal.common.errors import NotAllowed, ServiceError
from portal.common.storage import storage_save_hashed
from portal.config.celery import QUEUE_CPU, TASK_VALIDATE_DATASET, app
from portal.datasets.models import Dataset, dataset_original_path


def _check_can_write(*, user: AbstractBaseUser, lab: Lab) -> None:
    membership = membership_get(user=user, lab=lab)
    if membership is None or not membership.can_write:
        raise NotAllowed(f"you cannot add datasets to lab '{lab.slug}'", field="lab")


def dataset_create(
    *,
    owner: AbstractBaseUser,
    lab: Lab,
    name: str,
    modality: str,
    file: Any,
    filename: str,
    visibility: str = Visibility.LAB,
    description: str = "",
    schema: dict | None = None,
    policy: str = Dataset.Policy.STRICT,
    validate: bool = True,
) -> Dataset:
    """Store ``file`` byte for byte and create the Dataset row (status ``uploaded``).

    The same name in the same lab gets the next version number. The file is hashed as it is
    written, in one pass. The same bytes uploaded again to the same lab are recognized by their
    hash: under the same name the existing dataset is returned (``dataset.deduplicated`` is True);
    under another name the new row shares the stored file, which is never kept twice.
    With ``validate`` (the default) the validation task is enqueued once the row is committed.
    """
    _check_can_write(user=owner, lab=lab)
    if modality not in MODALITIES:
        raise ServiceError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}", field="modality")
    if visibility not in Visibility.values:
        raise ServiceError(f"unknown visibility {visibility!r}", field="visibility")
    if policy not in Dataset.Policy.values:
        raise ServiceError(f"unknown policy {policy!r}; expected strict or skip", field="policy")
    name = name.strip()
    if not name:
        raise ServiceError("a dataset needs a name", field="name")
    size = getattr(file, "size", None)
    if size is not None and size > settings.LABFORMER_MAX_UPLOAD_BYTES:
        raise ServiceError(
            f"{filename}: {size} bytes is over the upload limit of {settings.LABFORMER_MAX_UPLOAD_BYTES} bytes",
            field="file",
        )

    dataset = Dataset(
        uid=uuid.uuid4(),
        owner=owner,
        lab=lab,
        name=name,
        modality=modality,
        visibility=visibility,
        description=description,
        schema=schema or {},
        policy=policy,
        original_filename=filename,
    )
    stored, sha256, size = storage_save_hashed(path=dataset_original_path(dataset, filename), file=file)
    if size > settings.LABFORMER_MAX_UPLOAD_BYTES:  # a file-like that did not know its size
        default_storage.delete(stored)
        raise ServiceError(
            f"{filename}: {size} bytes is over the upload limit of {settings.LABFORMER_MAX_UPLOAD_BYTES} bytes",
            field="file",
        )
    same_bytes = Dataset.objects.filter(lab=lab, sha256=sha256).order_by("created_at", "pk").first()
    if same_bytes is not None:
        default_storage.delete(stored)
        if same_bytes.name == name:
            same_bytes.deduplicated = True
            return same_bytes
        stored = same_bytes.original_file.name
    dataset.original_file.name = stored
    dataset.sha256 = sha256
    dataset.size_bytes = size
    # Two uploads of the same name at once: lock the lab row so version numbers are handed out one
    # at a time; the unique constraint is the backstop.
    for _ in range(3):
        try:
            with transaction.atomic():
                Lab.objects.select_for_update().filter(pk=lab.pk).first()
                latest = Dataset.objects.filter(lab=lab, name=name).aggregate(v=Max("version"))["v"]
                dataset.version = (latest or 0) + 1
                dataset.save()
                if validate:
                    transaction.on_commit(lambda: dataset_enqueue_validation(dataset=dataset))
            dataset.deduplicated = False
            return dataset
        except IntegrityError:
            continue
    raise ServiceError(f"could not assign a version to dataset {name!r}; try again", field="name")


def dataset_enqueue_validation(*, dataset: Dataset) -> None:
    """Hand the dataset to a worker for validation (the `cpu` queue: validation never needs a GPU)."""
    app.send_task(TASK_VALIDATE_DATASET, args=[dataset.pk], queue=QUEUE_CPU)


def _dataset_move(*, dataset_id: int, allowed_from: tuple[str, ...], status: str, **fields: Any) -> Dataset:
    """One conditional UPDATE: the dataset moves only if it is in one of ``allowed_from``."""
    updated = (
        Dataset.objects.filter(pk=dataset_id, status__in=allowed_from)
        .update(status=status, updated_at=timezone.now(), **fields)
    )
    if updated != 1:
        current = Dataset.objects.filter(pk=dataset_id).values_list("status", flat=True).first()
        if current is None:
            raise Dataset.DoesNotExist(f"dataset {dataset_id} does not exist")
        raise ServiceError(f"dataset {dataset_id} is {current}; it cannot move to {status}", code="conflict")
    return Dataset.objects.get(pk=dataset_id)


S = Dataset.Status


def dataset_validation_start(*, dataset_id: int) -> Dataset:
    """uploaded | validating | ready | invalid → validating.

    ``validating → validating`` is allowed on purpose: a worker killed mid-validation leaves its
    message to be delivered again, and the new run must be able to take over (validation is
    idempotent: it rewrites the same canonical file and report).
    """
    return _dataset_move(
        dataset_id=dataset_id, allowed_from=(S.UPLOADED, S.VALIDATING, S.READY, S.INVALID), status=S.VALIDATING
    )


def dataset_validation_finish(
    *, dataset_id: int, valid: bool, report: dict, row_count: int, canonical_name: str | None
) -> Dataset:
    """validating → ready (valid under its policy) or invalid, with the report and the canonical copy."""
    fields: dict[str, Any] = {"validation_report": report, "row_count": row_count}
    if canonical_name is not None:
        fields["canonical_file"] = canonical_name
    return _dataset_move(
        dataset_id=dataset_id, allowed_from=(S.VALIDATING,), status=S.READY if valid else S.INVALID, **fields
    )


def dataset_validation_crash(*, dataset_id: int, message: str, traceback: str = "") -> Dataset:
    """uploaded | validating → invalid, keeping the error: a crash never leaves a dataset validating."""
    report = {
        "status": "invalid",
        "error": {"message": message[:10000], "traceback": traceback[-20000:]},
        "problems": [],
        "totals": {"validation_crashed": 1},
    }
    return _dataset_move(
        dataset_id=dataset_id, allowed_from=(S.UPLOADED, S.VALIDATING), status=S.INVALID, validation_report=report
    )
