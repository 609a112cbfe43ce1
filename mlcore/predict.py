"""Predictions for new records with a saved model: JSON records or a data file in, CSV or JSON out.

Two steps, so that each runs where it belongs:
- `records_parse(items, modality=...)` checks the *shape* of records sent as JSON (a string for
  sequence modalities, an object of columns for tabular data, an object of per-element lists for
  particles and light curves) without torch: the web process calls it and answers a bad request at
  once. A record is a bare value or ``{"id": ..., "input": ...}``.
- `model_predict(loaded, inputs)` (worker side, torch) encodes every record with the model's own
  featurizer (the code that checked the training records raises the same reasons here), collects
  every bad record (up to `MAX_PROBLEMS` named) before predicting anything, then predicts in batches.

`inputs_from_file(loaded, path)` reads a data file with the model's column mapping, the way training
read its data, and names records by their file line. `predictions_write_csv` writes the result.

Nothing here imports Django; torch is imported only by the functions that run a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcore import catalog
from mlcore.csvsafe import csv_writer

if TYPE_CHECKING:  # the web process imports this module for `records_parse`: no torch at import time
    from mlcore.modeldir import LoadedModel

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


class _Problems:
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
    problems = _Problems("index")
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


def inputs_from_file(loaded: LoadedModel, path: str | Path) -> Inputs:
    """A data file's records, read with the model's column mapping (targets optional).

    An unreadable file (wrong format, a mapped column absent) raises `mlcore.data.DataError`.
    """
    table = loaded.read(path)
    return Inputs(values=[r.input for r in table.records], ids=[r.id for r in table.records],
                  positions=[r.line for r in table.records], unit=table.unit, source=table.source)


def model_predict(loaded: LoadedModel, inputs: Inputs, *, batch_size: int = 64,
                  device: str = "cpu") -> list[dict[str, Any]]:
    """One prediction per record (`LoadedModel.decode`'s shape), or `InvalidRecords` before any is made."""
    from mlcore.modalities import RecordError
    from mlcore.tasks import collate_fn
    from mlcore.trainer import predict as trainer_predict

    problems = _Problems(inputs.unit)
    examples = []
    for i, value in enumerate(inputs.values):
        try:
            examples.append(loaded.featurizer.encode(value))
        except RecordError as exc:
            problems.add(inputs.positions[i], inputs.ids[i], str(exc))
    problems.raise_if_any(len(inputs))
    logits = trainer_predict(model=loaded.model, dataset=examples, collate=collate_fn(loaded.featurizer, loaded.kind),
                             length=loaded.featurizer.length, batch_size=batch_size, device=device)
    return loaded.decode(logits)


def predictions_json(loaded: LoadedModel, inputs: Inputs, predictions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per record: ``index`` (or ``line``), ``id``, ``prediction`` and ``probabilities`` (classification, else None)."""
    from mlcore.modeldir import json_clean

    return [json_clean({inputs.unit: inputs.positions[i], "id": inputs.ids[i], "prediction": p["prediction"],
                        "probabilities": p.get("probabilities")})
            for i, p in enumerate(predictions)]


def predictions_write_csv(loaded: LoadedModel, inputs: Inputs, predictions: Sequence[dict[str, Any]],
                          path: str | Path) -> int:
    """Write ``id``, ``index`` (or ``line``/``row``), ``prediction``, then ``prob_<class>`` per class
    (classification) or one column per target (multi-target regression). Returns the rows written."""
    kind, classes = loaded.kind, loaded.targets.classes
    header = ["id", inputs.unit, "prediction"]
    if kind in ("binary", "multiclass"):
        header += [f"prob_{c}" for c in classes]
    elif kind == "multi_regression":
        header = ["id", inputs.unit, *loaded.targets.target_cols]
    with open(path, "w", newline="") as handle:
        writer = csv_writer(handle)
        writer.writerow(header)
        for i, pred in enumerate(predictions):
            row: list[Any] = [inputs.ids[i], inputs.positions[i]]
            if kind in ("binary", "multiclass"):
                row += [pred["prediction"], *(f"{pred['probabilities'][c]:.6g}" for c in classes)]
            elif kind == "multi_regression":
                row += [f"{pred['prediction'][c]:.6g}" for c in loaded.targets.target_cols]
            elif kind == "regression":
                row.append(f"{pred['prediction']:.6g}")
            else:
                row.append(pred["prediction"])
            writer.writerow(row)
    return len(predictions)


__all__ = ["MAX_PROBLEMS", "Inputs", "InvalidRecords", "inputs_from_file", "model_predict", "predictions_json",
           "predictions_write_csv", "records_parse"]
