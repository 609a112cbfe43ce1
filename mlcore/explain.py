"""Explanation outputs of a trained model on its test set.

- Attention maps for N chosen test samples: per sample a float16 array (layers, heads, L, L) with
  L = 1 + tokens ([CLS] first), the token labels (bases, residues, SMILES tokens with their atom
  index, particles, observations, feature names) and the rollout to the pooled [CLS] token.
- The pooled embedding of every test record (an embedding explorer plots them by label / prediction).

Samples run one at a time through the explicit attention path, so every map is the record's own,
unpadded L x L. Written to a directory:
- `attention.npz`: `attn_<k>` (layers, heads, L, L) float16 and `rollout_<k>` (L,) float32 per sample k;
- `samples.json`: per sample its test index, id, file line, token labels, true and predicted label
  (plus `atom_index` and the canonical `smiles` for molecules, `p4` (pt, eta, phi, energy) per
  particle for jets);
- `embeddings.npy`: (N_test, D) float32 and `embeddings.json`: ids, lines, labels, predictions.

What the dashboards need beyond that is computed here too, at the end of the job, so the web process
never runs a model (the worker calls these after the recipe):
- `projection_write`: `projection.npz`, the test embeddings in 2-D (PCA on every record; t-SNE on at
  most `tsne_max` records, a seeded subsample when there are more) and k-means clusters with k chosen
  by the silhouette score (every tried k and its score kept).
- `evaluation_write`: `evaluation.npz`, per test record what the evaluation views are computed from:
  true class and class probabilities, true and predicted values, or per-token true and predicted
  classes (flattened, with offsets), for the baseline or the optimized model.
- `smiles_atom_map` / `smiles_input_atom_index`: the exact token -> RDKit atom index of a SMILES
  string (checked atom by atom against RDKit's own parse) and the index of the same atom in the
  SMILES as the user wrote it (RDKit's canonical order often differs).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlcore.modalities import Example, Featurizer
from mlcore.sampler import eval_batches
from mlcore.taskmodel import TaskModel


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
            # Checked against RDKit's own parse of the very string the tokens come from.
            exact = smiles_atom_map(str(example.get("smiles")), list(example["text"]))
            # [CLS] first; tokens after the SMILES ones (the [FP] fingerprint token) denote no atom.
            entry["atom_index"] = [-1, *exact.tolist(), *[-1] * (len(m["tokens"]) - 1 - len(exact))]
            entry["smiles"] = example.get("smiles")
        if "p4" in example:  # particles: (pt, eta, phi, energy) per particle, for the eta-phi drawing
            entry["p4"] = np.asarray(example["p4"], dtype=np.float64).round(6).tolist()
            entry["p4_fields"] = ["pt", "eta", "phi", "energy"]
        samples.append(entry)
    np.savez_compressed(directory / "attention.npz", **arrays)
    (directory / "samples.json").write_text(json.dumps(_plain(samples), indent=1))
    embeddings = pooled_embeddings(model, collate, examples, featurizer.length, device=device)
    np.save(directory / "embeddings.npy", embeddings)
    (directory / "embeddings.json").write_text(json.dumps(_plain({
        "ids": list(ids), "lines": list(lines), "labels": list(true_labels), "predictions": list(predictions),
    })))
    return ExplainOutputs(directory=directory, sample_indices=list(sample_indices), n_embeddings=len(examples))


def attention_trim(directory: str | Path, max_bytes: int) -> list[dict[str, Any]]:
    """Keep in `directory`'s attention.npz only as many samples as fit in `max_bytes` of float16 maps.

    A map is layers x heads x L x L: long sequences on a deep model make a few hundred MB for a
    handful of records. Samples are kept taking the labels in turn (so every class keeps some), at
    least one; samples.json is rewritten to match (keys unchanged). Returns the kept samples.
    """
    directory = Path(directory)
    samples = json.loads((directory / "samples.json").read_text())

    def size(entry: dict[str, Any]) -> int:
        return int(np.prod(entry.get("shape") or [0])) * 2

    if sum(size(e) for e in samples) <= max_bytes:
        return samples
    by_label: dict[str, list[dict[str, Any]]] = {}
    for entry in samples:
        by_label.setdefault(json.dumps(entry.get("label"), sort_keys=True, default=str), []).append(entry)
    order: list[dict[str, Any]] = []
    queues = list(by_label.values())
    while any(queues):
        for queue in queues:
            if queue:
                order.append(queue.pop(0))
    kept, total = [], 0
    for entry in order:
        if kept and total + size(entry) > max_bytes:
            continue
        kept.append(entry)
        total += size(entry)
    kept.sort(key=lambda e: e["key"])
    with np.load(directory / "attention.npz") as npz:
        arrays = {name: npz[name] for e in kept for name in (f"attn_{e['key']}", f"rollout_{e['key']}")}
    np.savez_compressed(directory / "attention.npz", **arrays)
    (directory / "samples.json").write_text(json.dumps(kept, indent=1))
    return kept


# ---------------------------------------------------------------------------------------------
# molecules: tokens -> atoms

_ATOM_TOKEN = re.compile(r"^(\[[^\]]+]|Br|Cl|B|C|N|O|S|P|F|I|b|c|n|o|s|p|\*)$")


def _mol_keep_hs(smiles: str) -> Any:
    """RDKit's parse of `smiles` keeping every written atom (explicit [H] too), atoms in written order."""
    from rdkit import Chem, rdBase

    params = Chem.SmilesParserParams()
    params.removeHs = False  # removing hydrogens would renumber the atoms after them
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles, params)
    if mol is None:
        raise ValueError(f"RDKit cannot parse SMILES {smiles!r}")
    return mol


