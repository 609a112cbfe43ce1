"""CSV files that are safe to open in a spreadsheet (no formula injection).

Record ids, labels, SMILES and file names come from users. A cell starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return is taken for a formula by Excel, LibreOffice and Google Sheets
(``=HYPERLINK(...)``, ``=cmd|' /C calc'!A0``), so every CSV that mlcore, the workers or the portal
write goes through ``csv_writer``: such a text cell gets a leading ``'``, as OWASP recommends (the
spreadsheet shows the text; the apostrophe is visible to a program reading the file, which is the
accepted price). Numbers, and text that is just a number (``-1.5``, ``+3``, ``-2e-05``), are left
as they are: no spreadsheet evaluates them as a formula.

Dataset files themselves are not rewritten: they are inputs for training, not exports.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def csv_cell(value: Any) -> Any:
    """``value``, with a leading ``'`` when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


class SafeWriter:
    """``csv.writer`` whose rows are passed through ``csv_cell``."""

    def __init__(self, handle: Any, **kwargs: Any) -> None:
        self._writer = csv.writer(handle, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([csv_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(handle: Any, **kwargs: Any) -> SafeWriter:
    """A CSV writer on ``handle`` (``csv.writer``'s arguments) that neutralizes formula cells."""
    return SafeWriter(handle, **kwargs)
