"""Molecules as SMILES: RDKit validation and canonicalization, the atom-level regex tokenizer of
Schwaller et al. (Molecular Transformer, 2019), randomized-SMILES augmentation, and a token -> atom
index map.

The map: RDKit numbers atoms in the order they are written in a SMILES string, and the regex yields
exactly one token per atom (bracket atoms are one token), so the k-th atom token is atom k of
`Chem.MolFromSmiles(canonical_smiles)`. A dashboard can colour atoms by token attention exactly.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mlcore.catalog import SMILES_TOKEN_PATTERN
from mlcore.modalities.base import Example, Featurizer, RecordError, featurizer_register, pad_1d
from mlcore.modalities.sequence import SequenceStem

# Schwaller et al.'s pattern (in the catalog, which validation reads without importing torch).
SMILES_REGEX = re.compile(SMILES_TOKEN_PATTERN)
_ATOM_TOKEN = re.compile(r"^(\[[^\]]+]|Br|Cl|B|C|N|O|S|P|F|I|b|c|n|o|s|p|\*)$")
# Tokens every vocabulary carries, so randomized SMILES (other ring-closure digits, other bond and
# branch placements) rarely meet an unknown token at training time.
_BASE_TOKENS = tuple("()=#-+\\/.:123456789") + ("%10", "%11", "%12")
PAD, UNK = 0, 1


def smiles_tokenize(smiles: str) -> list[str]:
    """Split a SMILES string into atom-level tokens; RecordError if some characters match no token."""
    tokens = SMILES_REGEX.findall(smiles)
    if "".join(tokens) != smiles:
        pos = 0
        for tok in tokens:  # find the first character the tokens skipped
            if smiles.startswith(tok, pos):
                pos += len(tok)
            else:
                break
        raise RecordError(f"invalid SMILES character {smiles[pos]!r} at position {pos + 1}")
    return tokens


def smiles_atom_index(tokens: Sequence[str]) -> np.ndarray:
    """Per token: the RDKit atom index it denotes, or -1 for bonds, branches and ring closures."""
    out = np.full(len(tokens), -1, dtype=np.int64)
    k = 0
    for i, tok in enumerate(tokens):
        if _ATOM_TOKEN.match(tok):
            out[i] = k
            k += 1
    return out


def smiles_parse(smiles: str) -> Any:
    """An RDKit Mol for a valid SMILES; RecordError with the reason (RDKit's own for chemistry)."""
    from rdkit import Chem, rdBase

    if not smiles:
        raise RecordError("empty SMILES")
    smiles_tokenize(smiles)  # names an impossible character precisely before RDKit's generic error
    with rdBase.BlockLogs():  # RDKit would print to stderr; the error is reported through RecordError
        mol = Chem.MolFromSmiles(smiles, sanitize=False)
        if mol is None:
            raise RecordError(f"unparsable SMILES {smiles!r} (syntax: unbalanced branches or rings?)")
        try:
            Chem.SanitizeMol(mol)
        except Exception as exc:  # RDKit raises several sanitization exception types
            raise RecordError(f"invalid molecule {smiles!r}: {exc}") from None
    if mol.GetNumAtoms() == 0:
        raise RecordError("SMILES without atoms")
    return mol


def smiles_canonical(smiles: str) -> str:
    """RDKit's canonical isomeric SMILES of a valid input."""
    from rdkit import Chem

    return Chem.MolToSmiles(smiles_parse(smiles))


def smiles_randomized(mol: Any, rng: np.random.Generator) -> str:
    """A random valid SMILES of `mol`: atoms renumbered by `rng`, written without canonical order.

    Drawing the permutation from our own generator (not RDKit's doRandom) keeps augmentation
    reproducible from the training seed.
    """
    from rdkit import Chem

    order = rng.permutation(mol.GetNumAtoms()).tolist()
    return Chem.MolToSmiles(Chem.RenumberAtoms(mol, order), canonical=False)


@featurizer_register
class SmilesFeaturizer(Featurizer):
    """SMILES -> canonical SMILES -> token ids (+ atom index per token)."""

    modality = "smiles"

    def __init__(self, *, max_len: int = 256, conv_kernel: int = 3, min_count: int = 1) -> None:
        super().__init__(max_len=max_len)
        self.conv_kernel = conv_kernel
        self.min_count = min_count
        self.vocab: list[str] = ["[PAD]", "[UNK]", *_BASE_TOKENS]

    @property
    def supports_augmentation(self) -> bool:
        return True

    def fit(self, records: Iterable[Any]) -> SmilesFeaturizer:
        counts: Counter[str] = Counter()
        for record in records:
            try:
                counts.update(smiles_tokenize(smiles_canonical(str(record))))
            except RecordError:
                continue  # invalid records are reported by encode(); they add nothing to the vocab
        known = set(self.vocab)
        self.vocab += sorted(t for t, n in counts.items() if n >= self.min_count and t not in known)
        return self

    def state(self) -> dict[str, Any]:
        return {"max_len": self.max_len, "conv_kernel": self.conv_kernel, "min_count": self.min_count,
                "vocab": self.vocab}

    @property
    def _ids(self) -> dict[str, int]:
        ids = self.__dict__.get("_id_cache")
        if ids is None or len(ids) != len(self.vocab):
            ids = {t: i for i, t in enumerate(self.vocab)}
            self.__dict__["_id_cache"] = ids
        return ids

    def encode(self, record: Any, *, rng: np.random.Generator | None = None) -> Example:
        if not isinstance(record, str):
            raise RecordError(f"expected a SMILES string, got {type(record).__name__}")
        mol = smiles_parse(record.strip())
        from rdkit import Chem

        canonical = Chem.MolToSmiles(mol)
        text = smiles_randomized(mol, rng) if rng is not None and rng.random() < 0.5 else canonical
        tokens = smiles_tokenize(text)
        if len(tokens) > self.max_len:
            raise RecordError(f"SMILES of {len(tokens)} tokens is longer than max_len {self.max_len}")
        ids = self._ids
        return {
            "tokens": np.array([ids.get(t, UNK) for t in tokens], dtype=np.int64),
            "atom_index": smiles_atom_index(tokens),
            "text": tokens,
            "smiles": text,
        }

    def length(self, example: Example) -> int:
        return len(example["tokens"])

    def token_labels(self, example: Example) -> list[str]:
        return list(example["text"])

    def collate(self, examples: Sequence[Example]) -> dict[str, Tensor]:
        tokens, _ = pad_1d([e["tokens"] for e in examples], PAD, torch.long)
        return {"tokens": tokens}

    def stem(self, d_model: int, n_heads: int) -> nn.Module:
        return SequenceStem(len(self.vocab), d_model, self.max_len, conv_kernel=self.conv_kernel)
