"""The DNA / RNA record rules (torch-free): the only copy, used by validation, the featurizer and
prediction alike.

A record is a nucleotide string: stripped, upper-cased, over A C G T N and U (RNA, read as T by the
featurizer) plus the IUPAC ambiguity codes R Y S W K M B D H V, which are accepted with a warning
(`iupac="warn"`, training's rule) or rejected (`iupac="reject"`). The canonical form is the
upper-case string.
"""

from __future__ import annotations

from typing import Any

from mlcore import catalog
from mlcore.modalities.common import Checked, RecordError, RuleOptions, Warn, sequence_check

CORE = "ACGTNU"  # U: RNA, read as T by the DNA featurizer
IUPAC_CODES = "".join(c for c in catalog.MODALITIES["dna"].alphabet if c not in CORE)  # RYSWKMBDHV
_ALLOWED = (CORE + IUPAC_CODES).encode()
_CORE = CORE.encode()


def check(record: Any, options: RuleOptions = RuleOptions(), warn: Warn | None = None) -> Checked:
    """One nucleotide string -> its canonical upper-case form; RecordError with the reason otherwise."""
    seq = sequence_check(record, what="a nucleotide", letter="nucleotide", unit="bases", allowed=_ALLOWED,
                         options=options)
    ambiguous = seq.encode("ascii").translate(None, _CORE)
    if ambiguous:
        message = f"IUPAC ambiguity code(s) {''.join(sorted(set(ambiguous.decode())))}"
        if options.iupac == "reject":
            raise RecordError(message + " (rejected: iupac=reject)", "ambiguous_base", value=record)
        if warn is not None:
            warn("ambiguous_base", message)
    return Checked(seq, len(seq))
