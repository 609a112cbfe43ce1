"""What every modality package shares without torch: the record error, the options and result of a
record check, and the view descriptor the dashboards draw with.

Each modality is a package `mlcore/modalities/<key>/` (the key is the catalog's `Modality.key`):
- `rules.py` (torch-free): `check(record, options, warn=None) -> Checked`, the only copy of the
  modality's record rules: parse, check and canonicalize one record. Validation (`mlcore.validation`),
  the featurizer and prediction all call it, so one bad record gets one message (and one `code`)
  wherever it is met;
- `view.py` (torch-free): `VIEW`, a `ModalityView`: the length unit and how a record is drawn;
- `featurizer.py` (torch): the featurizer, its stem and collate.

Nothing here imports torch or numpy: the web process imports the views through this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlcore.catalog import DEFAULT_SENTINELS

Example = dict[str, Any]
# warn(code, message): a record that is accepted but worth a note (an IUPAC ambiguity code, unsorted times).
Warn = Callable[[str, str], None]


class RecordError(ValueError):
    """One record is invalid; the message is the reason, without file or line (the reader adds them).

    `code` is the stable, machine-readable reason the validation report counts; `field` the record's
    field (element field or tabular column) it concerns, `index` the 0-based element (particle,
    observation) within the record and `value` the offending value, when known.
    """

    def __init__(self, message: str, code: str = "invalid", *, field: str | None = None, index: int | None = None,
                 value: Any = None) -> None:
        super().__init__(message)
        self.code, self.field, self.index, self.value = code, field, index, value


@dataclass(frozen=True)
class RuleOptions:
    """What a record check may be told beside the record; the defaults are what training applies."""

    max_len: int = 512  # longest record (tokens, bases, residues, elements)
    min_len: int = 1  # shortest sequence (DNA, protein)
    min_elements: int | None = None  # sets / series: fewest elements (None: the modality's own minimum)
    iupac: str = "warn"  # DNA ambiguity codes other than N: "warn" (accepted, noted) or "reject"
    time_order: str = "sort"  # light curves: "sort" unordered times (noted) or "reject" them
    sentinels: tuple[float, ...] = DEFAULT_SENTINELS  # tabular: numeric values meaning "missing"
    numeric: tuple[str, ...] | frozenset[str] = ()  # tabular: the columns that must hold numbers
    extra_tokens: int = 0  # SMILES: tokens added after the record's own (the [FP] token)
    molblock: bool = False  # SMILES: the record is an SDF mol block, not a SMILES string
    quiet: bool = True  # SMILES: keep RDKit's log off stderr (validation silences it once per process)


@dataclass
class Checked:
    """A valid record: its canonical `value` (upper-case sequence, canonical SMILES, time-sorted lists,
    parsed cells), its `length` in the modality's unit, and `parsed` (what the featurizer builds on:
    the RDKit Mol, float arrays per field; None when the canonical value is all it needs)."""

    value: Any
    length: int
    parsed: Any = None


@dataclass(frozen=True)
class ModalityView:
    """How the dashboards show a modality's records, so that they never test modality keys.

    `length_unit` is the unit of a record's length in the validation report (`stats.length.unit`),
    `length_title` how axis titles name it. `drawing` is how one record's attention is drawn:
    "molecule" (RDKit drawing, atoms coloured), "sequence" (weights along the sequence), "particles"
    (the eta-phi plane) or "features" (ranked per feature). `motif_window` is the window length of
    the candidate motifs listed under a sequence drawing (None: no motifs). `example_structures`:
    the dataset explorer draws a grid of example structures (molecules).
    """

    modality: str
    length_unit: str
    length_title: str
    drawing: str
    motif_window: int | None = None
    example_structures: bool = False


def text_of(value: Any) -> str:
    """A cell as stripped text ("" for a missing one)."""
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else str(value).strip()


def sequence_check(record: Any, *, what: str, letter: str, unit: str, allowed: bytes, options: RuleOptions,
                   stop: bool = False) -> str:
    """The rules DNA and protein share: a string, stripped and upper-cased (a trailing stop `*`
    dropped when `stop`), not empty, every letter in `allowed`, `min_len` to `max_len` letters long.
    Returns the canonical sequence; RecordError(code "invalid_type", "empty", "invalid_character",
    "too_short" or "too_long") otherwise."""
    if not isinstance(record, str):
        raise RecordError(f"expected {what} string, got {type(record).__name__}", "invalid_type", value=record)
    seq = record.strip()
    if stop and seq.endswith("*"):  # FASTA translations often end with a stop symbol
        seq = seq[:-1]
    if not seq:
        raise RecordError("empty sequence", "empty", value=record)
    ascii_only = seq.isascii()  # upper() of a non-ASCII letter may change the length ("ß" -> "SS")
    if ascii_only:
        seq = seq.upper()
    # bytes.translate(None, delete) strips every allowed letter in C; whatever remains is a problem.
    if not ascii_only or seq.encode("ascii").translate(None, allowed):
        pos = next(k for k, ch in enumerate(seq) if not ch.isascii() or ord(ch.upper()) not in allowed)
        raise RecordError(f"invalid {letter} {seq[pos].upper() if seq[pos].isascii() else seq[pos]!r} "
                          f"at position {pos + 1}", "invalid_character", value=record)
    if len(seq) < options.min_len:
        raise RecordError(f"sequence of {len(seq)} {unit} is shorter than {options.min_len}", "too_short", value=record)
    if len(seq) > options.max_len:
        raise RecordError(f"sequence of {len(seq)} {unit} is longer than max_len {options.max_len}", "too_long",
                          value=record)
    return seq


def package_getattr(package: str) -> Callable[[str], Any]:
    """A modality package's module `__getattr__`: the names of its rules and featurizer modules stay
    importable from the package (`from mlcore.modalities.smiles import SmilesFeaturizer`), resolved on
    first use, so importing the package itself loads no torch."""
    from importlib import import_module

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in ("rules", "view", "featurizer"):
            return import_module(f"{package}.{name}")
        for part in ("rules", "featurizer"):  # the featurizer module (torch) only for a name rules lacks
            module = import_module(f"{package}.{part}")
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
