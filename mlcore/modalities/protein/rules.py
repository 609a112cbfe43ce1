"""The protein record rules (torch-free): the only copy, used by validation, the featurizer and
prediction alike.

A record is an amino-acid string: stripped, upper-cased, a trailing stop symbol `*` dropped, over the
20 standard residues plus X (unknown), B (Asx), Z (Glx), U (selenocysteine) and O (pyrrolysine). The
canonical form is the upper-case string without the stop symbol.
"""

from __future__ import annotations

from typing import Any

from mlcore import catalog
from mlcore.modalities.common import Checked, RuleOptions, Warn, sequence_check

ALPHABET = catalog.MODALITIES["protein"].alphabet
_ALLOWED = ALPHABET.encode()


def check(record: Any, options: RuleOptions = RuleOptions(), warn: Warn | None = None) -> Checked:
    """One amino-acid string -> its canonical upper-case form; RecordError with the reason otherwise."""
    seq = sequence_check(record, what="an amino-acid", letter="amino acid", unit="residues", allowed=_ALLOWED,
                         options=options, stop=True)
    return Checked(seq, len(seq))
