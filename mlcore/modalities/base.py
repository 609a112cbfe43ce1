"""What every modality provides, and the small helpers they share.

A modality is a `Featurizer` (turns one raw record into a dict of numpy arrays, an "example", and
raises `RecordError` with a precise reason when the record is invalid), a `collate` that pads
examples into a batch of tensors, and a stem `nn.Module` that turns that batch into encoder inputs:
token embeddings `(B, T, D)`, a padding mask `(B, T)` (True = real) and an optional attention bias
`(B, H, T, T)`. The encoder adds its own [CLS] token, so stems never do.

Featurizers are fitted on the training records only (vocabularies, feature scaling), and their
`state()` is plain JSON so a saved model directory describes itself (`from_state` rebuilds it).
Each modality's `featurizer.py` registers its class right under its definition; the record rules
it applies live in the modality's torch-free `rules.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from mlcore.modalities.common import Example, RecordError  # torch-free, shared with the rules modules

__all__ = ["FEATURIZERS", "Example", "Featurizer", "LearnedPositions", "RecordError", "featurizer_register",
           "pad_1d", "pad_2d"]


class Featurizer(ABC):
    """Base class: a modality's tokenizer / feature extractor. Subclasses override the hooks."""

    modality: ClassVar[str] = ""

    def __init__(self, *, max_len: int = 512) -> None:
        self.max_len = max_len

    # -- fitting and persistence ------------------------------------------------------------------
    def fit(self, records: Iterable[Any]) -> Featurizer:
        """Learn vocabularies / scaling from the training records; a no-op by default."""
        return self

    def state(self) -> dict[str, Any]:
        """JSON-able description from which `from_state` rebuilds an identical featurizer."""
        return {"max_len": self.max_len}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Featurizer:
        """Rebuild a featurizer saved with `state()`."""
        obj = cls.__new__(cls)
        obj.__dict__.update(cls._state_decode(state))
        return obj

    @classmethod
    def _state_decode(cls, state: dict[str, Any]) -> dict[str, Any]:
        return dict(state)

    # -- records ----------------------------------------------------------------------------------
    @abstractmethod
    def encode(self, record: Any, *, rng: np.random.Generator | None = None) -> Example:
        """One raw record -> example arrays. `rng` given means: apply training augmentation."""
        ...

    @abstractmethod
    def length(self, example: Example) -> int:
        """Number of tokens the example becomes (the trainer buckets batches by it)."""
        ...

    @abstractmethod
    def token_labels(self, example: Example) -> list[str]:
        """A human-readable label per token, for attention maps."""
        ...

    @abstractmethod
    def collate(self, examples: Sequence[Example]) -> dict[str, Tensor]:
        """Pad `examples` into a batch of input tensors (labels are added by the task layer)."""
        ...

    @abstractmethod
    def stem(self, d_model: int, n_heads: int) -> nn.Module:
        """A fresh stem module for this featurizer's vocabulary / feature layout."""
        ...

    @property
    def supports_augmentation(self) -> bool:
        return False


FEATURIZERS: dict[str, type[Featurizer]] = {}


def featurizer_register(cls: type[Featurizer]) -> type[Featurizer]:
    """Class decorator: make `cls` the featurizer of `cls.modality`."""
    FEATURIZERS[cls.modality] = cls
    return cls


# -- padding helpers ------------------------------------------------------------------------------


def pad_1d(arrays: Sequence[np.ndarray], value: float | int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Right-pad 1-D arrays to the longest: (values (B, T), pad_mask (B, T) True = real)."""
    T = max((len(a) for a in arrays), default=0)
    out = torch.full((len(arrays), T), value, dtype=dtype)
    mask = torch.zeros((len(arrays), T), dtype=torch.bool)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = torch.as_tensor(np.asarray(a), dtype=dtype)
        mask[i, : len(a)] = True
    return out, mask


def pad_2d(arrays: Sequence[np.ndarray], dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """Right-pad (T_i, F) arrays with zeros to (B, T, F); the mask says which rows are real."""
    T = max((len(a) for a in arrays), default=0)
    F = arrays[0].shape[1] if arrays else 0
    out = torch.zeros((len(arrays), T, F), dtype=dtype)
    mask = torch.zeros((len(arrays), T), dtype=torch.bool)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = torch.as_tensor(np.asarray(a), dtype=dtype)
        mask[i, : len(a)] = True
    return out, mask


class LearnedPositions(nn.Module):
    """Learned absolute position embeddings for ordered modalities (sequences)."""

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(max_len, d_model) * 0.02)

    def forward(self, T: int) -> Tensor:
        return self.weight[:T]  # (T, D)
