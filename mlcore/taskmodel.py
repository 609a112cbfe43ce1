"""Tasks at run time: how each catalog task builds its featurizer and model, and the model itself.

- `TaskDef` + `TASK_DEFS`: per task key, the featurizer options that suit it; each definition is
  registered right under itself (the catalog in `mlcore.catalog` holds the torch-free metadata).
- `TaskModel(stem, encoder, head)`: the one model shape every task trains. `forward(**batch)` follows
  the trainer's contract (a batch with `labels` gives a loss); `embed` returns pooled vectors and
  `explain` also the attention weights of every layer.
- `model_build(...)`: stem from the fitted featurizer, encoder from the preset, head from the target kind.
- `ExampleSet`: the examples the trainer iterates, with labels attached, optionally augmenting
  records on the fly (reverse complements, randomized SMILES) reproducibly from (seed, epoch, index).
- `collate_fn`, `evaluate_fn`: the callables the trainer takes, for one featurizer and target encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mlcore import catalog
from mlcore.data import TargetEncoder
from mlcore.kinds import kind_get
from mlcore.metrics import compute_metrics
from mlcore.modalities import Example, Featurizer, featurizer_build
from mlcore.model import Encoder, EncoderConfig, HeadOutput, attention_rollout


@dataclass(frozen=True)
class TaskDef:
    """How a catalog task is built: its featurizer defaults (hyperparameters may override some)."""

    key: str
    featurizer_options: dict[str, Any] = field(default_factory=dict)

    @property
    def meta(self) -> catalog.Task:
        return catalog.task_get(self.key)


TASK_DEFS: dict[str, TaskDef] = {}


def task_def_register(task_def: TaskDef) -> TaskDef:
    """Register a task definition under its catalog key (which must exist)."""
    catalog.task_get(task_def.key)
    TASK_DEFS[task_def.key] = task_def
    return task_def


# A residual conv of 9 bases gives every base token its local motif context (see sequence.py).
task_def_register(TaskDef("dna-classification", {"conv_kernel": 9}))
task_def_register(TaskDef("dna-regression", {"conv_kernel": 9}))
task_def_register(TaskDef("protein-classification", {"conv_kernel": 3}))
task_def_register(TaskDef("protein-regression", {"conv_kernel": 3}))
# Per-residue labels depend on neighbours (secondary structure spans ~4-10 residues).
task_def_register(TaskDef("residue-labeling", {"conv_kernel": 5}))
# The [FP] token: Morgan count fingerprint plus standardized RDKit descriptors beside the SMILES
# (smiles.py). Measured in bench/README.md "Quality": the fingerprint closes the gap to a fingerprint
# random forest on the ChEMBL sets; the descriptors keep solubility from regressing.
_MOLECULE_OPTIONS = {"conv_kernel": 3, "fingerprint": True, "descriptors": True}
task_def_register(TaskDef("molecule-classification", dict(_MOLECULE_OPTIONS)))
task_def_register(TaskDef("molecule-regression", dict(_MOLECULE_OPTIONS)))
# Pairwise Delta R / kT / z / m^2 bias: the Particle Transformer's main gain over a plain set model.
task_def_register(TaskDef("jet-tagging", {"pairwise": True}))
task_def_register(TaskDef("lightcurve-classification", {}))
task_def_register(TaskDef("tabular-classification", {}))
task_def_register(TaskDef("tabular-regression", {}))


# A catalog task without a definition of its own takes its modality's featurizer defaults: the ones
# the modality's first task registered above (e.g. a new molecule task gets the [FP] token).
MODALITY_DEFAULTS: dict[str, dict[str, Any]] = {}
for _def in TASK_DEFS.values():
    MODALITY_DEFAULTS.setdefault(_def.meta.modality, dict(_def.featurizer_options))


def task_def_get(key: str) -> TaskDef:
    """The run-time definition of task `key` (KeyError listing valid keys); a task registered in the
    catalog alone gets its modality's defaults."""
    task = catalog.task_get(key)
    if key not in TASK_DEFS:
        return TaskDef(key, dict(MODALITY_DEFAULTS.get(task.modality, {})))
    return TASK_DEFS[key]


def featurizer_for_task(key: str, *, max_len: int | None = None, kmer: int | None = None,
                        fingerprint: bool | None = None, **extra: Any) -> Featurizer:
    """An unfitted featurizer for task `key` with its defaults, `max_len`, (DNA) `kmer` and
    (molecules) `fingerprint` applied; None keeps the task's default."""
    task_def = task_def_get(key)
    options = dict(task_def.featurizer_options)
    options.update(extra)
    modality = task_def.meta.modality
    if max_len is not None:
        options["max_len"] = max_len
    else:
        options.setdefault("max_len", catalog.MODALITIES[modality].default_max_len)
    if kmer is not None and modality == "dna":
        options["kmer"] = kmer
    if fingerprint is not None and modality == "smiles":
        options["fingerprint"] = fingerprint
        if not fingerprint:
            options.pop("descriptors", None)  # descriptors ride on the [FP] token
    return featurizer_build(modality, **options)


# ---------------------------------------------------------------------------------------------
# The model


