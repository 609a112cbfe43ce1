"""Writes of datasets: creation (with version numbering), the validation status moves, and the
periodic dataset sweep (validation messages the broker never got, abandoned upload staging)."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from mlcore.catalog import MODALITIES, TASKS
from mlcore.columns import MAPPING_KEYS, ColumnMapping
from mlcore.guess import HEAD_BYTES, ModalityGuess, file_guess
from portal.accounts.models import Lab, Visibility
from portal.accounts.selectors import membership_get
from portal.common.catalog_keys import catalog_key_check
from portal.common.errors import NotAllowed, ServiceError
from portal.common.storage import storage_save_hashed
from portal.config.celery import HANDLER_VALIDATE_DATASET, QUEUE_SHORT, app
from portal.datasets.models import Dataset, UploadSession, dataset_original_path

log = logging.getLogger(__name__)


def _modality_guess(*, file: Any, filename: str) -> ModalityGuess:
    """The modality told from a file's first records (`mlcore.guess`, the rules the upload page uses), for
    an upload that named none; a file whose records fit no modality is refused with what to send."""
    start = file.tell() if hasattr(file, "tell") else 0
    head = file.read(HEAD_BYTES)
    file.seek(start)
    _, guess = file_guess(head if isinstance(head, bytes) else head.encode(), filename)
    if guess is None:
        raise ServiceError(
            f"{filename}: the modality could not be told from the file's first records; name it "
            f"(modality: {', '.join(MODALITIES)})", field="modality")
    return guess


def _schema_clean(schema: dict | None) -> dict:
    """The schema as a dataset stores it: its column mapping as ``ColumnMapping.to_dict()`` (checked,
    empty entries left out) beside the upload's other entries (``task``, ``options``, ``demo``)."""
    schema = dict(schema or {})
    try:
        mapping = ColumnMapping.from_dict(schema)
    except ValueError as exc:
        raise ServiceError(f"column mapping: {exc}", field=getattr(exc, "field", "mapping")) from None
    return {**mapping.to_dict(), **{k: v for k, v in schema.items() if k not in MAPPING_KEYS}}


def _schema_with_guess(*, schema: dict | None, guess: ModalityGuess) -> dict:
    """The mapping with the guessed input column where the upload named none and it is not the default."""
    schema = dict(schema or {})
    if guess.input_col and not schema.get("input_cols") and \
            guess.input_col != MODALITIES[guess.modality].default_input_col:
        schema["input_cols"] = [guess.input_col]
    return schema


def _schema_task_check(schema: dict | None) -> None:
    """The task a mapping names (validation checks the targets for it) is one the catalog lists."""
    task = (schema or {}).get("task")
    if task not in (None, ""):
        catalog_key_check(what="task", key=task, valid=TASKS, field="task")


def _check_can_write(*, user: AbstractBaseUser, lab: Lab) -> None:
    membership = membership_get(user=user, lab=lab)
    if membership is None or not membership.can_write:
        raise NotAllowed(f"you cannot add datasets to lab '{lab.slug}'", field="lab")


