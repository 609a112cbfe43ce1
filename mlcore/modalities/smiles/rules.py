"""The SMILES record rules (torch-free; RDKit imported on first use): the only copy, used by
validation, the featurizer and prediction alike.

A record is a SMILES string (or, from an SDF file, a mol block) that RDKit parses and sanitizes;
its canonical form is RDKit's canonical isomeric SMILES (explicit hydrogens kept), which must split
into the atom-level tokens of Schwaller et al.'s regex (`SMILES_TOKEN_PATTERN` in the catalog) and
be at most `max_len` tokens long, counting `extra_tokens` (the [FP] token of the molecule tasks).

Speed: each molecule is parsed once (`MolFromSmiles` sanitizes, ~85 us for a drug-like molecule);
RDKit's error log is captured only to explain a failure, by re-parsing just the failing string, and
the token count of RDKit's output is computed without the regex (`smiles_token_count`).

Codes: `missing_value` (empty), `smiles_parse` / `molblock_parse` (RDKit cannot parse it),
`smiles_sanitize` (chemistry: valence, aromaticity), `no_atoms`, `smiles_token` (the tokenizer does
not know a character of the canonical SMILES), `too_long`.
"""

from __future__ import annotations

import re
from typing import Any

from mlcore.catalog import SMILES_TOKEN_PATTERN
from mlcore.modalities.common import Checked, RecordError, RuleOptions, Warn

# Schwaller et al.'s pattern (in the catalog: one pattern for every reader of SMILES tokens).
SMILES_REGEX = re.compile(SMILES_TOKEN_PATTERN)
_BRACKET = re.compile(r"\[[^\]]+]")
_MISTAKE_AT = re.compile(r"check for mistakes around position (\d+)")
_PARAMS: list[Any] = []


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
        raise RecordError(f"invalid SMILES character {smiles[pos]!r} at position {pos + 1}", "smiles_parse",
                          value=smiles)
    return tokens


def smiles_token_count(smiles: str) -> int | None:
    """The number of tokens the SMILES tokenizer makes of an RDKit-written SMILES, or None when it
    cannot tokenize it, without running the tokenizer's regex (which costs ~10% of validation).

    RDKit writes bracket atoms, two-letter organic atoms (Cl, Br) and two-digit ring closures (%nn)
    as multi-character tokens and everything else one character per token; a three-digit closure
    `%(nnn)` is the one thing it writes that the tokenizer lacks. A test checks this count against
    `len(SMILES_REGEX.findall(...))` on many molecules.
    """
    if "%(" in smiles:
        return None
    n_brackets = 0
    if "[" in smiles:
        n_brackets = len(_BRACKET.findall(smiles))
        smiles = _BRACKET.sub("", smiles)
        if "[" in smiles or "]" in smiles:
            return None
    return (n_brackets + len(smiles) - smiles.count("Cl") - smiles.count("Br") - 2 * smiles.count("%"))


def silence() -> None:
    """Turn RDKit's stderr log off for this process (validation's worker processes: a rejected record
    is explained by `_diagnose`, which captures the log itself); `quiet=False` then skips the
    per-record `BlockLogs`."""
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")


def _params() -> Any:
    if not _PARAMS:
        from rdkit import Chem

        params = Chem.SmilesParserParams()
        # Keep explicit hydrogens (RDKit's sanitization keeps them too; skipping RemoveHs saves ~8% of
        # the parse): the canonical SMILES validation stores is the one training computes.
        params.removeHs = False
        _PARAMS.append(params)
    return _PARAMS[0]


def _clean_rdkit_log(text: str) -> str:
    """RDKit log lines without timestamps and without the echoed input and its ~~~^ caret line."""
    lines = []
    for line in text.splitlines():
        line = re.sub(r"^\[\d\d:\d\d:\d\d\] ", "", line).strip()
        if not line or set(line) <= {"~", "^", " "}:
            continue
        lines.append(line)
    # The parser echoes the input between "check for mistakes..." and the caret; drop the echo.
    out = [ln for k, ln in enumerate(lines) if not (k > 0 and "check for mistakes" in lines[k - 1])]
    return "; ".join(dict.fromkeys(out))  # RDKit repeats some messages (kekulization)


