"""The end of a run's outputs, beyond the model directory: what the recipe derives from the test pass
and the explanation files, each recorded in the run's manifest (mlcore.manifest) with its role.

- `evaluation_record`: OUT/evaluation.npz (or evaluation-optimized.npz): per-record evaluation arrays
  of the test split (`mlcore.explain.evaluation_write`), role `evaluation`, its metadata in the entry;
- `explanations_record`: after `mlcore.explain.explain_write`, trims the attention maps to
  ATTENTION_MAX_BYTES, adds the molecules' input SMILES to the samples and each record's preview to
  embeddings.json, writes the 2-D projection (explain/projection.npz) and OUT/predictions.csv, and
  records them all (roles attention, embeddings, projection, predictions; the JSON side files as
  `explanations`, carried as their file's metadata).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlcore.csvsafe import csv_writer
from mlcore.manifest import Manifest

# The stored attention maps are trimmed to this many bytes of float16 (fewer samples for long inputs).
ATTENTION_MAX_BYTES = 64 * 1024 * 1024
# t-SNE runs on at most this many test records (a seeded subsample beyond; PCA and k-means see all).
TSNE_MAX = 2000

EVALUATION_NAME = "evaluation.npz"
EVALUATION_OPTIMIZED_NAME = "evaluation-optimized.npz"
PREDICTIONS_NAME = "predictions.csv"
PROJECTION_NAME = "projection.npz"


def evaluation_record(manifest: Manifest, *, model: Any, prep: Any, variant: str = "baseline",
                      profile: str | None = None) -> Path:
    """Predict the test split with `model` on the CPU and write OUT/evaluation[-optimized].npz."""
    from mlcore.explain import evaluation_write
    from mlcore.taskmodel import collate_fn

    path = manifest.out / (EVALUATION_NAME if variant == "baseline" else EVALUATION_OPTIMIZED_NAME)
    meta = evaluation_write(path, model=model, test_set=prep.test, targets=prep.targets, featurizer=prep.featurizer,
                            collate=collate_fn(prep.featurizer, prep.targets.kind),
                            batch_size=int(prep.hyper.get("batch_size", 64)), device="cpu", variant=variant)
    if profile is not None:
        meta["profile"] = profile
    manifest.add(path, "evaluation", meta=meta)
    return path


def predictions_csv_write(explain_dir: Path, target: Path) -> Path:
    """The test records' ids, lines, true labels and predictions (from explain/embeddings.json) as CSV."""
    meta = json.loads((explain_dir / "embeddings.json").read_text())
    with open(target, "w", newline="") as fh:
        writer = csv_writer(fh)
        writer.writerow(["id", "line", "label", "prediction"])
        for row in zip(meta["ids"], meta["lines"], meta["labels"], meta["predictions"]):
            writer.writerow([json.dumps(v) if isinstance(v, (list, dict)) else v for v in row])
    return target


def explanations_record(manifest: Manifest, explain_dir: Path, *, inputs: Sequence[Any], seed: int = 0) -> None:
    """Complete and record what `explain_write` wrote to `explain_dir` (see the module's doc).

    `inputs` are the test records' raw inputs, in the order of the embeddings.
    """
    from mlcore.explain import attention_trim, projection_write, record_preview, samples_add_inputs

    samples = samples_add_inputs(attention_trim(explain_dir, ATTENTION_MAX_BYTES), list(inputs))
    (explain_dir / "samples.json").write_text(json.dumps(samples, indent=1))
    embeddings_meta = json.loads((explain_dir / "embeddings.json").read_text())
    embeddings_meta["previews"] = [record_preview(value) for value in inputs]  # what a hover label shows
    (explain_dir / "embeddings.json").write_text(json.dumps(embeddings_meta))
    manifest.add(explain_dir / "attention.npz", "attention", meta_file=explain_dir / "samples.json", meta_key="samples")
    manifest.add(explain_dir / "samples.json", "explanations")
    manifest.add(explain_dir / "embeddings.npy", "embeddings", meta_file=explain_dir / "embeddings.json")
    manifest.add(explain_dir / "embeddings.json", "explanations")
    projection = projection_write(explain_dir / PROJECTION_NAME, np.load(explain_dir / "embeddings.npy"), seed=seed,
                                  tsne_max=TSNE_MAX)
    manifest.add(explain_dir / PROJECTION_NAME, "projection", meta={"projection": projection})
    manifest.add(predictions_csv_write(explain_dir, manifest.out / PREDICTIONS_NAME), "predictions")
