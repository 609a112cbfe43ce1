"""Dataset creation (stored byte for byte, hashed, versioned) and validation status moves."""

from __future__ import annotations

import hashlib
from pathlib import Path

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
    versions = [_create(membership, content=CONTENT + f"ACGT,{i}\n".encode()).version for i in range(3)]
    assert versions == [1, 2, 3]
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


def test_validation_moves() -> None:
    dataset = _create(MembershipFactory())
    services.dataset_validation_start(dataset_id=dataset.pk)
    ready = services.dataset_validation_finish(
        dataset_id=dataset.pk, valid=True, report={"rows": 2}, row_count=2, canonical_name="x/canonical.parquet"
    )
    assert (ready.status, ready.row_count, ready.validation_report) == ("ready", 2, {"rows": 2})
    assert ready.canonical_file.name == "x/canonical.parquet"
    # finishing twice is refused and changes nothing
    with pytest.raises(ServiceError):
        services.dataset_validation_finish(dataset_id=dataset.pk, valid=False, report={}, row_count=0, canonical_name=None)
    assert Dataset.objects.get(pk=dataset.pk).status == Dataset.Status.READY


def test_a_crash_leaves_the_dataset_invalid_with_the_error() -> None:
    dataset = _create(MembershipFactory())
    services.dataset_validation_start(dataset_id=dataset.pk)
    crashed = services.dataset_validation_crash(dataset_id=dataset.pk, message="MemoryError", traceback="Traceback ...")
    assert crashed.status == Dataset.Status.INVALID
    assert crashed.validation_report["error"]["message"] == "MemoryError"
    # a finished dataset is not marked crashed by a late duplicate
    with pytest.raises(ServiceError):
        services.dataset_validation_crash(dataset_id=dataset.pk, message="late")


def test_over_the_limit_is_refused_before_storing(settings, tmp_path) -> None:  # noqa: ANN001
    settings.LABFORMER_MAX_UPLOAD_BYTES = 10
    membership = MembershipFactory()
    with pytest.raises(ServiceError, match="over the upload limit") as err:
        _create(membership)
    assert err.value.field == "file"
    assert Dataset.objects.count() == 0
    assert not any(p.is_file() for p in Path(settings.MEDIA_ROOT).rglob("*"))


def test_same_bytes_twice_are_recognized_and_stored_once(settings) -> None:  # noqa: ANN001
    membership = MembershipFactory()
    first = _create(membership, name="promoters")
    again = _create(membership, name="promoters")
    assert again.pk == first.pk and again.deduplicated
    renamed = _create(membership, name="promoters-copy")
    assert renamed.pk != first.pk and renamed.original_file.name == first.original_file.name
    stored = [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]
    assert len(stored) == 1 and stored[0].read_bytes() == CONTENT
    # another lab keeps its own copy: labs never share storage implicitly
    other = _create(MembershipFactory(), name="promoters")
    assert other.original_file.name != first.original_file.name