def _diagnose(text: str, molblock: bool) -> RecordError:
    """Why RDKit rejected `text`: a character the tokenizer does not know (SMILES), a syntax error
    with its position, RDKit's own parse message, or the sanitization exception's text. Re-parses
    without sanitization under a log capture; runs only for rejected records."""
    from rdkit import Chem, rdBase

    if not molblock:
        try:
            smiles_tokenize(text)
        except RecordError as exc:
            return exc
    with rdBase.CaptureErrorLog() as capture:
        mol = Chem.MolFromMolBlock(text, sanitize=False) if molblock else Chem.MolFromSmiles(text, sanitize=False)
    log = _clean_rdkit_log(capture.messages)
    if mol is None:
        code = "molblock_parse" if molblock else "smiles_parse"
        where = _MISTAKE_AT.search(log)
        if where and not molblock:
            # RDKit says it three times ("... while parsing", "check for mistakes", "Failed parsing"): once.
            what = log.split(";")[0].removeprefix("SMILES Parse Error:").split(" while parsing")[0].strip()
            return RecordError(f"unparsable SMILES {text!r}: {what or 'syntax error'} around position "
                               f"{where.group(1)}", code, value=text)
        return RecordError(log or "RDKit could not parse it", code, value=text)
    try:
        Chem.SanitizeMol(mol)
    except Exception as exc:  # RDKit raises several sanitization exception types
        return RecordError(str(exc).strip() or type(exc).__name__, "smiles_sanitize", value=text)
    return RecordError(log or "RDKit rejected the molecule", "smiles_parse", value=text)


def smiles_parse(text: str, *, molblock: bool = False, quiet: bool = True) -> Any:
    """An RDKit Mol for a valid SMILES (or mol block); RecordError with the reason otherwise."""
    from rdkit import Chem, rdBase

    if not text or not text.strip():
        raise RecordError("empty molecule" if molblock else "empty SMILES", "missing_value", value=text)
    if quiet:
        with rdBase.BlockLogs():  # RDKit would print to stderr; the error is reported through RecordError
            mol = Chem.MolFromMolBlock(text, sanitize=True, removeHs=False) if molblock else \
                Chem.MolFromSmiles(text, _params())
    else:
        mol = Chem.MolFromMolBlock(text, sanitize=True, removeHs=False) if molblock else \
            Chem.MolFromSmiles(text, _params())
    if mol is None:
        raise _diagnose(text, molblock)
    if mol.GetNumAtoms() == 0:
        raise RecordError("molecule without atoms", "no_atoms", value=text)
    return mol


def check(record: Any, options: RuleOptions = RuleOptions(), warn: Warn | None = None) -> Checked:
    """One SMILES (or mol block) -> its canonical SMILES, token count and RDKit Mol (`parsed`)."""
    from rdkit import Chem

    if record is not None and not isinstance(record, str):
        raise RecordError(f"expected a SMILES string, got {type(record).__name__}", "invalid_type", value=record)
    text = (record or "") if options.molblock else (record or "").strip()
    mol = smiles_parse(text, molblock=options.molblock, quiet=options.quiet)
    smiles = Chem.MolToSmiles(mol)
    n_tokens = smiles_token_count(smiles)
    if n_tokens is None:
        raise RecordError(f"canonical SMILES {smiles!r} has characters the SMILES tokenizer does not know",
                          "smiles_token", value=record)
    if n_tokens + options.extra_tokens > options.max_len:
        extra = " plus the [FP] token" if options.extra_tokens else ""
        raise RecordError(f"SMILES of {n_tokens} tokens{extra} is longer than max_len {options.max_len}", "too_long",
                          value=record)
    return Checked(smiles, n_tokens, mol)


def smiles_canonical(smiles: str) -> str:
    """RDKit's canonical isomeric SMILES of a valid input (RecordError otherwise)."""
    from rdkit import Chem

    return Chem.MolToSmiles(smiles_parse(smiles))
