"""DNA / RNA sequences: one token per base, IUPAC ambiguity codes, optional k-mer ids, reverse
complements as augmentation.

Tokens are single bases, so attention maps and token labels stay one per nucleotide whatever the
k-mer setting. With `kmer > 1` each position also carries the id of the overlapping k-mer that starts
there (an extra embedding summed with the base's), which gives the encoder k-mer vocabulary without
shortening the sequence. Ambiguity codes are not free tokens: N's embedding is the mean of A, C, G
and T's, R's the mean of A and G's, and so on (a composition matrix in the stem), so a model never
learns anything from an N that it would not learn from the bases it may stand for. A k-mer that
contains an ambiguous base gets one shared "ambiguous k-mer" id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mlcore.modalities.base import Example, Featurizer, featurizer_register, pad_1d
from mlcore.modalities.common import RuleOptions
from mlcore.modalities.dna import rules
from mlcore.modalities.sequence import SequenceStem

# IUPAC nucleotide codes and the bases each may stand for (U is read as T).
IUPAC: dict[str, str] = {
    "A": "A", "C": "C", "G": "G", "T": "T",
    "R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT", "M": "AC",
    "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "N": "ACGT",
}
COMPLEMENT: dict[str, str] = {
    "A": "T", "C": "G", "G": "C", "T": "A", "R": "Y", "Y": "R", "S": "S", "W": "W",
    "K": "M", "M": "K", "B": "V", "V": "B", "D": "H", "H": "D", "N": "N",
}
CODES = "ACGTRYSWKMBDHVN"  # token id = index + 1; 0 is padding
_CODE_ID = {c: i + 1 for i, c in enumerate(CODES)}
_LOOKUP = np.zeros(256, dtype=np.int64)  # byte -> token id, 0 = invalid
for _c, _i in _CODE_ID.items():
    _LOOKUP[ord(_c)] = _i
    _LOOKUP[ord(_c.lower())] = _i
_LOOKUP[ord("U")] = _LOOKUP[ord("u")] = _CODE_ID["T"]
_COMPLEMENT_ID = np.zeros(len(CODES) + 1, dtype=np.int64)
for _c, _i in _CODE_ID.items():
    _COMPLEMENT_ID[_i] = _CODE_ID[COMPLEMENT[_c]]

# k-mer ids: 0 padding, 1 a k-mer with an ambiguous base, 2 a position too close to the end for a
# full k-mer, then 3 + the base-4 number of the k-mer.
_KMER_AMBIGUOUS, _KMER_SHORT, _KMER_OFFSET = 1, 2, 3


def composition_matrix() -> Tensor:
    """(16, 4): row = token id, columns A C G T; ambiguity codes spread their mass evenly."""
    comp = torch.zeros(len(CODES) + 1, 4)
    for code, i in _CODE_ID.items():
        for base in IUPAC[code]:
            comp[i, "ACGT".index(base)] = 1.0 / len(IUPAC[code])
    return comp


def reverse_complement_ids(ids: np.ndarray) -> np.ndarray:
    """Reverse complement of a token-id array."""
    return _COMPLEMENT_ID[ids[::-1]]


@featurizer_register
class DnaFeaturizer(Featurizer):
    """Nucleotide strings -> base ids (+ k-mer ids); reverse complement when augmenting."""

    modality = "dna"

    def __init__(self, *, max_len: int = 1024, kmer: int = 1, conv_kernel: int = 9) -> None:
        super().__init__(max_len=max_len)
        if not 1 <= kmer <= 6:
            raise ValueError(f"kmer must be in 1..6, got {kmer}")
        self.kmer = kmer
        self.conv_kernel = conv_kernel

    def state(self) -> dict[str, Any]:
        return {"max_len": self.max_len, "kmer": self.kmer, "conv_kernel": self.conv_kernel}

    @property
    def supports_augmentation(self) -> bool:
        return True

    def parse(self, record: Any) -> np.ndarray:
        """Check one sequence with the DNA rules (`rules.check`) and return its base ids."""
        seq = rules.check(record, RuleOptions(max_len=self.max_len)).value
        return _LOOKUP[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]

    def _kmers(self, ids: np.ndarray) -> np.ndarray:
        k, L = self.kmer, len(ids)
        out = np.full(L, _KMER_SHORT, dtype=np.int64)
        if L < k:
            return out
        windows = np.lib.stride_tricks.sliding_window_view(ids, k)  # (L-k+1, k) token ids
        unambiguous = (windows <= 4).all(axis=1)
        digits = np.clip(windows - 1, 0, 3)  # A0 C1 G2 T3
        numbers = digits @ (4 ** np.arange(k - 1, -1, -1))
        out[: L - k + 1] = np.where(unambiguous, numbers + _KMER_OFFSET, _KMER_AMBIGUOUS)
        return out

    def encode(self, record: Any, *, rng: np.random.Generator | None = None) -> Example:
        ids = self.parse(record)
        if rng is not None and rng.random() < 0.5:
            ids = reverse_complement_ids(ids)
        example: Example = {"tokens": ids}
        if self.kmer > 1:
            example["kmers"] = self._kmers(ids)
        return example

    def length(self, example: Example) -> int:
        return len(example["tokens"])

    def token_labels(self, example: Example) -> list[str]:
        return [CODES[i - 1] for i in example["tokens"]]

    def collate(self, examples: Sequence[Example]) -> dict[str, Tensor]:
        tokens, _ = pad_1d([e["tokens"] for e in examples], 0, torch.long)
        batch = {"tokens": tokens}
        if self.kmer > 1:
            batch["extra"], _ = pad_1d([e["kmers"] for e in examples], 0, torch.long)
        return batch

    def stem(self, d_model: int, n_heads: int) -> nn.Module:
        return SequenceStem(
            len(CODES) + 1, d_model, self.max_len, conv_kernel=self.conv_kernel,
            composition=composition_matrix(),
            extra_vocab=(_KMER_OFFSET + 4**self.kmer) if self.kmer > 1 else 0,
        )
