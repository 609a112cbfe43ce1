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

from mlcore.modalities.base import Example, Featurizer, RecordError, featurizer_register, pad_1d
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
        """Validate one sequence and return its residue ids; RecordError naming the first bad one."""
        if not isinstance(record, str):
            raise RecordError(f"expected an amino-acid string, got {type(record).__name__}")
        seq = record.strip()
        if seq.endswith("*"):  # FASTA translations often end with a stop symbol
            seq = seq[:-1]
        if not seq:
            raise RecordError("empty sequence")
        raw = np.frombuffer(seq.encode("utf-8", "replace"), dtype=np.uint8)
        ids = _LOOKUP[raw] if len(raw) == len(seq) else np.zeros(len(seq), np.int64)
        bad = np.flatnonzero(ids == 0)
        if len(bad):
            pos = int(bad[0])
            raise RecordError(f"invalid amino acid {seq[pos]!r} at position {pos + 1}")
        if len(ids) > self.max_len:
            raise RecordError(f"sequence of {len(ids)} residues is longer than max_len {self.max_len}")
        return ids

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
