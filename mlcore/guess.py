"""Guess what a file holds from its first bytes: its columns, its first records and its modality.

Torch-free and Django-free on purpose: the portal calls it on an upload's first bytes (the upload form
asks it while the user is still choosing, and the server asks again on submit), and it applies the
modality conventions of `mlcore.catalog` (alphabets, the SMILES token pattern, the element fields of
sets and series), so a guess never disagrees with what validation will accept. A guess is a default
the user can change, never a decision: when the first records do not settle it, the answer is None.
"""

from __future__ import annotations

import csv
import io
import re
import zlib
from dataclasses import dataclass, field

from mlcore.catalog import MODALITIES, SMILES_TOKEN_PATTERN, number_or_missing

# How much of a file is looked at, and how many records.
HEAD_BYTES = 64 * 1024
HEAD_RECORDS = 50
_SMILES = re.compile(SMILES_TOKEN_PATTERN)
# Letters only proteins use (not nucleotides, not IUPAC ambiguity codes): one of them decides protein.
_PROTEIN_ONLY = set("EFILPQXZJO")
# Header names that say "this column is the sequence / molecule" whatever its content looks like.
_SEQUENCE_NAMES = {"sequence", "seq", "dna", "rna", "protein", "peptide", "aa_sequence"}
_SMILES_NAMES = {"smiles", "canonical_smiles", "mol", "molecule"}


@dataclass
class FileHead:
    """The first records of a file: ``format`` (csv, tsv, fasta, sdf, parquet, unknown), its columns
    and up to HEAD_RECORDS rows of text values (FASTA: id and sequence; SDF: nothing to read here)."""

    format: str
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class ModalityGuess:
    modality: str
    input_col: str | None  # the column the records are read from (None: tables, sets and series by fields)
    reason: str  # one sentence a person can check


def file_head_read(head: bytes, filename: str = "") -> FileHead:
    """Parse the first bytes of a file (gzip is opened; the last, cut line is dropped)."""
    name = filename.lower()
    if head[:2] == b"\x1f\x8b":
        # zlib, not gzip.decompress: a cut stream has no end marker, and only its start is wanted
        head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, HEAD_BYTES * 4)
        name = name.removesuffix(".gz")
    if head[:4] == b"PAR1" or name.endswith(".parquet"):
        return FileHead("parquet")
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = text.splitlines()
    if len(head) >= HEAD_BYTES and lines:
        lines = lines[:-1]  # cut mid-line
    if name.endswith(".sdf") or "M  END" in text:
        return FileHead("sdf")
    if text.startswith(">") or name.endswith((".fasta", ".fa", ".faa", ".fna")):
        rows: list[list[str]] = []
        for line in lines:
            if line.startswith(">"):
                rows.append([line[1:].split()[0] if line[1:].split() else "", ""])
            elif rows:
                rows[-1][1] += line.strip()
        return FileHead("fasta", ["id", "sequence"], rows[:HEAD_RECORDS])
    if not lines:
        return FileHead("unknown")
    tsv = name.endswith(".tsv") or ("\t" in lines[0] and "," not in lines[0])
    parsed = list(csv.reader(io.StringIO("\n".join(lines[: HEAD_RECORDS + 1])), delimiter="\t" if tsv else ","))
    columns = [c.strip() for c in parsed[0]] if parsed else []
    return FileHead("tsv" if tsv else "csv", columns, [r for r in parsed[1:] if r])


def _values(head: FileHead, column: str) -> list[str]:
    at = head.columns.index(column)
    return [row[at].strip() for row in head.rows if at < len(row) and row[at].strip()]


def _sequence_kind(values: list[str]) -> str | None:
    """dna or protein when every value is a word over that alphabet (case-insensitive), else None."""
    if not values:
        return None
    dna, protein = set(MODALITIES["dna"].alphabet) | {"U"}, set(MODALITIES["protein"].alphabet)
    letters = set("".join(values).upper())
    if not all(v.isalpha() for v in values):
        return None
    if letters <= dna:
        return "dna"
    if letters <= protein and letters & _PROTEIN_ONLY:
        return "protein"
    return None


def _looks_like_smiles(values: list[str]) -> bool:
    """Every value is made only of SMILES tokens and some carry what words never do (rings, bonds, branches)."""
    if not values:
        return False
    whole = all("".join(_SMILES.findall(v)) == v and any(ch.isalpha() for ch in v) for v in values)
    marked = sum(any(ch in v for ch in "()=#[]123456789") or any(ch in v for ch in "cno") for v in values)
    return whole and marked >= max(1, len(values) // 2)


def modality_guess(head: FileHead) -> ModalityGuess | None:
    """The modality the first records suggest, with the input column and why; None when unclear."""
    if head.format == "sdf":
        return ModalityGuess("smiles", None, "an SDF file holds molecules")
    if head.format == "fasta":
        kind = _sequence_kind(_values(head, "sequence"))
        return ModalityGuess(kind, "sequence", f"a FASTA file of {kind} sequences") if kind else None
    if not head.columns:
        return None
    folded = {c.lower(): c for c in head.columns}
    for spec in MODALITIES.values():  # sets and series: the element fields name them
        if spec.element_fields and all(f in folded for f in spec.element_fields):
            return ModalityGuess(spec.key, folded.get(spec.default_input_col),
                                 f"the columns {', '.join(spec.element_fields)} are {spec.label.lower()}")
    for column in head.columns:
        values, low = _values(head, column), column.lower()
        kind = _sequence_kind(values)
        if values and (low in _SMILES_NAMES or (kind is None and _looks_like_smiles(values))):
            return ModalityGuess("smiles", column, f"column {column!r} holds SMILES strings")
        if kind and (low in _SEQUENCE_NAMES or min(len(v) for v in values) >= 8):
            return ModalityGuess(kind, column, f"column {column!r} holds {kind} sequences")
    numeric = [c for c in head.columns if _values(head, c)
               and all(number_or_missing(v) is not None for v in _values(head, c))]
    if len(head.columns) >= 2 and len(numeric) >= max(1, len(head.columns) // 2):
        return ModalityGuess("tabular", None, f"{len(numeric)} of {len(head.columns)} columns are numbers")
    return None


def file_guess(head: bytes, filename: str = "") -> tuple[FileHead, ModalityGuess | None]:
    """Both at once, for callers holding a file's first bytes."""
    parsed = file_head_read(head, filename)
    return parsed, modality_guess(parsed)


__all__ = ["HEAD_BYTES", "FileHead", "ModalityGuess", "file_guess", "file_head_read", "modality_guess"]
