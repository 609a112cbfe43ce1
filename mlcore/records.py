"""Records sent for prediction, checked without torch: the web process imports this module.

`records_parse(items, modality=...)` checks the *shape* of records sent as JSON (a string for
sequence modalities, an object of columns for tabular data, an object of per-element lists for
particles and light curves) and normalizes them into `Inputs`; `InvalidRecords` names every bad one
(up to `MAX_PROBLEMS`). The values themselves (alphabet, numbers, SMILES) are checked later, worker
side, by the model's featurizer (`mlcore.predict.model_predict`), which reports through the same
`InvalidRecords`.

Imports nothing but the catalog: the import-linter contract `web-no-torch` (.importlinter) keeps it so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlcore import catalog

MAX_PROBLEMS = 20  # bad records named in one error; the count covers all of them
MAX_ID_CHARS = 200


@dataclass
class Inputs:
    """Records ready for a featurizer, with how to name each one in messages and output."""

    values: list[Any]
    ids: list[str]
    positions: list[int]  # 0-based index in the request (JSON), or the file line / Parquet row
    unit: str  # "index" (JSON records), "line" or "row" (files)
    source: str = "request"

    def __len__(self) -> int:
        return len(self.values)

    def name(self, i: int) -> str:
        """How record ``i`` is named in messages: ``record 3 (id 'a7')`` or ``line 17 (id 'a7')``."""
        where = f"record {self.positions[i]}" if self.unit == "index" else f"{self.unit} {self.positions[i]}"
        return f"{where} (id {self.ids[i]!r})"


class InvalidRecords(ValueError):
    """Some records cannot be predicted. ``problems`` name the first `MAX_PROBLEMS` of ``count``:
    ``{"index" | "line" | "row": n, "id": ..., "message": ...}``."""

    def __init__(self, problems: list[dict[str, Any]], count: int, total: int, unit: str) -> None:
        self.problems, self.count, self.total, self.unit = problems, count, total, unit
        first = problems[0]
        where = f"record {first[unit]}" if unit == "index" else f"{unit} {first[unit]}"
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(f"{count} of {total} records cannot be predicted; {where} (id {first['id']!r}): "
                         f"{first['message']}{more}")


class Problems:
    """Collects bad records (the first `MAX_PROBLEMS` named, all counted) and raises them together."""

    def __init__(self, unit: str) -> None:
        self.unit, self.items, self.count = unit, [], 0

    def add(self, position: int, record_id: Any, message: str) -> None:
        self.count += 1
        if len(self.items) < MAX_PROBLEMS:
            self.items.append({self.unit: position, "id": record_id, "message": message})

    def raise_if_any(self, total: int) -> None:
        if self.count:
            raise InvalidRecords(self.items, self.count, total, self.unit)


def _shape_error(value: Any, input_format: str, modality: str) -> str | None:
    """Why ``value`` cannot be a record of this input format (None when the shape is right)."""
    if input_format == "sequence":
        if not isinstance(value, str):
            return f"expected a {modality} string, got {_json_type(value)}"
        if not value.strip():
            return "empty input"
        return None
    if not isinstance(value, dict) or not value:
        return f"expected an object of {'feature columns' if input_format == 'table' else 'per-element lists'}, " \
               f"got {_json_type(value)}" + (" (empty)" if isinstance(value, dict) else "")
    for key, column in value.items():
        if input_format == "table":
            if isinstance(column, (dict, list)):
                return f"feature {key!r}: expected a number or a string, got {_json_type(column)}"
        elif not isinstance(column, list):
            return f"field {key!r}: expected a list with one value per element, got {_json_type(column)}"
        elif any(isinstance(v, (dict, list)) for v in column):
            return f"field {key!r}: expected numbers (or strings for band), got nested values"
    if input_format == "long":
        spec = catalog.MODALITIES[modality]
        missing = [f for f in spec.element_fields if f not in value]
        if missing:
            return f"missing field(s) {', '.join(missing)} (a {modality} record needs {', '.join(spec.element_fields)})"
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


def records_parse(items: Sequence[Any], *, modality: str) -> Inputs:
    """Check the shape of JSON records and normalize them; `InvalidRecords` names every bad one.

    A record is ``{"id": "a7", "input": ...}`` (``id`` optional, default: its 0-based index) or,
    for sequence modalities, the bare string. The values themselves (alphabet, numbers, SMILES) are
    checked by the model's featurizer in `model_predict`.
    """
    input_format = catalog.MODALITIES[modality].input_format
    problems = Problems("index")
    values, ids = [], []
    for i, item in enumerate(items):
        record_id: Any = str(i)
        if isinstance(item, dict) and "input" in item:
            extra = sorted(set(item) - {"id", "input"})
            raw_id = item.get("id", record_id)
            if raw_id is None or isinstance(raw_id, (dict, list, bool)) or len(str(raw_id)) > MAX_ID_CHARS:
                problems.add(i, None, f"id must be a string or a number of at most {MAX_ID_CHARS} characters")
                continue
            record_id, value = str(raw_id), item["input"]
            if extra:
                problems.add(i, record_id, f"unknown key(s) {', '.join(map(repr, extra))}: a record is "
                                           "{\"id\": ..., \"input\": ...}")
                continue
        elif isinstance(item, dict):
            problems.add(i, None, "an object record needs an \"input\" key: {\"id\": ..., \"input\": ...}")
            continue
        else:
            value = item
        reason = _shape_error(value, input_format, modality)
        if reason:
            problems.add(i, record_id, reason)
            continue
        values.append(value.strip() if isinstance(value, str) else value)
        ids.append(record_id)
    problems.raise_if_any(len(items))
    if not values:
        raise InvalidRecords([{"index": 0, "id": None, "message": "no records"}], 1, 0, "index")
    return Inputs(values=values, ids=ids, positions=list(range(len(values))), unit="index")
