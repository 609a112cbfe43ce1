"""Predictions for new records with a saved model: JSON records or a data file in, CSV or JSON out.

Two steps, so that each runs where it belongs:
- `mlcore.records.records_parse(items, modality=...)` checks the *shape* of records sent as JSON,
  without torch: the web process calls it and answers a bad request at once (re-exported here).
- `model_predict(loaded, inputs)` (worker side, torch) encodes every record with the model's own
  featurizer (the code that checked the training records raises the same reasons here), collects
  every bad record (up to `MAX_PROBLEMS` named) before predicting anything, then predicts in batches.

`inputs_from_file(loaded, path)` reads a data file with the model's column mapping, the way training
read its data, and names records by their file line. `predictions_write_csv` writes the result.

Nothing here imports Django; torch is imported only by the functions that run a model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcore.csvsafe import csv_writer
from mlcore.records import MAX_PROBLEMS, Inputs, InvalidRecords, Problems, records_parse

if TYPE_CHECKING:  # the web process imports this module for `records_parse`: no torch at import time
    from mlcore.modeldir import LoadedModel

__all__ = ["MAX_PROBLEMS", "Inputs", "InvalidRecords", "inputs_from_file", "model_predict", "predictions_json",
           "predictions_write_csv", "records_parse"]


def inputs_from_file(loaded: LoadedModel, path: str | Path) -> Inputs:
    """A data file's records, read with the model's column mapping (targets optional).

    An unreadable file (wrong format, a mapped column absent) raises `mlcore.data.DataError`.
    """
    table = loaded.read(path)
    return Inputs(values=[r.input for r in table.records], ids=[r.id for r in table.records],
                  positions=[r.line for r in table.records], unit=table.unit, source=table.source)


def model_predict(loaded: LoadedModel, inputs: Inputs, *, batch_size: int = 64,
                  device: str = "cpu", check: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """One prediction per record (`LoadedModel.decode`'s shape), or `InvalidRecords` before any is made.
    `check` runs before each batch; whatever it raises stops the prediction there (a lost lease)."""
    from mlcore.modalities import RecordError
    from mlcore.taskmodel import collate_fn
    from mlcore.trainer import predict as trainer_predict

    problems = Problems(inputs.unit)
    examples = []
    for i, value in enumerate(inputs.values):
        try:
            examples.append(loaded.featurizer.encode(value))
        except RecordError as exc:
            problems.add(inputs.positions[i], inputs.ids[i], str(exc))
    problems.raise_if_any(len(inputs))
    logits = trainer_predict(model=loaded.model, dataset=examples, collate=collate_fn(loaded.featurizer, loaded.kind),
                             length=loaded.featurizer.length, batch_size=batch_size, device=device,
                             check=check)
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
    kind, targets = loaded.targets.kind_obj, loaded.targets
    header = ["id", inputs.unit, *kind.prediction_header(targets)]
    with open(path, "w", newline="") as handle:
        writer = csv_writer(handle)
        writer.writerow(header)
        for i, pred in enumerate(predictions):
            writer.writerow([inputs.ids[i], inputs.positions[i], *kind.prediction_cells(targets, pred)])
    return len(predictions)


__all__ = ["MAX_PROBLEMS", "Inputs", "InvalidRecords", "inputs_from_file", "model_predict", "predictions_json",
           "predictions_write_csv", "records_parse"]