def _token_symbol(token: str) -> str:
    """The element symbol an atom token denotes ("[13CH3+]" -> "C", "c" -> "C", "Cl" -> "Cl")."""
    if token.startswith("["):
        match = re.match(r"\[\d*([A-Z][a-z]?|[a-z][a-z]?|\*)", token)
        if not match:
            raise ValueError(f"cannot read the element of atom token {token!r}")
        symbol = match.group(1)
    else:
        symbol = token
    return "*" if symbol == "*" else symbol[0].upper() + symbol[1:]


def smiles_atom_map(smiles: str, tokens: Sequence[str]) -> np.ndarray:
    """Per token of `smiles`: the index of the atom it denotes in RDKit's parse of `smiles`, else -1.

    RDKit numbers atoms in the order the string writes them and every atom is exactly one token, so
    the k-th atom token is atom k; this is checked, element by element, against
    `Chem.MolFromSmiles(smiles)` parsed without removing hydrogens (the molecule a dashboard draws),
    and a ValueError names the first disagreement. Bonds, branches, ring closures and dots are -1.
    """
    if "".join(tokens) != smiles:
        raise ValueError(f"the tokens do not spell the SMILES {smiles!r}")
    mol = _mol_keep_hs(smiles)
    out = np.full(len(tokens), -1, dtype=np.int64)
    k = 0
    for i, token in enumerate(tokens):
        if not _ATOM_TOKEN.match(token):
            continue
        if k >= mol.GetNumAtoms():
            raise ValueError(f"{smiles!r}: token {i} ({token!r}) is an atom beyond RDKit's {mol.GetNumAtoms()}")
        symbol = mol.GetAtomWithIdx(k).GetSymbol()
        if symbol != _token_symbol(token) and not (symbol == "*" and token == "*"):
            raise ValueError(f"{smiles!r}: token {i} ({token!r}) is not atom {k} ({symbol}) of RDKit's parse")
        out[i] = k
        k += 1
    if k != mol.GetNumAtoms():
        raise ValueError(f"{smiles!r}: {k} atom tokens for {mol.GetNumAtoms()} RDKit atoms")
    return out