def test_same_bytes_with_a_corrected_mapping_or_policy_make_a_new_version_sharing_the_file(
        settings, django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    membership = MembershipFactory()
    first = _create(membership)
    assert first.reused_bytes is False
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        remapped = services.dataset_create(
            owner=membership.user, lab=membership.lab, name="promoters", modality="dna",
            file=ContentFile(CONTENT, name="promoters.csv"), filename="promoters.csv",
            schema={"target_cols": ["label"]}, policy=Dataset.Policy.SKIP,
        )
    assert len(callbacks) == 1  # validated again
    assert (remapped.pk != first.pk, remapped.version, remapped.deduplicated, remapped.reused_bytes) == (
        True, 2, False, True)
    assert remapped.original_file.name == first.original_file.name and remapped.sha256 == first.sha256
    assert (remapped.schema, remapped.policy) == ({"target_cols": ["label"]}, "skip")
    stored = [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]
    assert len(stored) == 1  # the bytes are stored once
    # the same bytes with the same mapping and policy again: that version, nothing new
    again = services.dataset_create(
        owner=membership.user, lab=membership.lab, name="promoters", modality="dna",
        file=ContentFile(CONTENT, name="promoters.csv"), filename="promoters.csv",
        schema={"target_cols": ["label"]}, policy=Dataset.Policy.SKIP,
    )
    assert again.pk == remapped.pk and again.deduplicated


def test_remap_makes_a_new_version_of_the_stored_bytes_and_validates_it(
        settings, django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    membership = MembershipFactory()
    first = _create(membership)
    Dataset.objects.filter(pk=first.pk).update(status=Dataset.Status.INVALID)
    first.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        fixed = services.dataset_remap(user=membership.user, dataset=first,
                                       schema={"target_cols": ["label"], "task": "dna-classification"},
                                       policy=Dataset.Policy.SKIP)
    assert len(callbacks) == 1
    assert (fixed.version, fixed.status, fixed.reused_bytes, fixed.deduplicated) == (2, "uploaded", True, False)
    assert fixed.original_file.name == first.original_file.name and fixed.original_filename == "promoters.csv"
    assert (fixed.modality, fixed.size_bytes, fixed.sha256) == (first.modality, first.size_bytes, first.sha256)
    first.refresh_from_db()
    assert first.status == Dataset.Status.INVALID and first.schema == {}  # the old version is as it was
    assert len([p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]) == 1
    # asking for what v2 already has returns v2; asking for v1's reading returns v1
    same = services.dataset_remap(user=membership.user, dataset=first,
                                  schema={"target_cols": ["label"], "task": "dna-classification"}, policy="skip")
    assert same.pk == fixed.pk and same.deduplicated
    back = services.dataset_remap(user=membership.user, dataset=fixed, schema={}, policy="strict")
    assert back.pk == first.pk and back.deduplicated
    with pytest.raises(ServiceError, match="unknown policy"):
        services.dataset_remap(user=membership.user, dataset=first, policy="lenient")
    viewer = MembershipFactory(lab=membership.lab, role=Membership.Role.VIEWER)
    with pytest.raises(NotAllowed):
        services.dataset_remap(user=viewer.user, dataset=first, policy="skip")


def test_create_enqueues_validation_on_commit(django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    membership = MembershipFactory()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _create(membership)
    assert len(callbacks) == 1


def test_staging_cleanup_removes_abandoned_uploads_and_keeps_live_ones(settings, tmp_path: Path) -> None:  # noqa: ANN001
    import io
    import os
    import time
    from datetime import timedelta

    from django.utils import timezone

    from portal.datasets.models import UploadSession

    settings.LABFORMER_UPLOAD_STAGING = tmp_path / "staging"
    membership = MembershipFactory()

    def session() -> UploadSession:
        s = services.upload_session_create(owner=membership.user, lab=membership.lab, name="big", filename="b.csv",
                                           modality="dna", size_bytes=100)
        return services.upload_chunk_append(session=s, offset=0, stream=io.BytesIO(b"sequence\n"), length=9)

    abandoned, live = session(), session()
    UploadSession.objects.filter(pk=abandoned.pk).update(updated_at=timezone.now() - timedelta(hours=25))
    orphan = settings.LABFORMER_UPLOAD_STAGING / "0000-orphan.part"  # no session owns it (e.g. a restored disk)
    orphan.write_bytes(b"x")
    old = time.time() - 25 * 3600
    os.utime(orphan, (old, old))
    fresh_orphan = settings.LABFORMER_UPLOAD_STAGING / "0001-fresh.part"
    fresh_orphan.write_bytes(b"x")

    removed = services.upload_staging_cleanup(older_than=timedelta(hours=24))
    assert sorted(removed) == sorted([f"{abandoned.uid}.part", orphan.name])
    assert not (settings.LABFORMER_UPLOAD_STAGING / f"{abandoned.uid}.part").exists() and not orphan.exists()
    assert (settings.LABFORMER_UPLOAD_STAGING / f"{live.uid}.part").exists() and fresh_orphan.exists()
    assert UploadSession.objects.get(pk=abandoned.pk).status == UploadSession.Status.ABORTED
    assert UploadSession.objects.get(pk=live.pk).status == UploadSession.Status.OPEN
    assert services.upload_staging_cleanup(older_than=timedelta(hours=24)) == []
    # A worker that cannot see the staging folder aborts nothing (the files would stay behind).
    stale = session()
    UploadSession.objects.filter(pk=stale.pk).update(updated_at=timezone.now() - timedelta(hours=25))
    settings.LABFORMER_UPLOAD_STAGING = tmp_path / "not-mounted-here"
    assert services.upload_staging_cleanup(older_than=timedelta(hours=24)) == []
    assert UploadSession.objects.get(pk=stale.pk).status == UploadSession.Status.OPEN


def test_a_report_with_a_nul_character_is_stored() -> None:
    dataset = _create(MembershipFactory())
    services.dataset_validation_start(dataset_id=dataset.pk)
    services.dataset_validation_finish(dataset_id=dataset.pk, valid=False, row_count=0, canonical_name=None,
                                       report={"problems": [{"reason": "bad value 'a\x00b'"}]})
    dataset.refresh_from_db()
    assert dataset.validation_report["problems"][0]["reason"] == "bad value 'a\\0b'"
