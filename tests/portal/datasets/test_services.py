"""Dataset creation (stored byte for byte, hashed, versioned) and validation status moves."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.base import ContentFile

from portal.accounts.models import Membership
from portal.common.errors import NotAllowed, ServiceError
from portal.datasets import services
from portal.datasets.models import Dataset
from tests.portal.factories import LabFactory, MembershipFactory

pytestmark = pytest.mark.django_db
CONTENT = b"sequence,label\nACGTACGT,1\nTTTTGGGG,0\n\xce\xbb-keep-bytes\r\n"


def _create(membership: Membership, name: str = "promoters", content: bytes = CONTENT) -> Dataset:
    return services.dataset_create(
        owner=membership.user, lab=membership.lab, name=name, modality="dna",
        file=ContentFile(content, name="promoters.csv"), filename="promoters.csv",
    )


def test_original_is_kept_byte_for_byte_with_its_hash() -> None:
    dataset = _create(MembershipFactory())
    with dataset.original_file.open("rb") as fh:
        assert fh.read() == CONTENT
    assert dataset.sha256 == hashlib.sha256(CONTENT).hexdigest()
    assert dataset.size_bytes == len(CONTENT) and dataset.status == Dataset.Status.UPLOADED


def test_same_name_in_same_lab_gets_next_version() -> None:
    membership = MembershipFactory()
    assert [_create(membership).version for _ in range(3)] == [1, 2, 3]
    other = MembershipFactory()
    assert _create(other).version == 1


@pytest.mark.parametrize("role", [None, Membership.Role.VIEWER])
def test_only_writers_of_the_lab_may_upload(role: str | None) -> None:
    membership = MembershipFactory(role=role or Membership.Role.MEMBER)
    lab = membership.lab if role else LabFactory()
    with pytest.raises(NotAllowed):
        services.dataset_create(owner=membership.user, lab=lab, name="x", modality="dna",
                                file=ContentFile(CONTENT), filename="x.csv")
    assert Dataset.objects.count() == 0


def test_unknown_modality_is_refused_with_the_field() -> None:
    membership = MembershipFactory()
    with pytest.raises(ServiceError) as err:
        services.dataset_create(owner=membership.user, lab=membership.lab, name="x", modality="audio",
                                file=ContentFile(CONTENT), filename="x.csv")
    assert err.value.field == "modality"


def test_status_moves() -> None:
    dataset = _create(MembershipFactory())
    services.dataset_set_status(dataset_id=dataset.pk, status=Dataset.Status.VALIDATING)
    ready = services.dataset_set_status(dataset_id=dataset.pk, status=Dataset.Status.READY, row_count=2, report={"ok": 2})
    assert (ready.status, ready.row_count, ready.validation_report) == ("ready", 2, {"ok": 2})
    with pytest.raises(ServiceError):
        services.dataset_set_status(dataset_id=dataset.pk, status=Dataset.Status.INVALID)  # ready -> invalid skips validating
    assert Dataset.objects.get(pk=dataset.pk).status == Dataset.Status.READY