def smiles_input_atom_index(input_smiles: str, canonical: str) -> list[int]:
    """For each atom of `canonical` (RDKit's canonical SMILES of `input_smiles`), its index in RDKit's
    parse of `input_smiles` as the user wrote it (explicit hydrogens kept, as in `smiles_atom_map`).

    RDKit's canonical writer records which input atom it wrote k-th (`_smilesAtomOutputOrder`);
    a ValueError if the input does not canonicalize to `canonical` (another molecule).
    """
    from rdkit import Chem

    from mlcore.modalities.smiles.rules import smiles_parse

    # The featurizer's own parse (sanitized after a parse without sanitization: written atoms, [H]
    # included, keep their written order), so the canonical string is the one the tokens came from.
    mol = smiles_parse(input_smiles.strip())
    written = Chem.MolToSmiles(mol)
    if written != canonical:
        raise ValueError(f"{input_smiles!r} canonicalizes to {written!r}, not {canonical!r}")
    order = [int(v) for v in re.findall(r"\d+", mol.GetProp("_smilesAtomOutputOrder"))]
    if sorted(order) != list(range(_mol_keep_hs(input_smiles.strip()).GetNumAtoms())):
        raise ValueError(f"{input_smiles!r}: its atoms do not match those of {canonical!r} one to one")
    return order


def samples_add_inputs(samples: list[dict[str, Any]], inputs: Sequence[Any]) -> list[dict[str, Any]]:
    """Molecules: add each sample's SMILES as written (`input_smiles`) and, per token, the atom's
    index in it (`input_atom_index`, -1 for non-atoms and [CLS]). `inputs[i]` is test record i's input."""
    for entry in samples:
        if "atom_index" not in entry or not entry.get("smiles"):
            continue
        raw = str(inputs[entry["index"]]).strip()
        to_input = smiles_input_atom_index(raw, entry["smiles"])
        entry["input_smiles"] = raw
        entry["input_atom_index"] = [to_input[a] if a >= 0 else -1 for a in entry["atom_index"]]
    return samples


def record_preview(value: Any, limit: int = 80) -> str:
    """A short text of a raw record for a hover label: the sequence or SMILES (cut at `limit`), a
    tabular row as `column=value` pairs, or the size of a long-format object (particles, observations)."""
    if isinstance(value, dict):
        sizes = [len(v) for v in value.values() if isinstance(v, (list, tuple, np.ndarray))]
        text = (f"{max(sizes)} rows ({', '.join(map(str, value))})" if sizes
                else ", ".join(f"{k}={v}" for k, v in value.items()))
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------
# embeddings in 2-D, clusters


def projection_arrays(embeddings: np.ndarray, *, seed: int = 0, tsne_max: int = 2000,
                      k_max: int = 10, silhouette_max: int = 2000) -> dict[str, np.ndarray]:
    """See `_projection_arrays`; runs scikit-learn single-threaded.

    In a process that has loaded torch, scikit-learn's OpenMP pool and torch's contend: t-SNE and
    k-means of 18 records took 12 s instead of 0.4 s on a 2-core worker. One thread avoids that.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _projection_arrays(embeddings, seed=seed, tsne_max=tsne_max, k_max=k_max, silhouette_max=silhouette_max)


def _projection_arrays(embeddings: np.ndarray, *, seed: int, tsne_max: int, k_max: int,
                       silhouette_max: int) -> dict[str, np.ndarray]:
    """PCA and t-SNE of (N, D) embeddings plus k-means clusters with k chosen by silhouette.

    Arrays: `pca` (N, 2), `pca_variance` (2,) explained variance ratio, `tsne` (M, 2) for the test
    indices `tsne_index` (M,) (all records when N <= `tsne_max`, else a seeded subsample of
    `tsne_max`; M = 0 below 5 records), `cluster` (N,) k-means labels, `k` (), `silhouette_k` and
    `silhouette` (every k tried, 2..min(k_max, N - 1), and its score on at most `silhouette_max`
    records). With fewer than 3 records (or identical ones) every record is cluster 0 and k = 1.
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from sklearn.metrics import silhouette_score

    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be (N, D), got shape {x.shape}")
    n = len(x)
    rng = np.random.default_rng(seed)
    pca = np.zeros((n, 2))
    variance = np.zeros(2)
    if n >= 2:
        components = min(2, x.shape[1], n)
        with np.errstate(invalid="ignore", divide="ignore"):  # identical records: no variance at all
            fitted = PCA(n_components=components, random_state=seed).fit(x)
            pca[:, :components] = fitted.transform(x)
            variance[:components] = np.nan_to_num(fitted.explained_variance_ratio_)
    tsne_index = np.arange(n) if n <= tsne_max else np.sort(rng.choice(n, tsne_max, replace=False))
    tsne = np.zeros((0, 2))
    if len(tsne_index) >= 5:
        sub = x[tsne_index]
        perplexity = float(min(30.0, (len(sub) - 1) / 3))
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                    max_iter=1000 if len(sub) <= 1000 else 500).fit_transform(sub)
    else:
        tsne_index = np.zeros(0, dtype=np.int64)
    ks, scores = [], []
    labels = np.zeros(n, dtype=np.int64)
    best_k = 1
    distinct = len(np.unique(x.round(6), axis=0)) if n else 0
    if n >= 3 and distinct >= 3:
        sample = None if n <= silhouette_max else rng.choice(n, silhouette_max, replace=False)
        best = -2.0
        for k in range(2, min(k_max, n - 1, distinct - 1) + 1):
            fitted = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)
            lab = fitted.labels_
            if sample is not None and len(np.unique(lab[sample])) < 2:
                continue
            score = float(silhouette_score(x if sample is None else x[sample], lab if sample is None else lab[sample]))
            ks.append(k)
            scores.append(score)
            if score > best:
                best, best_k, labels = score, k, lab.astype(np.int64)
    return {
        "pca": pca.astype(np.float32), "pca_variance": variance.astype(np.float32),
        "tsne": tsne.astype(np.float32), "tsne_index": np.asarray(tsne_index, dtype=np.int64),
        "cluster": labels, "k": np.asarray(best_k, dtype=np.int64),
        "silhouette_k": np.asarray(ks, dtype=np.int64), "silhouette": np.asarray(scores, dtype=np.float64),
    }


