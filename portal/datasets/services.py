"""Writes of datasets: creation (with version numbering) and the validation status moves."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from mlcore.catalog import MODALITIES
from portal.accounts.models import Lab, Visibility
from portal.accounts.selectors import membership_get
from portal.common.errors import NotAllowed, ServiceError
from portal.common.storage import storage_save_hashed
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
) -> Dataset:
    """Store ``file`` byte for byte and create the Dataset row (status ``uploaded``).

    The same name in the same lab gets the next version number. The file is hashed as it is
    written, in one pass.
    """
    _check_can_write(user=owner, lab=lab)
    if modality not in MODALITIES:
        raise ServiceError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}", field="modality")
    if visibility not in Visibility.values:
        raise ServiceError(f"unknown visibility {visibility!r}", field="visibility")
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
        original_filename=filename,
    )
    stored, sha256, size = storage_save_hashed(path=dataset_original_path(dataset, filename), file=file)
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
            return dataset
        except IntegrityError:
            continue
    raise ServiceError(f"could not assign a version to dataset {name!r}; try again", field="name")


_DATASET_MOVES: dict[str, tuple[str, ...]] = {
    Dataset.Status.VALIDATING: (Dataset.Status.UPLOADED, Dataset.Status.INVALID, Dataset.Status.READY),
    Dataset.Status.READY: (Dataset.Status.VALIDATING,),
    Dataset.Status.INVALID: (Dataset.Status.VALIDATING,),
}


def dataset_set_status(
    *,
    dataset_id: int,
    status: str,
    report: dict | None = None,
    row_count: int | None = None,
    canonical_name: str | None = None,
) -> Dataset:
    """Move a dataset through validation with one conditional UPDATE (uploaded → validating → ready|invalid)."""
    allowed_from = _DATASET_MOVES.get(status)
    if allowed_from is None:
        raise ServiceError(f"a dataset cannot be moved to {status!r}", field="status")
    fields: dict[str, Any] = {"status": status, "updated_at": timezone.now()}
    if report is not None:
        fields["validation_report"] = report
    if row_count is not None:
        fields["row_count"] = row_count
    if canonical_name is not None:
        fields["canonical_file"] = canonical_name
    updated = Dataset.objects.filter(pk=dataset_id, status__in=allowed_from).update(**fields)
    if updated != 1:
        current = Dataset.objects.filter(pk=dataset_id).values_list("status", flat=True).first()
        if current is None:
            raise Dataset.DoesNotExist(f"dataset {dataset_id} does not exist")
        raise ServiceError(f"dataset {dataset_id} is {current}; it cannot move to {status}", code="conflict")
    return Dataset.objects.get(pk=dataset_id)
