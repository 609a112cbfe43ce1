"""`manifest.json`: what a run wrote into its output directory, one role per file (torch-free).

The recipe (mlcore.recipe.recipe_run) records every file it writes and, at its end, writes
`OUT/manifest.json` atomically:

    {"files": {"metrics.json": {"role": "metrics"},
               "model/model.safetensors": {"role": "model", "bundle": "model"},
               "explain/attention.npz": {"role": "attention", "meta_file": "explain/samples.json",
                                         "meta_key": "samples"},
               "explain/samples.json": {"role": "explanations"},
               "evaluation.npz": {"role": "evaluation", "meta": {"kind": "binary", "variant": "baseline", ...}},
               ...}}

Every listed path exists and every file of the directory (but manifest.json) is listed. Entry fields:
- `role` (one of ROLES);
- `bundle`: the files of one directory that belong together (a model directory), shipped as one unit;
- `meta`: a small JSON object describing the file (what a reader needs to interpret it);
- `meta_file` (+ `meta_key`): a JSON file of the run whose content completes `meta` (under `meta_key`,
  or merged when it holds an object). Such a side file is described by the entry that names it.

`manifest_units` turns the manifest into what a consumer stores (the workers store exactly these):
one unit per file, one per bundle, with its metadata; side files travel inside their unit's metadata.
A new run into the same directory first removes the files the previous run's manifest listed
(`manifest_clear`), so a directory never holds a stale output its manifest does not explain.
manifest.json is written only by a run that got to its end (a cancelled optimization profile
included: it lists the baseline's outputs and metrics.json says "cancelled"); a run that failed or was
cancelled while training leaves none, so its absence means "no finished run here". Training resumes
from a checkpoint, not from half-written outputs: a resumed run writes every output again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"

# What each role is (a consumer maps roles to its own storage kinds; no file name is parsed).
ROLES = {
    "model": "the trained model directory (mlcore.modeldir)",
    "optimized_model": "the model directory after the optimization profile",
    "metrics": "metrics.json: test / val metrics, history, environment",
    "report": "report.json: the optimization profile's compression report",
    "attention": "attention maps and rollouts of the explained test records",
    "embeddings": "pooled embeddings of every test record",
    "projection": "2-D projections (PCA, t-SNE) and k-means clusters of the embeddings",
    "evaluation": "per-record evaluation arrays of the test split (baseline or optimized model)",
    "predictions": "test predictions as CSV",
    "explanations": "a side file describing another explanation file (its meta_file)",
    "checkpoint": "a training checkpoint (when the checkpoint folder is inside the output directory)",
    "log": "a log of the run",
}


@dataclass
class OutputUnit:
    """One thing a consumer stores: a file, or a bundle (a directory) of files."""

    role: str
    path: str  # relative to the output directory: the file, or the bundle's directory
    files: list[str]  # the manifest's files this unit carries (side files included)
    meta: dict[str, Any] = field(default_factory=dict)
    is_bundle: bool = False


class Manifest:
    """The files a run writes, recorded as they are written; `write` puts manifest.json last."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.files: dict[str, dict[str, Any]] = {}

    def _rel(self, path: str | Path) -> str:
        path = Path(path)
        for candidate, base in ((path, self.out), (path.resolve(), self.out.resolve())):
            try:
                return candidate.relative_to(base).as_posix()
            except ValueError:
                pass
        if path.is_absolute():
            raise ValueError(f"{path} is not inside the output directory {self.out}")
        return path.as_posix()  # already relative to the output directory

    def add(self, path: str | Path, role: str, *, meta: dict[str, Any] | None = None,
            meta_file: str | Path | None = None, meta_key: str | None = None, bundle: str | None = None) -> str:
        """Record one file (absolute, or relative to the output directory) with its role."""
        if role not in ROLES:
            raise ValueError(f"unknown output role {role!r}; roles: {', '.join(ROLES)}")
        entry: dict[str, Any] = {"role": role}
        if bundle is not None:
            entry["bundle"] = bundle
        if meta:
            entry["meta"] = meta
        if meta_file is not None:
            entry["meta_file"] = self._rel(meta_file)
            if meta_key is not None:
                entry["meta_key"] = meta_key
        rel = self._rel(path)
        self.files[rel] = entry
        return rel

    def add_dir(self, directory: str | Path, role: str, *, meta: dict[str, Any] | None = None) -> list[str]:
        """Record every file under `directory` as one bundle with `role`."""
        directory = Path(directory)
        bundle = self._rel(directory)
        return [self.add(p, role, meta=meta, bundle=bundle) for p in sorted(directory.rglob("*")) if p.is_file()]

    def drop_missing(self) -> None:
        """Forget entries whose file is not there (a step that stopped before writing it)."""
        self.files = {rel: e for rel, e in self.files.items() if (self.out / rel).is_file()}

    def write(self) -> Path:
        """Write OUT/manifest.json atomically (a temporary file renamed over it). Every entry must exist."""
        missing = [rel for rel in self.files if not (self.out / rel).is_file()]
        if missing:
            raise FileNotFoundError(f"manifest lists files that were not written: {', '.join(missing)}")
        target = self.out / MANIFEST_NAME
        tmp = target.with_name(f".{MANIFEST_NAME}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"files": self.files}, fh, indent=1, default=_plain)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        return target


def _plain(value: Any) -> Any:
    """numpy scalars and arrays in metadata, as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def manifest_read(out: str | Path) -> dict[str, Any]:
    """OUT/manifest.json as written (`{"files": {...}}`)."""
    return json.loads((Path(out) / MANIFEST_NAME).read_text(encoding="utf-8"))


def manifest_check(out: str | Path) -> list[str]:
    """What is wrong with OUT's manifest, one line each (empty: every listed file exists, every file
    of the directory is listed, each with a known role)."""
    out = Path(out)
    problems = []
    try:
        files = manifest_read(out)["files"]
    except (OSError, ValueError, KeyError) as exc:
        return [f"no readable {MANIFEST_NAME}: {exc}"]
    for rel, entry in files.items():
        if not (out / rel).is_file():
            problems.append(f"listed but missing: {rel}")
        if entry.get("role") not in ROLES:
            problems.append(f"no known role: {rel} ({entry.get('role')!r})")
        if entry.get("meta_file") and entry["meta_file"] not in files:
            problems.append(f"meta_file of {rel} is not listed: {entry['meta_file']}")
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if path.is_file() and rel != MANIFEST_NAME and rel not in files:
            problems.append(f"not listed: {rel}")
    return problems


def manifest_clear(out: str | Path) -> None:
    """Remove what an earlier run into OUT listed in its manifest (and the manifest itself), and the
    folders that leaves empty. Files the manifest does not list are left alone."""
    out = Path(out)
    try:
        files = manifest_read(out)["files"]
    except (OSError, ValueError, KeyError):
        return
    folders = set()
    for rel in files:
        path = out / rel
        if out.resolve() not in path.resolve().parents:
            continue  # never outside the directory, whatever the file says
        path.unlink(missing_ok=True)
        folders.update(p for p in path.parents if out.resolve() in p.resolve().parents)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty: someone else's files are in it
    (out / MANIFEST_NAME).unlink(missing_ok=True)


def manifest_units(out: str | Path) -> list[OutputUnit]:
    """The manifest as units to store, in the order the run wrote them: each file on its own, each
    bundle once, side files (another entry's meta_file) inside their unit's metadata."""
    out = Path(out)
    files = manifest_read(out)["files"]
    side = {e["meta_file"] for e in files.values() if e.get("meta_file")}
    units: list[OutputUnit] = []
    bundles: dict[str, OutputUnit] = {}
    for rel, entry in files.items():
        if rel in side:
            continue
        bundle = entry.get("bundle")
        if bundle is not None and bundle in bundles:
            bundles[bundle].files.append(rel)
            continue
        meta = dict(entry.get("meta") or {})
        carried = [rel]
        if entry.get("meta_file"):
            extra = json.loads((out / entry["meta_file"]).read_text(encoding="utf-8"))
            if entry.get("meta_key"):
                meta[entry["meta_key"]] = extra
            else:
                meta.update(extra)
            carried.append(entry["meta_file"])
        unit = OutputUnit(role=entry["role"], path=bundle if bundle is not None else rel, files=carried, meta=meta,
                          is_bundle=bundle is not None)
        if bundle is not None:
            bundles[bundle] = unit
        units.append(unit)
    return units