def projection_write(path: str | Path, embeddings: np.ndarray, **options: Any) -> dict[str, Any]:
    """Write `projection_arrays` to `path` (.npz); returns the summary stored as artifact metadata."""
    arrays = projection_arrays(embeddings, **options)
    path = Path(path)
    np.savez_compressed(path, **arrays)
    return {
        "n": int(len(arrays["pca"])), "k": int(arrays["k"]),
        "silhouette": {str(k): round(float(s), 6) for k, s in zip(arrays["silhouette_k"], arrays["silhouette"])},
        "tsne_n": int(len(arrays["tsne_index"])),
        "tsne_subsampled": bool(len(arrays["tsne_index"]) and len(arrays["tsne_index"]) < len(arrays["pca"])),
        "pca_variance": [round(float(v), 6) for v in arrays["pca_variance"]],
    }


# ---------------------------------------------------------------------------------------------
# per-record predictions for the evaluation views


def evaluation_arrays(targets: Any, logits: Sequence[np.ndarray], labels: Sequence[Any]) -> dict[str, np.ndarray]:
    """Per-record evaluation data from a model's test logits and the encoded labels: the target
    kind's `Kind.evaluation_arrays` (e.g. classes: `y_true`, `proba`, `y_pred`; numbers: `y_true`,
    `y_pred` (N, K) in target units; per-token: `y_true`, `y_pred`, `offsets`)."""
    return targets.kind_obj.evaluation_arrays(targets, logits, labels)


def evaluation_write(path: str | Path, *, model: Any, test_set: Any, targets: Any, featurizer: Featurizer,
                     collate: Any, batch_size: int = 64, device: torch.device | str = "cpu",
                     variant: str = "baseline") -> dict[str, Any]:
    """Predict the test set with `model` and write `evaluation_arrays` to `path` (.npz).

    Returns the metadata a dashboard needs to read it: kind, class names or target columns, variant.
    """
    from mlcore.trainer import predict

    logits = predict(model=model, dataset=test_set, collate=collate, length=featurizer.length,
                     batch_size=batch_size, device=device)
    arrays = evaluation_arrays(targets, logits, list(test_set.labels))
    np.savez_compressed(Path(path), **arrays)
    meta: dict[str, Any] = {"kind": targets.kind, "variant": variant, "n": len(logits)}
    meta.update(targets.kind_obj.evaluation_meta(targets))
    return meta


def _plain(value: Any) -> Any:
    from mlcore.modeldir import json_clean

    if isinstance(value, np.ndarray):
        return json_clean(value.tolist())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return json_clean(value)
