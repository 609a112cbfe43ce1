"""Training checkpoints: one self-describing file per run, written atomically, loaded safely.

A checkpoint holds everything an exact resume needs (model, optimizer, scheduler, grad scaler,
the RNG states of python / numpy / torch / CUDA for every DDP rank, epoch and step, the sampler
state, early-stopping bookkeeping and the best weights so far, the history) plus what makes it
self-describing (the TrainConfig as a dict and the caller's `model_meta`).

Files are written to a temporary name and renamed over the target (`os.replace` is atomic on
POSIX), so a worker killed mid-write leaves the previous checkpoint intact, never a torn one.
They load with `torch.load(weights_only=True)`: checkpoints come back from shared storage and must
not be able to run code, so everything stored is tensors and plain Python containers/scalars.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["CHECKPOINT_NAME", "FORMAT_VERSION", "capture_rng", "load_checkpoint", "restore_rng",
           "resolve_checkpoint_path", "save_checkpoint"]

CHECKPOINT_NAME = "last.pt"  # the file written every epoch inside a run's checkpoint_dir
FORMAT_VERSION = 1


def capture_rng() -> dict[str, Any]:
    """This process's RNG states (python, numpy legacy global, torch CPU, every CUDA device)."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "python": [py_version, list(py_state), py_gauss],
        # Lists of ints, not ndarrays: weights_only loading accepts no numpy objects.
        "numpy": [np_name, np_keys.tolist(), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng`."""
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        # A resume on a machine with fewer GPUs restores what it can.
        for device, rng in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(rng, device)


def _plain(obj: Any, where: str) -> Any:
    """`obj` converted to JSON-like builtins (so weights_only loading accepts it), or a clear error."""
    try:
        return json.loads(json.dumps(obj, allow_nan=True, default=_json_default))
    except TypeError as exc:
        raise TypeError(f"{where} must be JSON-serializable to go into a checkpoint: {exc}") from exc


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write `payload` atomically to `path` (temp file in the same directory, fsync, rename).

    `history`, `best_metrics`, `config` and `model_meta` entries are normalized to plain builtins
    (numpy scalars become floats); anything that is not JSON-like raises TypeError here, at save
    time, rather than failing the load later.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(payload, format=FORMAT_VERSION)
    for key in ("history", "best_metrics", "config", "model_meta"):
        if key in payload:
            payload[key] = _plain(payload[key], key)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    # Persist the rename itself (the directory entry), not only the file contents.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def resolve_checkpoint_path(path: Path) -> Path:
    """`path` itself, or `path / last.pt` when given a run's checkpoint directory."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file (or a checkpoint directory's `last.pt`) without executing code."""
    payload = torch.load(resolve_checkpoint_path(path), map_location=map_location, weights_only=True)
    if payload.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {payload.get('format')!r}, expected {FORMAT_VERSION}")
    return payload
