"""Writes of results: metric points (batched), artifacts (hashed, through storage) and the final Result."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from portal.common.storage import storage_save_hashed
from portal.results.models import Artifact, MetricPoint, Result, artifact_path


@dataclass(frozen=True)
class Point:
    """One metric value, as produced by a training run (no ORM object crosses into the worker's loop)."""

    split: str
    name: str
    step: int
    epoch: int
    value: float | None
    attempt: int = 1


def metric_points_record(*, job_id: int, points: Iterable[Point]) -> int:
    """Insert many points in one statement. A point for a (split, name, step) already stored, e.g. by
    an attempt that died after it, is overwritten rather than duplicated."""
    # The same (split, name, step) twice in one batch: the later value wins (PostgreSQL refuses to
    # update one row twice in a single ON CONFLICT statement).
    latest = {(p.split, p.name, p.step): p for p in points}
    rows = [
        MetricPoint(
            job_id=job_id, split=p.split, name=p.name, step=p.step, epoch=p.epoch, attempt=p.attempt,
            value=None if p.value is None or not math.isfinite(p.value) else float(p.value),
        )
        for p in latest.values()
    ]
    if not rows:
        return 0
    MetricPoint.objects.bulk_create(
        rows, batch_size=1000, update_conflicts=True,
        unique_fields=["job", "split", "name", "step"], update_fields=["value", "epoch", "attempt"],
    )
    return len(rows)


def artifact_create(
    *, job_id: int, kind: str, path: Path, name: str | None = None, metadata: dict[str, Any] | None = None,
    replace: bool = False,
) -> Artifact:
    """Store the local file ``path`` as an artifact of the job (hashed while it is written).

    With ``replace`` the job's earlier artifacts of the same kind are deleted once the new one is
    stored (checkpoints: only the latest is worth keeping).
    """
    if kind not in Artifact.Kind.values:
        raise ValueError(f"unknown artifact kind {kind!r}")
    artifact = Artifact(job_id=job_id, kind=kind, metadata=metadata or {})
    with open(path, "rb") as fh:
        stored, sha256, size = storage_save_hashed(path=artifact_path(artifact, name or path.name), file=File(fh))
    artifact.file.name, artifact.sha256, artifact.size_bytes = stored, sha256, size
    with transaction.atomic():
        old = list(Artifact.objects.filter(job_id=job_id, kind=kind)) if replace else []
        artifact.save()
        for previous in old:
            previous.delete()
            transaction.on_commit(lambda name=previous.file.name: default_storage.delete(name))
    return artifact


def artifact_latest(*, job_id: int, kind: str) -> Artifact | None:
    return Artifact.objects.filter(job_id=job_id, kind=kind).order_by("-created_at", "-pk").first()


def artifact_fetch(*, artifact: Artifact, destination: Path) -> Path:
    """Copy an artifact from storage to a local file, checking its hash on the way."""
    digest = hashlib.sha256()
    destination.parent.mkdir(parents=True, exist_ok=True)
    with artifact.file.open("rb") as src, open(destination, "wb") as dst:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            digest.update(chunk)
            dst.write(chunk)
    if digest.hexdigest() != artifact.sha256:
        raise OSError(f"artifact {artifact.pk} ({artifact.file.name}) is corrupt: sha256 mismatch")
    return destination


def result_record(
    *, job_id: int, baseline_metrics: dict, optimized_metrics: dict | None = None,
    compression_report: dict | None = None,
) -> Result:
    result, _ = Result.objects.update_or_create(
        job_id=job_id,
        defaults={
            "baseline_metrics": baseline_metrics,
            "optimized_metrics": optimized_metrics or {},
            "compression_report": compression_report or {},
        },
    )
    return result
