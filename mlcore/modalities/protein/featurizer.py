"""Protein sequences: one token per residue over the 20 standard amino acids plus X (unknown),
B (Asx), Z (Glx), U (selenocysteine) and O (pyrrolysine).

One token per residue keeps per-residue labels (secondary structure, binding sites) aligned one to
one with the encoder's token outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mlcore.modalities.base import Example, Featurizer, featurizer_register, pad_1d
from mlcore.modalities.common import RuleOptions
from mlcore.modalities.protein import rules
from mlcore.modalities.sequence import SequenceStem

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY" + "XBZUO"  # token id = index + 1; 0 is padding
_LOOKUP = np.zeros(256, dtype=np.int64)
for _i, _c in enumerate(AMINO_ACIDS):
    _LOOKUP[ord(_c)] = _LOOKUP[ord(_c.lower())] = _i + 1


@featurizer_register
class ProteinFeaturizer(Featurizer):
    """Amino-acid strings -> residue ids. A trailing '*' (stop) is tolerated and dropped."""

    modality = "protein"

    def __init__(self, *, max_len: int = 1024, conv_kernel: int = 3) -> None:
        super().__init__(max_len=max_len)
        self.conv_kernel = conv_kernel

    def state(self) -> dict[str, Any]:
        return {"max_len": self.max_len, "conv_kernel": self.conv_kernel}

    def parse(self, record: Any) -> np.ndarray:
        """Check one sequence with the protein rules (`rules.check`) and return its residue ids."""
        seq = rules.check(record, RuleOptions(max_len=self.max_len)).value
        return _LOOKUP[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]

    def encode(self, record: Any, *, rng: np.random.Generator | None = None) -> Example:
        return {"tokens": self.parse(record)}

    def length(self, example: Example) -> int:
        return len(example["tokens"])

    def token_labels(self, example: Example) -> list[str]:
        return [AMINO_ACIDS[i - 1] for i in example["tokens"]]

    def collate(self, examples: Sequence[Example]) -> dict[str, Tensor]:
        tokens, _ = pad_1d([e["tokens"] for e in examples], 0, torch.long)
        return {"tokens": tokens}

    def stem(self, d_model: int, n_heads: int) -> nn.Module:
        return SequenceStem(len(AMINO_ACIDS) + 1, d_model, self.max_len, conv_kernel=self.conv_kernel)