def dataset_create(
    *,
    owner: AbstractBaseUser,
    lab: Lab,
    name: str,
    modality: str | None,
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
    With ``validate`` (the default) the validation task is enqueued once the row is committed; a
    broker that is down does not fail the upload (the dataset sweep sends it later), and the same
    upload retried returns the row and sends its validation again if it is still waiting.
    """
    _check_can_write(user=owner, lab=lab)
    schema = _schema_clean(schema)
    guessed = None
    if not modality:
        guessed = _modality_guess(file=file, filename=filename)
        modality, schema = guessed.modality, _schema_with_guess(schema=schema, guess=guessed)
    catalog_key_check(what="modality", key=modality, valid=MODALITIES, field="modality")
    _schema_task_check(schema)
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
    dataset.modality_guess = guessed.reason if guessed else ""  # said back to the uploader
    stored, sha256, size = storage_save_hashed(path=dataset_original_path(dataset, filename), file=file)
    if size > settings.LABFORMER_MAX_UPLOAD_BYTES:  # a file-like that did not know its size
        default_storage.delete(stored)
        raise ServiceError(
            f"{filename}: {size} bytes is over the upload limit of {settings.LABFORMER_MAX_UPLOAD_BYTES} bytes",
            field="file",
        )
    same_bytes = Dataset.objects.filter(lab=lab, sha256=sha256).order_by("created_at", "pk")
    if same_bytes.exists():
        default_storage.delete(stored)
        same = _same_version(candidates=same_bytes.filter(name=name), modality=modality,
                             schema=dataset.schema, policy=policy)
        if same is not None:
            if validate and same.status == Dataset.Status.UPLOADED:
                # A retry of an upload whose validation never started (the broker was down, or its
                # message was lost): send it again; a duplicate message is harmless.
                dataset_enqueue_validation(dataset=same)
            same.deduplicated, same.reused_bytes = True, True
            same.modality_guess = dataset.modality_guess
            return same
        # Same bytes, another name or another mapping / policy: a new row that shares the stored file.
        stored = same_bytes.first().original_file.name
        dataset.reused_bytes = True
    else:
        dataset.reused_bytes = False
    dataset.original_file.name = stored
    dataset.sha256 = sha256
    dataset.size_bytes = size
    return _dataset_version_save(dataset=dataset, validate=validate)


def _same_version(*, candidates: Any, modality: str, schema: dict, policy: str) -> Dataset | None:
    """The first of ``candidates`` (same bytes, same name) read the same way: same modality, mapping and
    policy. Only such an upload is a duplicate; a corrected mapping or policy is a new version."""
    def read_as(schema: dict | None) -> tuple[Any, dict]:  # the mapping, however it was stored, and the rest
        schema = schema or {}
        try:
            mapping: Any = ColumnMapping.from_dict(schema)
        except ValueError:
            mapping = None  # a mapping stored before they were checked: compared as stored below
        return mapping, {k: v for k, v in schema.items() if k not in MAPPING_KEYS or mapping is None}

    wanted = (modality, read_as(schema), policy)
    for existing in candidates:
        if (existing.modality, read_as(existing.schema), existing.policy) == wanted:
            return existing
    return None


def _dataset_version_save(*, dataset: Dataset, validate: bool) -> Dataset:
    """Save ``dataset`` as the next version of its name in its lab (and enqueue its validation)."""
    # Two uploads of the same name at once: lock the lab row so version numbers are handed out one
    # at a time; the unique constraint is the backstop.
    for _ in range(3):
        try:
            with transaction.atomic():
                Lab.objects.select_for_update().filter(pk=dataset.lab_id).first()
                latest = Dataset.objects.filter(lab_id=dataset.lab_id, name=dataset.name).aggregate(
                    v=Max("version"))["v"]
                dataset.version = (latest or 0) + 1
                dataset.save()
                if validate:
                    transaction.on_commit(lambda: dataset_enqueue_validation(dataset=dataset))
            dataset.deduplicated = False
            return dataset
        except IntegrityError:
            dataset.pk = None
            continue
    raise ServiceError(f"could not assign a version to dataset {dataset.name!r}; try again", field="name")


def dataset_remap(
    *, user: AbstractBaseUser, dataset: Dataset, schema: dict | None = None, policy: str | None = None,
    modality: str | None = None,
) -> Dataset:
    """Read ``dataset``'s stored bytes again with another column mapping, policy or modality.

    The result is a new version of the same name that shares the original file (nothing is copied)
    and is validated again; the old version stays as it was (jobs name the exact data they saw).
    Asking for what an existing version of these bytes already has returns that version
    (``deduplicated``). ``dataset`` was loaded through ``dataset_get_for_user``; ``None`` keeps the
    dataset's own value.
    """
    _check_can_write(user=user, lab=dataset.lab)
    schema = dict(dataset.schema or {}) if schema is None else _schema_clean(schema)
    policy = dataset.policy if policy is None else policy
    modality = dataset.modality if modality is None else modality
    catalog_key_check(what="modality", key=modality, valid=MODALITIES, field="modality")
    _schema_task_check(schema)
    if policy not in Dataset.Policy.values:
        raise ServiceError(f"unknown policy {policy!r}; expected strict or skip", field="policy")
    same = _same_version(
        candidates=Dataset.objects.filter(lab_id=dataset.lab_id, name=dataset.name, sha256=dataset.sha256)
        .order_by("created_at", "pk"),
        modality=modality, schema=schema, policy=policy,
    )
    if same is not None:
        same.deduplicated, same.reused_bytes = True, True
        return same
    version = Dataset(
        uid=uuid.uuid4(), owner=user, lab=dataset.lab, visibility=dataset.visibility, name=dataset.name,
        description=dataset.description, modality=modality, schema=schema, policy=policy,
        original_filename=dataset.original_filename, sha256=dataset.sha256, size_bytes=dataset.size_bytes,
    )
    version.original_file.name = dataset.original_file.name  # the stored bytes, shared, never copied
    version.reused_bytes = True
    return _dataset_version_save(dataset=version, validate=True)


def dataset_enqueue_validation(*, dataset: Dataset) -> bool:
    """Hand the dataset to a worker for validation (the `short` queue: it never waits behind training).

    A broker that is down does not fail the upload: the dataset stays ``uploaded`` with
    ``dispatched_at`` NULL and the dataset sweep (``dataset_dispatch_pending``) sends it once the
    broker answers. Returns whether the message was sent.
    """
    try:
        app.send_task(HANDLER_VALIDATE_DATASET, args=[dataset.pk], queue=QUEUE_SHORT)
    except Exception as exc:  # noqa: BLE001 - any broker failure: keep the dataset, send it later
        log.warning("dataset %s: broker unavailable (%s); the dataset sweep will send its validation", dataset.pk, exc)
        return False
    Dataset.objects.filter(pk=dataset.pk).update(dispatched_at=timezone.now())
    return True


def dataset_dispatch_pending(*, min_age: timedelta, resend_after: timedelta) -> list[int]:
    """Send the validation of uploaded datasets whose message never reached the broker (older than
    ``min_age``, so an upload committing now is left to its own on-commit send), and again for those
    sent longer than ``resend_after`` ago and still not started (a broker restarted without
    persistence loses messages). A duplicate message is harmless: validation is idempotent."""
    now = timezone.now()
    pending = Dataset.objects.filter(status=S.UPLOADED).filter(
        Q(dispatched_at__isnull=True, created_at__lt=now - min_age) | Q(dispatched_at__lt=now - resend_after)
    )
    return [d.pk for d in pending.order_by("created_at")[:500] if dataset_enqueue_validation(dataset=d)]


def upload_staging_cleanup(*, older_than: timedelta) -> list[str]:
    """Remove the staging files of chunked uploads nobody finished (untouched for ``older_than``),
    marking their sessions aborted, and staging files no open session owns. Returns the removed names.

    Runs only where the staging folder is (a worker without it does nothing, so no session is
    aborted while its file stays behind on another machine)."""
    staging = Path(settings.LABFORMER_UPLOAD_STAGING)
    if not staging.is_dir():
        return []
    cutoff = timezone.now() - older_than
    removed: list[str] = []
    stale = UploadSession.objects.filter(status=UploadSession.Status.OPEN, updated_at__lt=cutoff)
    for session in stale:
        # Conditional: a chunk arriving meanwhile touches updated_at and keeps the session open.
        if UploadSession.objects.filter(pk=session.pk, status=UploadSession.Status.OPEN, updated_at__lt=cutoff) \
                .update(status=UploadSession.Status.ABORTED, updated_at=timezone.now()):
            path = _staging_path(session)
            if path.exists():
                path.unlink(missing_ok=True)
                removed.append(path.name)
    open_uids = {f"{uid}.part" for uid in
                 UploadSession.objects.filter(status=UploadSession.Status.OPEN).values_list("uid", flat=True)}
    oldest = time.time() - older_than.total_seconds()
    for path in staging.glob("*.part"):
        try:
            if path.name not in open_uids and path.stat().st_mtime < oldest:
                path.unlink()
                removed.append(path.name)
        except FileNotFoundError:  # another sweep removed it first
            continue
    if removed:
        log.info("removed %d abandoned upload staging file(s)", len(removed))
    return removed


def dataset_sweep(*, min_age: timedelta, resend_after: timedelta, staging_max_age: timedelta) -> dict[str, list]:
    """The periodic dataset sweep: pending validations sent, abandoned upload staging removed."""
    return {
        "dispatched": dataset_dispatch_pending(min_age=min_age, resend_after=resend_after),
        "staging_removed": upload_staging_cleanup(older_than=staging_max_age),
    }


def _json_safe(value: Any) -> Any:
    """A report PostgreSQL's jsonb accepts: it refuses the NUL character in any string."""
    if isinstance(value, str):
        return value.replace("\x00", "\\0")
    if isinstance(value, dict):
        return {_json_safe(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


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
    fields: dict[str, Any] = {"validation_report": _json_safe(report), "row_count": row_count}
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
        dataset_id=dataset_id, allowed_from=(S.UPLOADED, S.VALIDATING), status=S.INVALID,
        validation_report=_json_safe(report),
    )


# --- deletion ---------------------------------------------------------------------------------

def dataset_delete(*, user: AbstractBaseUser, dataset: Dataset) -> None:
    """Delete a dataset its owner (or an owner of its lab) no longer wants; refused while jobs use it.

    ``dataset`` was loaded through ``dataset_get_for_user``. The stored original is removed only when
    no other dataset shares it (same bytes uploaded under another name).
    """
    membership = membership_get(user=user, lab=dataset.lab)
    if dataset.owner_id != user.pk and not (membership and membership.role == "owner"):
        raise NotAllowed("only the dataset's owner or an owner of its lab can delete it")
    n_jobs = dataset.jobs.count()
    if n_jobs:
        raise ServiceError(
            f"dataset {dataset.name} v{dataset.version} is used by {n_jobs} job(s); delete those first "
            "(results always name the exact data they saw)",
            code="in_use",
        )
    original, canonical = dataset.original_file.name, dataset.canonical_file.name
    with transaction.atomic():
        dataset.delete()
        shared = Dataset.objects.filter(original_file=original).exists()
        if not shared:
            transaction.on_commit(lambda: default_storage.delete(original))
        if canonical:
            transaction.on_commit(lambda: default_storage.delete(canonical))


# --- chunked, resumable uploads ------------------------------------------------------------------

def _staging_path(session: UploadSession) -> Path:
    return Path(settings.LABFORMER_UPLOAD_STAGING) / f"{session.uid}.part"


def upload_session_create(
    *, owner: AbstractBaseUser, lab: Lab, name: str, filename: str, modality: str | None, size_bytes: int,
    visibility: str = Visibility.LAB, policy: str = Dataset.Policy.STRICT, description: str = "",
    schema: dict | None = None,
) -> UploadSession:
    """Open an upload of ``size_bytes``; checks everything that can be checked before any byte arrives.
    Without a ``modality`` it is guessed from the file's first records when the upload finishes."""
    _check_can_write(user=owner, lab=lab)
    if modality:
        catalog_key_check(what="modality", key=modality, valid=MODALITIES, field="modality")
    _schema_task_check(schema)
    if policy not in Dataset.Policy.values:
        raise ServiceError(f"unknown policy {policy!r}; expected strict or skip", field="policy")
    if visibility not in Visibility.values:
        raise ServiceError(f"unknown visibility {visibility!r}", field="visibility")
    if not name.strip():
        raise ServiceError("a dataset needs a name", field="name")
    if size_bytes <= 0:
        raise ServiceError("size_bytes must be positive", field="size_bytes")
    if size_bytes > settings.LABFORMER_MAX_UPLOAD_BYTES:
        raise ServiceError(
            f"{filename}: {size_bytes} bytes is over the upload limit of {settings.LABFORMER_MAX_UPLOAD_BYTES} bytes",
            field="size_bytes",
        )
    session = UploadSession.objects.create(
        uid=uuid.uuid4(), owner=owner, lab=lab, name=name.strip(), filename=Path(filename).name or "upload",
        modality=modality or "", size_bytes=size_bytes, visibility=visibility, policy=policy,
        description=description, schema=schema or {},
    )
    path = _staging_path(session)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return session


def upload_chunk_append(*, session: UploadSession, offset: int, stream: Any, length: int) -> UploadSession:
    """Append ``length`` bytes read from ``stream`` at ``offset``.

    The offset must equal what the server has: a chunk out of order (or sent twice) is refused with
    the expected offset, so a client that lost a response resumes exactly where the server is.
    Concurrent chunks for one session are serialized by a row lock.
    """
    with transaction.atomic():
        locked = UploadSession.objects.select_for_update().get(pk=session.pk)
        if locked.status != UploadSession.Status.OPEN:
            raise ServiceError(f"upload {locked.uid} is {locked.status}", code="conflict")
        if offset != locked.offset:
            raise ServiceError(
                f"chunk at offset {offset} but the server has {locked.offset} bytes; resume from {locked.offset}",
                code="offset_mismatch", field="offset",
            )
        if length <= 0:
            raise ServiceError("an empty chunk", field="content")
        if locked.offset + length > locked.size_bytes:
            raise ServiceError(
                f"chunk ends at {locked.offset + length}, past the declared size {locked.size_bytes}", field="content"
            )
        path = _staging_path(locked)
        written = 0
        with open(path, "r+b") as fh:
            fh.seek(locked.offset)
            fh.truncate()  # bytes of an earlier chunk whose commit never happened are dropped
            while written < length:
                block = stream.read(min(1 << 20, length - written))
                if not block:
                    break
                fh.write(block)
                written += len(block)
        if written != length:
            with open(path, "r+b") as fh:
                fh.truncate(locked.offset)
            raise ServiceError(f"the chunk ended after {written} of {length} bytes; resend it", field="content")
        locked.offset += written
        locked.save(update_fields=["offset", "updated_at"])
    return locked


def upload_session_finish(*, session: UploadSession, sha256: str) -> Dataset:
    """Check the whole file's sha256 and turn it into a dataset; a mismatch keeps nothing."""
    with transaction.atomic():
        locked = UploadSession.objects.select_for_update().get(pk=session.pk)
        if locked.status == UploadSession.Status.FINISHED and locked.dataset_id:
            return locked.dataset  # a retried finish returns the same dataset
        if locked.status != UploadSession.Status.OPEN:
            raise ServiceError(f"upload {locked.uid} is {locked.status}", code="conflict")
        if locked.offset != locked.size_bytes:
            raise ServiceError(
                f"only {locked.offset} of {locked.size_bytes} bytes have arrived; resume from {locked.offset}",
                code="incomplete", field="offset",
            )
        path = _staging_path(locked)
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        mismatch = digest.hexdigest() != sha256.strip().lower()
        if mismatch:
            locked.status = UploadSession.Status.ABORTED
            locked.save(update_fields=["status", "updated_at"])
    if mismatch:
        # Raised outside the transaction so the session stays aborted: nothing of it is kept.
        path.unlink(missing_ok=True)
        raise ServiceError(
            f"sha256 mismatch: the server received {digest.hexdigest()}, the client says {sha256}; "
            "nothing was kept, start a new upload",
            code="checksum_mismatch", field="sha256",
        )
    with transaction.atomic():
        locked = UploadSession.objects.select_for_update().get(pk=session.pk)
        if locked.status != UploadSession.Status.OPEN:
            raise ServiceError(f"upload {locked.uid} is {locked.status}", code="conflict")
        with open(path, "rb") as fh:
            dataset = dataset_create(
                owner=locked.owner, lab=locked.lab, name=locked.name, modality=locked.modality,
                file=File(fh, name=locked.filename), filename=locked.filename, visibility=locked.visibility,
                description=locked.description, schema=locked.schema, policy=locked.policy,
            )
        locked.status, locked.dataset = UploadSession.Status.FINISHED, dataset
        locked.save(update_fields=["status", "dataset", "updated_at"])
        transaction.on_commit(lambda: path.unlink(missing_ok=True))
    return dataset