@dataclass
class Explanation:
    """Explanation pass output for one batch."""

    output: HeadOutput
    pooled: Tensor  # (B, D)
    attentions: list[Tensor]  # per layer (B, H, 1+T, 1+T)
    rollout: Tensor  # (B, 1+T), [CLS] first
    pad_mask: Tensor  # (B, T)


class TaskModel(nn.Module):
    """stem -> Encoder -> head. Token-level heads read the per-token states, others the pooled one."""

    def __init__(self, stem: nn.Module, encoder: Encoder, head: nn.Module, *, token_level: bool) -> None:
        super().__init__()
        self.stem = stem
        self.encoder = encoder
        self.head = head
        self.token_level = token_level

    def _encode(self, batch: dict[str, Tensor], output_attentions: bool) -> tuple[Any, Tensor]:
        x, pad_mask, bias = self.stem(**batch)  # (B, T, D), (B, T), (B, H, T, T) | None
        out = self.encoder(x, pad_mask, bias, output_attentions=output_attentions)
        return out, pad_mask

    def forward(self, labels: Tensor | None = None, **batch: Tensor) -> HeadOutput:
        out, _ = self._encode(batch, False)
        return self.head(out.tokens if self.token_level else out.pooled, labels)

    @torch.no_grad()
    def embed(self, **batch: Tensor) -> Tensor:
        """Pooled [CLS] embeddings (B, D), for the embedding explorer."""
        batch.pop("labels", None)
        return self._encode(batch, False)[0].pooled

    @torch.no_grad()
    def explain(self, **batch: Tensor) -> Explanation:
        """Predictions plus attention weights of every layer and their rollout to [CLS]."""
        labels = batch.pop("labels", None)
        out, pad_mask = self._encode(batch, True)
        head_out = self.head(out.tokens if self.token_level else out.pooled, labels)
        return Explanation(head_out, out.pooled, out.attentions, attention_rollout(out.attentions, pad_mask), pad_mask)


def head_build(kind: str, d_model: int, n_outputs: int, dropout: float,
               class_weights: Tensor | None = None) -> nn.Module:
    """The head for a resolved target kind (`Kind.head`)."""
    return kind_get(kind).head(d_model, n_outputs, dropout, class_weights)


def model_build(featurizer: Featurizer, encoder_config: EncoderConfig, kind: str, n_outputs: int,
                class_weights: Tensor | None = None) -> TaskModel:
    """A fresh TaskModel for a fitted featurizer, encoder shape and resolved target kind."""
    stem = featurizer.stem(encoder_config.d_model, encoder_config.n_heads)
    head = head_build(kind, encoder_config.d_model, n_outputs, encoder_config.dropout, class_weights)
    return TaskModel(stem, Encoder(encoder_config), head, token_level=kind_get(kind).token_level)


# ---------------------------------------------------------------------------------------------
# Examples, collate and evaluate for the trainer


class ExampleSet(Sequence):
    """Encoded examples with their labels, as the trainer indexes them.

    With `augment=True` and a featurizer that supports it, each access re-encodes the raw record with
    a generator seeded by (seed, epoch, index): a different augmentation every epoch, yet the same
    one again after a resume. The trainer tells the set its epoch through `set_epoch` (on every DDP
    rank, before each epoch, 0-based), as PyTorch's DistributedSampler is told.
    """

    def __init__(self, featurizer: Featurizer, inputs: Sequence[Any], examples: Sequence[Example],
                 labels: Sequence[Any] | None, *, augment: bool = False, seed: int = 0) -> None:
        self.featurizer = featurizer
        self.inputs = inputs
        self.examples = list(examples)
        self.labels = labels
        self.augment = augment and featurizer.supports_augmentation
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:  # type: ignore[override]
        example = self.examples[i]
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            example = self.featurizer.encode(self.inputs[i], rng=rng)
        if self.labels is not None:
            example = {**example, "label": self.labels[i]}
        return example

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of `epoch` (0-based)."""
        self.epoch = epoch


def collate_fn(featurizer: Featurizer, kind: str) -> Callable[[list[Example]], dict[str, Tensor]]:
    """Batch examples: the featurizer's input tensors plus `labels` when the examples carry them."""

    labels_of = kind_get(kind).collate_labels

    def collate(examples: list[Example]) -> dict[str, Tensor]:
        batch = featurizer.collate(examples)
        if examples and "label" in examples[0]:
            batch["labels"] = labels_of([e["label"] for e in examples])
        return batch

    return collate


def evaluate_fn(targets: TargetEncoder) -> Callable[[list[np.ndarray], list[np.ndarray]], dict[str, float]]:
    """Metrics from per-example logits and labels, in target units (regression de-standardized)."""

    def evaluate(logits: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
        y_true, y_score = targets.metric_inputs(logits, labels)
        return compute_metrics(targets.kind, y_true, y_score)

    return evaluate


def class_weights_balanced(labels: Sequence[int], n_classes: int) -> Tensor:
    """Inverse-frequency class weights normalized to mean 1 (unseen classes get weight 1)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 1.0)
    return torch.as_tensor(weights / weights.mean(), dtype=torch.float32)
