"""Explanation outputs of a trained model on its test set.

- Attention maps for N chosen test samples: per sample a float16 array (layers, heads, L, L) with
  L = 1 + tokens ([CLS] first), the token labels (bases, residues, SMILES tokens with their atom
  index, particles, observations, feature names) and the rollout to the pooled [CLS] token.
- The pooled embedding of every test record (an embedding explorer plots them by label / prediction).

Samples run one at a time through the explicit attention path, so every map is the record's own,
unpadded L x L. Written to a directory:
- `attention.npz`: `attn_<k>` (layers, heads, L, L) float16 and `rollout_<k>` (L,) float32 per sample k;
- `samples.json`: per sample its test index, id, file line, token labels, true and predicted label
  (plus `atom_index` and the canonical `smiles` for molecules);
- `embeddings.npy`: (N_test, D) float32 and `embeddings.json`: ids, lines, labels, predictions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlcore.modalities import Example, Featurizer
from mlcore.sampler import eval_batches
from mlcore.tasks import TaskModel


@dataclass
class ExplainOutputs:
    """Where the explanation files were written and what they hold."""

    directory: Path
    sample_indices: list[int]
    n_embeddings: int


def choose_samples(labels: Sequence[Any] | None, n: int, seed: int = 0) -> list[int]:
    """Up to `n` test indices, taking classes in turn when labels are class ids (so both show up)."""
    total = len(labels) if labels is not None else 0
    if labels is None or total == 0:
        return []
    rng = np.random.default_rng(seed)
    try:
        keys = [int(np.asarray(y).reshape(-1)[0]) if np.asarray(y).size == 1 else None for y in labels]
    except (TypeError, ValueError):
        keys = [None] * total
    if any(k is None for k in keys):
        return sorted(rng.permutation(total)[:n].tolist())
    by_class: dict[int, list[int]] = {}
    for i in rng.permutation(total).tolist():
        by_class.setdefault(keys[i], []).append(i)
    chosen: list[int] = []
    while len(chosen) < min(n, total):
        for cls in sorted(by_class):
            if by_class[cls] and len(chosen) < n:
                chosen.append(by_class[cls].pop())
    return sorted(chosen)


@torch.no_grad()
def attention_maps(model: TaskModel, featurizer: Featurizer, collate: Any, examples: Sequence[Example],
                   device: torch.device | str = "cpu") -> list[dict[str, Any]]:
    """For each example: float16 attention (layers, heads, L, L), rollout (L,), pooled (D,), logits."""
    model.eval()
    out = []
    for example in examples:
        batch = {k: v.to(device) for k, v in collate([example]).items()}
        exp = model.explain(**batch)
        out.append({
            "attention": torch.stack([a[0] for a in exp.attentions]).to(torch.float16).cpu().numpy(),
            "rollout": exp.rollout[0].float().cpu().numpy(),
            "logits": exp.output.logits[0].float().cpu().numpy(),
            "tokens": ["[CLS]", *featurizer.token_labels(example)],
        })
    return out


@torch.no_grad()
def pooled_embeddings(model: TaskModel, collate: Any, examples: Sequence[Example], length: Any,
                      batch_size: int = 64, device: torch.device | str = "cpu") -> np.ndarray:
    """(N, D) float32 pooled embeddings, in the examples' order (length-sorted batches inside)."""
    model.eval()
    d_model = model.encoder.config.d_model
    result = np.zeros((len(examples), d_model), dtype=np.float32)
    for idx in eval_batches([length(e) for e in examples], batch_size):
        batch = {k: v.to(device) for k, v in collate([examples[i] for i in idx]).items()}
        result[idx] = model.embed(**batch).float().cpu().numpy()
    return result


def explain_write(
    directory: str | Path,
    *,
    model: TaskModel,
    featurizer: Featurizer,
    collate: Any,
    examples: Sequence[Example],
    ids: Sequence[str],
    lines: Sequence[int],
    true_labels: Sequence[Any],
    predictions: Sequence[Any],
    sample_indices: Sequence[int],
    device: torch.device | str = "cpu",
) -> ExplainOutputs:
    """Write attention maps for `sample_indices` and embeddings of all `examples` to `directory`.

    `examples` carry no labels here (inputs only); `true_labels` / `predictions` are in the user's
    terms (class names, values, label strings) and only annotate the JSON files.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = model.to(device)
    chosen = [examples[i] for i in sample_indices]
    maps = attention_maps(model, featurizer, collate, chosen, device)
    arrays: dict[str, np.ndarray] = {}
    samples = []
    for k, (i, m) in enumerate(zip(sample_indices, maps)):
        arrays[f"attn_{k}"] = m["attention"]
        arrays[f"rollout_{k}"] = m["rollout"]
        entry: dict[str, Any] = {
            "key": k, "index": int(i), "id": str(ids[i]), "line": int(lines[i]),
            "tokens": m["tokens"], "shape": list(m["attention"].shape),
            "label": true_labels[i], "prediction": predictions[i],
        }
        example = examples[i]
        if "atom_index" in example:  # molecules: token -> RDKit atom index of the canonical SMILES
            entry["atom_index"] = [-1, *np.asarray(example["atom_index"]).tolist()]
            entry["smiles"] = example.get("smiles")
        samples.append(entry)
    np.savez_compressed(directory / "attention.npz", **arrays)
    (directory / "samples.json").write_text(json.dumps(_plain(samples), indent=1))
    embeddings = pooled_embeddings(model, collate, examples, featurizer.length, device=device)
    np.save(directory / "embeddings.npy", embeddings)
    (directory / "embeddings.json").write_text(json.dumps(_plain({
        "ids": list(ids), "lines": list(lines), "labels": list(true_labels), "predictions": list(predictions),
    })))
    return ExplainOutputs(directory=directory, sample_indices=list(sample_indices), n_embeddings=len(examples))


def _plain(value: Any) -> Any:
    from mlcore.modeldir import json_clean

    if isinstance(value, np.ndarray):
        return json_clean(value.tolist())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return json_clean(value)
