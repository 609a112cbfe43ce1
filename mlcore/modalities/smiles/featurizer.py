"""Molecules as SMILES: RDKit validation and canonicalization, the atom-level regex tokenizer of
Schwaller et al. (Molecular Transformer, 2019), randomized-SMILES augmentation, and a token -> atom
index map.

The map: RDKit numbers atoms in the order they are written in a SMILES string, and the regex yields
exactly one token per atom (bracket atoms are one token), so the k-th atom token is atom k of
`Chem.MolFromSmiles(canonical_smiles)`. A dashboard can colour atoms by token attention exactly.

The fingerprint token (featurizer option `fingerprint`, hyperparameter of the same name; the molecule
tasks turn it on with `descriptors`, mlcore/taskmodel.py): one extra token per molecule, after the SMILES
tokens, built from RDKit's Morgan count fingerprint (radius 2, folded to 2048 bits, counts as
log(1 + count)) through one `nn.Linear(2048, d_model)`, plus (option `descriptors`) ten RDKit
descriptors (`DESCRIPTORS`) standardized with the training records' mean and std through a second
Linear summed into the same token. It is computed from the parsed molecule, so a randomized SMILES of
a molecule carries exactly the fingerprint of its canonical SMILES. The fingerprint gives the encoder
the exact substructure evidence a fingerprint random forest uses, which a small SMILES Transformer
trained on ~1,000 molecules of a congeneric series does not learn from the string alone; the
descriptors carry whole-molecule properties (logP, polarity, size) that solubility depends on
(bench/README.md, "Quality", has the measurements). Option `fp_dropout` (default 0) drops fingerprint
entries while training.

Token order (what attention maps and token labels show): `[CLS]` (added by the encoder), the SMILES
tokens in the order written, then `[FP]`. In a padded batch the `[FP]` token comes after the padding
(masked positions in between), so a SMILES token keeps its position and atom k is still the k-th atom
token (`smiles_atom_index` is unchanged; the explanation maps `[FP]` to atom -1). The `[FP]` token
counts towards `max_len`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mlcore.modalities.base import Example, Featurizer, RecordError, featurizer_register, pad_1d
from mlcore.modalities.common import RuleOptions
from mlcore.modalities.sequence import SequenceStem
from mlcore.modalities.smiles import rules
from mlcore.modalities.smiles.rules import SMILES_REGEX, smiles_canonical, smiles_parse, smiles_tokenize

__all__ = ["DESCRIPTORS", "FP_LABEL", "SMILES_REGEX", "FingerprintStem", "SmilesFeaturizer", "molecule_descriptors",
           "morgan_counts", "smiles_atom_index", "smiles_canonical", "smiles_parse", "smiles_randomized",
           "smiles_tokenize"]

_ATOM_TOKEN = re.compile(r"^(\[[^\]]+]|Br|Cl|B|C|N|O|S|P|F|I|b|c|n|o|s|p|\*)$")
# Tokens every vocabulary carries, so randomized SMILES (other ring-closure digits, other bond and
# branch placements) rarely meet an unknown token at training time.
_BASE_TOKENS = tuple("()=#-+\\/.:123456789") + ("%10", "%11", "%12")
PAD, UNK = 0, 1
FP_LABEL = "[FP]"  # the token label of the fingerprint token
FP_RADIUS, FP_BITS = 2, 2048
# Descriptor name -> function of an RDKit Mol (imported lazily: RDKit is only needed at encode time).
DESCRIPTORS = ("MolWt", "MolLogP", "TPSA", "NumHDonors", "NumHAcceptors", "NumRotatableBonds",
               "RingCount", "NumAromaticRings", "FractionCSP3", "HeavyAtomCount")
_DESCRIPTOR_CLIP = 5.0  # standardized descriptors are clipped to +-5 std (outliers of a small training set)


def smiles_atom_index(tokens: Sequence[str]) -> np.ndarray:
    """Per token: the RDKit atom index it denotes, or -1 for bonds, branches and ring closures."""
    out = np.full(len(tokens), -1, dtype=np.int64)
    k = 0
    for i, tok in enumerate(tokens):
        if _ATOM_TOKEN.match(tok):
            out[i] = k
            k += 1
    return out


def smiles_randomized(mol: Any, rng: np.random.Generator) -> str:
    """A random valid SMILES of `mol`: atoms renumbered by `rng`, written without canonical order.

    Drawing the permutation from our own generator (not RDKit's doRandom) keeps augmentation
    reproducible from the training seed.
    """
    from rdkit import Chem

    order = rng.permutation(mol.GetNumAtoms()).tolist()
    return Chem.MolToSmiles(Chem.RenumberAtoms(mol, order), canonical=False)


def morgan_counts(mol: Any, *, radius: int = FP_RADIUS, n_bits: int = FP_BITS) -> tuple[np.ndarray, np.ndarray]:
    """RDKit's folded Morgan count fingerprint of `mol`, sparse: (bit indices int32, log(1 + count) float32)."""
    counts = _morgan_generator(radius, n_bits).GetCountFingerprintAsNumPy(mol)  # (n_bits,) uint32
    index = np.flatnonzero(counts).astype(np.int32)
    return index, np.log1p(counts[index].astype(np.float32))


_GENERATORS: dict[tuple[int, int], Any] = {}


def _morgan_generator(radius: int, n_bits: int) -> Any:
    # One generator per shape for the process (building one costs more than fingerprinting a molecule);
    # kept out of the featurizer so the featurizer stays picklable.
    key = (radius, n_bits)
    if key not in _GENERATORS:
        from rdkit.Chem import rdFingerprintGenerator

        _GENERATORS[key] = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    return _GENERATORS[key]


def molecule_descriptors(mol: Any, names: Sequence[str] = DESCRIPTORS) -> np.ndarray:
    """The named RDKit descriptors of `mol` (raw values, float64); KeyError for an unknown name."""
    from rdkit.Chem import Crippen, Descriptors, rdMolDescriptors

    functions = {
        "MolWt": Descriptors.MolWt, "MolLogP": Crippen.MolLogP, "TPSA": rdMolDescriptors.CalcTPSA,
        "NumHDonors": rdMolDescriptors.CalcNumHBD, "NumHAcceptors": rdMolDescriptors.CalcNumHBA,
        "NumRotatableBonds": rdMolDescriptors.CalcNumRotatableBonds, "RingCount": rdMolDescriptors.CalcNumRings,
        "NumAromaticRings": rdMolDescriptors.CalcNumAromaticRings,
        "FractionCSP3": rdMolDescriptors.CalcFractionCSP3, "HeavyAtomCount": lambda m: m.GetNumHeavyAtoms(),
    }
    return np.asarray([float(functions[name](mol)) for name in names], dtype=np.float64)


class FingerprintStem(SequenceStem):
    """The SMILES stem plus one molecule-level token after the sequence.

    tokens (B, T), fp (B, n_bits) [, desc (B, n_desc)] -> (x (B, T+1, D), pad_mask (B, T+1), None); the
    [FP] token is `LayerNorm(fp @ W + b [+ desc @ W_d])` and always real in the mask.
    """

    def __init__(self, vocab_size: int, d_model: int, max_len: int, *, conv_kernel: int, n_bits: int,
                 n_descriptors: int = 0, fp_dropout: float = 0.0) -> None:
        super().__init__(vocab_size, d_model, max_len, conv_kernel=conv_kernel)
        self.fp_dropout = fp_dropout
        self.fp = nn.Linear(n_bits, d_model)
        self.desc = nn.Linear(n_descriptors, d_model, bias=False) if n_descriptors else None
        self.fp_norm = nn.LayerNorm(d_model)

    def forward(self, tokens: Tensor, fp: Tensor | None = None, desc: Tensor | None = None,
                **_: Tensor) -> tuple[Tensor, Tensor, None]:
        x, pad_mask, _ = super().forward(tokens)  # (B, T, D), (B, T)
        if fp is None:
            raise ValueError("this model's stem needs the fingerprint input 'fp' (a featurizer with fingerprint=True)")
        # Dropping fingerprint entries while training is to the [FP] token what randomized SMILES are
        # to the sequence: the same molecule seen slightly differently each epoch.
        fp = fp.to(x.dtype)
        if self.fp_dropout:
            fp = nn.functional.dropout(fp, self.fp_dropout, self.training)
        token = self.fp(fp)  # (B, D)
        if self.desc is not None and desc is not None:
            token = token + self.desc(desc.to(x.dtype))
        token = self.fp_norm(token).unsqueeze(1)  # (B, 1, D)
        real = torch.ones_like(pad_mask[:, :1])  # (B, 1)
        return torch.cat([x, token], dim=1), torch.cat([pad_mask, real], dim=1), None


@featurizer_register
class SmilesFeaturizer(Featurizer):
    """SMILES -> canonical SMILES -> token ids (+ atom index per token, + fingerprint / descriptors).

    `fingerprint=True` adds the [FP] token (module docstring); `descriptors=True` (only with the
    fingerprint) adds the standardized RDKit descriptors `DESCRIPTORS` to it, their mean and std
    fitted on the training records.
    """

    modality = "smiles"

    def __init__(self, *, max_len: int = 256, conv_kernel: int = 3, min_count: int = 1,
                 fingerprint: bool = False, descriptors: bool = False, fp_dropout: float = 0.0) -> None:
        super().__init__(max_len=max_len)
        if descriptors and not fingerprint:
            raise ValueError("descriptors ride on the fingerprint token: set fingerprint=True too")
        self.conv_kernel = conv_kernel
        self.min_count = min_count
        self.vocab: list[str] = ["[PAD]", "[UNK]", *_BASE_TOKENS]
        self.fingerprint = fingerprint
        self.fp_dropout = fp_dropout
        self.fp_radius, self.fp_bits = FP_RADIUS, FP_BITS
        self.descriptors: list[str] = list(DESCRIPTORS) if descriptors else []
        self.desc_mean: list[float] = []
        self.desc_std: list[float] = []

    @property
    def supports_augmentation(self) -> bool:
        return True

    @property
    def n_extra(self) -> int:
        """Tokens after the SMILES tokens: 1 ([FP]) with the fingerprint, else 0."""
        return 1 if self.fingerprint else 0

    def fit(self, records: Iterable[Any]) -> SmilesFeaturizer:
        counts: Counter[str] = Counter()
        values = []
        options = RuleOptions(max_len=2**31)  # the vocabulary learns from every parsable molecule
        for record in records:
            try:
                checked = rules.check(str(record), options)
            except RecordError:
                continue  # invalid records are reported by encode(); they add nothing to the vocab
            counts.update(smiles_tokenize(checked.value))
            if self.descriptors:
                values.append(molecule_descriptors(checked.parsed, self.descriptors))
        known = set(self.vocab)
        self.vocab += sorted(t for t, n in counts.items() if n >= self.min_count and t not in known)
        if self.descriptors:
            table = np.asarray(values, dtype=np.float64).reshape(-1, len(self.descriptors))
            self.desc_mean = table.mean(axis=0).tolist() if len(table) else [0.0] * len(self.descriptors)
            std = table.std(axis=0) if len(table) else np.ones(len(self.descriptors))
            self.desc_std = np.where(std > 1e-12, std, 1.0).tolist()
        return self

    def state(self) -> dict[str, Any]:
        return {"max_len": self.max_len, "conv_kernel": self.conv_kernel, "min_count": self.min_count,
                "vocab": self.vocab, "fingerprint": self.fingerprint, "fp_radius": self.fp_radius,
                "fp_bits": self.fp_bits, "fp_dropout": self.fp_dropout, "descriptors": self.descriptors,
                "desc_mean": self.desc_mean, "desc_std": self.desc_std}

    @classmethod
    def _state_decode(cls, state: dict[str, Any]) -> dict[str, Any]:
        # A model saved before the fingerprint option has none of these keys: it had no [FP] token.
        defaults = {"fingerprint": False, "fp_radius": FP_RADIUS, "fp_bits": FP_BITS, "fp_dropout": 0.0,
                    "descriptors": [], "desc_mean": [], "desc_std": []}
        return {**defaults, **state}

    @property
    def _ids(self) -> dict[str, int]:
        ids = self.__dict__.get("_id_cache")
        if ids is None or len(ids) != len(self.vocab):
            ids = {t: i for i, t in enumerate(self.vocab)}
            self.__dict__["_id_cache"] = ids
        return ids

    def encode(self, record: Any, *, rng: np.random.Generator | None = None) -> Example:
        checked = rules.check(record, RuleOptions(max_len=self.max_len, extra_tokens=self.n_extra))
        mol, canonical = checked.parsed, checked.value
        text = smiles_randomized(mol, rng) if rng is not None and rng.random() < 0.5 else canonical
        tokens = smiles_tokenize(text)
        if len(tokens) + self.n_extra > self.max_len:  # a randomized SMILES may spell more ring closures
            text, tokens = canonical, smiles_tokenize(canonical)
        ids = self._ids
        example: Example = {
            "tokens": np.array([ids.get(t, UNK) for t in tokens], dtype=np.int64),
            "atom_index": smiles_atom_index(tokens),
            "text": tokens,
            "smiles": text,
        }
        if self.fingerprint:  # from the molecule, not the string: the same for every SMILES of it
            example["fp_index"], example["fp_value"] = morgan_counts(mol, radius=self.fp_radius, n_bits=self.fp_bits)
        if self.descriptors:
            z = (molecule_descriptors(mol, self.descriptors) - self.desc_mean) / np.asarray(self.desc_std)
            example["desc"] = np.clip(np.nan_to_num(z), -_DESCRIPTOR_CLIP, _DESCRIPTOR_CLIP).astype(np.float32)
        return example

    def length(self, example: Example) -> int:
        return len(example["tokens"]) + self.n_extra

    def token_labels(self, example: Example) -> list[str]:
        return [*example["text"], *([FP_LABEL] * self.n_extra)]

    def collate(self, examples: Sequence[Example]) -> dict[str, Tensor]:
        tokens, _ = pad_1d([e["tokens"] for e in examples], PAD, torch.long)
        batch = {"tokens": tokens}
        if self.fingerprint:
            fp = torch.zeros((len(examples), self.fp_bits), dtype=torch.float32)  # (B, n_bits)
            for i, e in enumerate(examples):
                fp[i, torch.as_tensor(e["fp_index"], dtype=torch.long)] = torch.as_tensor(e["fp_value"])
            batch["fp"] = fp
        if self.descriptors:
            batch["desc"] = torch.as_tensor(np.stack([e["desc"] for e in examples]))  # (B, n_desc)
        return batch

    def stem(self, d_model: int, n_heads: int) -> nn.Module:
        if not self.fingerprint:  # the plain stem: the same modules (and weight names) as before the option
            return SequenceStem(len(self.vocab), d_model, self.max_len, conv_kernel=self.conv_kernel)
        return FingerprintStem(len(self.vocab), d_model, self.max_len, conv_kernel=self.conv_kernel,
                               n_bits=self.fp_bits, n_descriptors=len(self.descriptors), fp_dropout=self.fp_dropout)
