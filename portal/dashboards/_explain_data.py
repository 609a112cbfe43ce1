"""The stored explanation artifacts of a job, as the explain dashboards read them (no dashboard here).

The worker (``workers.runner``, ``mlcore.explain``) writes, per finished job:

- ATTENTION ``attention.npz`` (``attn_<k>`` (layers, heads, L, L) float16, ``rollout_<k>`` (L,)),
  metadata ``{"samples": [...]}``: per sample its key k, test index, id, line, tokens ([CLS] first),
  label, prediction; molecules ``smiles``, ``atom_index``, ``input_smiles``, ``input_atom_index``;
  particles ``p4`` (pt, eta, phi, energy per particle);
- EMBEDDINGS ``embeddings.npy`` (N, D), metadata ``{"ids", "lines", "labels", "predictions"}``;
- EMBEDDINGS ``projection.npz`` (``pca``, ``tsne`` + ``tsne_index``, ``cluster``, ``k``,
  ``silhouette_k``, ``silhouette``), metadata ``{"projection": {...}}``;
- PREDICTIONS ``evaluation.npz`` / ``evaluation-optimized.npz`` (``y_true``, ``proba`` or ``y_pred``,
  ``offsets`` for per-token tasks), metadata ``{"kind", "variant", "classes" | "target_cols"}``.

Artifacts are found by their metadata (storage may rename a file) through
``artifact_list_for_job`` and read with ``artifact.file.open()``, never by path. A stored artifact
never changes, so parsed contents are cached per artifact id (and hash) in this process.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from portal.jobs.models import Job
from portal.results.models import Artifact
from portal.results.selectors import artifact_list_for_job


@dataclass
class ExplainArtifacts:
    """The job's explanation artifacts (None where the job has none)."""

    attention: Artifact | None = None
    embeddings: Artifact | None = None
    projection: Artifact | None = None
    evaluation: dict[str, Artifact] = field(default_factory=dict)  # variant -> artifact


def explain_artifacts(job: Job) -> ExplainArtifacts:
    """The newest artifact of each role among the job's artifacts (one query)."""
    found = ExplainArtifacts()
    for artifact in artifact_list_for_job(job=job).filter(
        kind__in=[Artifact.Kind.ATTENTION, Artifact.Kind.EMBEDDINGS, Artifact.Kind.PREDICTIONS]
    ):  # newest first within a kind
        meta = artifact.metadata if isinstance(artifact.metadata, dict) else {}
        if artifact.kind == Artifact.Kind.ATTENTION and "samples" in meta:
            found.attention = found.attention or artifact
        elif artifact.kind == Artifact.Kind.EMBEDDINGS and "projection" in meta:
            found.projection = found.projection or artifact
        elif artifact.kind == Artifact.Kind.EMBEDDINGS and "ids" in meta:
            found.embeddings = found.embeddings or artifact
        elif artifact.kind == Artifact.Kind.PREDICTIONS and meta.get("variant") in ("baseline", "optimized"):
            found.evaluation.setdefault(meta["variant"], artifact)
    return found


# --- a small per-process cache of parsed artifacts --------------------------------------------------

_CACHE_ITEMS = 48
_CACHE_BYTES = 256 * 1024 * 1024  # per process: a few jobs' attention maps and projections
_cache: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
_cache_bytes = 0
_lock = threading.Lock()


def _size(value: Any) -> int:
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, dict):
        return sum(_size(v) for v in value.values())
    return 0


def cached(key: tuple, load: Callable[[], Any]) -> Any:
    """``load()`` once per ``key``; the least recently used entries go beyond ``_CACHE_ITEMS``
    entries or ``_CACHE_BYTES`` of arrays and file bytes."""
    global _cache_bytes
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key][0]
    value = load()
    size = _size(value)
    with _lock:
        if key not in _cache:
            _cache[key] = (value, size)
            _cache_bytes += size
        _cache.move_to_end(key)
        while len(_cache) > 1 and (len(_cache) > _CACHE_ITEMS or _cache_bytes > _CACHE_BYTES):
            _, (_, dropped) = _cache.popitem(last=False)
            _cache_bytes -= dropped
    return value


def _read_bytes(artifact: Artifact) -> bytes:
    with artifact.file.open("rb") as fh:
        return fh.read()


def npz_arrays(artifact: Artifact, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """Arrays of a stored .npz (all, or ``names``), cached per artifact."""

    def load() -> dict[str, np.ndarray]:
        with np.load(io.BytesIO(_read_bytes(artifact)), allow_pickle=False) as npz:
            return {name: npz[name] for name in (names or npz.files) if name in npz.files}

    return cached(("npz", artifact.pk, artifact.sha256, names), load)


def npz_member(artifact: Artifact, name: str) -> np.ndarray | None:
    """One array of a stored .npz (the file's bytes are cached once, each array on first use)."""
    raw = cached(("bytes", artifact.pk, artifact.sha256), lambda: _read_bytes(artifact))

    def load() -> np.ndarray | None:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            return npz[name] if name in npz.files else None

    return cached(("member", artifact.pk, artifact.sha256, name), load)


def attention_samples(artifact: Artifact | None) -> list[dict[str, Any]]:
    if artifact is None:
        return []
    samples = (artifact.metadata or {}).get("samples") or []
    return [s for s in samples if isinstance(s, dict) and "key" in s]
