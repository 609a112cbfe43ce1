"""One trained model as one self-describing directory, and loading it back for prediction.

Layout of a model directory:
- `config.json`: format version, task, modality, resolved target kind, encoder config, head size,
  column mapping, hyperparameters; everything needed to rebuild the modules before loading weights.
- `featurizer.json`: the fitted featurizer state (vocabulary, feature scaling, k-mer size, ...).
- `targets.json`: class names / per-token label alphabet / regression target mean and std.
- `model.safetensors`: the weights (safetensors: no pickle, so loading a shared model runs no code).
- `metrics.json`: the metrics of the run that produced it (when known).

`model_load(dir).predict(records)` validates every record exactly as training did (the same
featurizer code raises the same reasons) and returns one prediction per record.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import mlcore
from mlcore import catalog
from mlcore.columns import ColumnMapping
from mlcore.csvsafe import csv_writer
from mlcore.data import DataError, Table, TargetEncoder, load_records
from mlcore.model import EncoderConfig
from mlcore.modalities import Featurizer, RecordError, featurizer_from_state
from mlcore.taskmodel import TaskModel, collate_fn, model_build
from mlcore.trainer import predict as trainer_predict

FORMAT = "labformer-model"
FORMAT_VERSION = 1


def json_clean(value: Any) -> Any:
    """Recursively replace NaN / inf by None and numpy scalars by Python ones (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def json_write(path: Path, data: Any) -> None:
    """Write strict JSON (no NaN), pretty-printed."""
    path.write_text(json.dumps(json_clean(data), indent=2, allow_nan=False) + "\n")


def model_save(
    directory: str | Path,
    *,
    model: TaskModel,
    featurizer: Featurizer,
    targets: TargetEncoder,
    task: str,
    columns: ColumnMapping | dict[str, Any],
    hyperparameters: dict[str, Any] | None = None,
    preset: str | None = None,
    metrics: dict[str, Any] | None = None,
    state: dict[str, torch.Tensor] | None = None,
    compression: dict[str, Any] | None = None,
) -> Path:
    """Write `directory` (created if needed) describing and holding `model`; returns the path.

    An optimized model (mlcore.compress) passes the tensors to store (`state`: int8 rows, sparse
    masks, bf16 values) and its `compression` block, which `model_load` reads to rebuild it.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = catalog.task_get(task)
    mapping = ColumnMapping.from_dict(columns)
    is_table = catalog.MODALITIES[meta.modality].input_format == "table"
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mlcore_version": mlcore.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "task": task,
        "modality": meta.modality,
        "target_kind": targets.kind,
        "n_outputs": targets.n_outputs,
        "class_weights": getattr(model.head, "class_weights", None) is not None,
        "encoder": model.encoder.config.to_dict(),
        # ColumnMapping.to_dict(), plus the keys directories written before it had (read by older versions).
        "columns": {**mapping.to_dict(), "input_col": mapping.input_col(table=is_table),
                    "feature_cols": mapping.feature_cols(table=is_table)},
        "preset": preset,
        "hyperparameters": hyperparameters or {},
    }
    if compression is not None:
        config["compression"] = compression
    json_write(directory / "config.json", config)
    json_write(directory / "featurizer.json", featurizer.state())
    json_write(directory / "targets.json", targets.state())
    # safetensors refuses shared or non-contiguous storage; state_dict tensors are detached copies here.
    if state is None:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = directory / "model.safetensors"
    save_file(state, str(weights), metadata={"format": FORMAT, "task": task})
    # safetensors creates the file owner-only; the portal and other workers must read it like the JSON.
    weights.chmod(0o644)
    if metrics is not None:
        json_write(directory / "metrics.json", metrics)
    return directory


@dataclass
class LoadedModel:
    """A model directory loaded for inference."""

    directory: Path
    config: dict[str, Any]
    featurizer: Featurizer
    targets: TargetEncoder
    model: TaskModel

    @property
    def task(self) -> str:
        return self.config["task"]

    @property
    def kind(self) -> str:
        return self.targets.kind

    @property
    def columns(self) -> ColumnMapping:
        """The column mapping training read its data with (older directories' `columns` read too)."""
        return ColumnMapping.from_dict(self.config.get("columns"))

    def encode(self, inputs: Sequence[Any]) -> list[dict[str, Any]]:
        """Featurize raw inputs; RecordError (with the record's 0-based index prepended) on the first bad one."""
        examples = []
        for i, record in enumerate(inputs):
            try:
                examples.append(self.featurizer.encode(record))
            except RecordError as exc:
                raise RecordError(f"record {i}: {exc}") from None
        return examples

    def logits(self, inputs: Sequence[Any], *, batch_size: int = 64, device: str = "cpu") -> list[np.ndarray]:
        """Raw model outputs per record, in input order (per-token ones trimmed to the record)."""
        examples = self.encode(inputs)
        collate = collate_fn(self.featurizer, self.kind)
        return trainer_predict(model=self.model, dataset=examples, collate=collate,
                               length=self.featurizer.length, batch_size=batch_size, device=device)

    def predict(self, inputs: Sequence[Any], *, batch_size: int = 64, device: str = "cpu") -> list[dict[str, Any]]:
        """One prediction dict per record: `prediction` plus `probabilities` (class -> p) when classifying."""
        return self.decode(self.logits(inputs, batch_size=batch_size, device=device))

    def decode(self, logits: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        """Model outputs -> predictions in the user's terms (class names, target units, label strings)."""
        return self.targets.decode(logits)

    def read(self, path: str | Path) -> Table:
        """Read a data file with this model's column mapping (targets optional)."""
        cols, modality = self.columns, self.config["modality"]
        is_table = catalog.MODALITIES[modality].input_format == "table"
        return load_records(path, modality=modality, input_col=cols.input_col(table=is_table),
                            target_cols=list(cols.target_cols), id_col=cols.id_col,
                            require_target=False, feature_cols=cols.feature_cols(table=is_table))

    def predict_file(self, path: str | Path, out_csv: str | Path, *, batch_size: int = 64,
                     device: str = "cpu") -> int:
        """Predict every record of a data file into a CSV; DataError naming file and line on bad input.

        Columns: `id`, `line`, `prediction`, then `prob_<class>` per class (classification) or one
        column per target (multi-target regression). Returns the number of rows written.
        """
        table = self.read(path)
        examples = []
        for record in table.records:
            try:
                examples.append(self.featurizer.encode(record.input))
            except RecordError as exc:
                raise table.error(record, str(exc), table.input_col or None) from None
        collate = collate_fn(self.featurizer, self.kind)
        logits = trainer_predict(model=self.model, dataset=examples, collate=collate,
                                 length=self.featurizer.length, batch_size=batch_size, device=device)
        predictions = self.decode(logits)
        kind, targets = self.targets.kind_obj, self.targets
        header = ["id", "line", *kind.prediction_header(targets)]
        with open(out_csv, "w", newline="") as handle:
            writer = csv_writer(handle)
            writer.writerow(header)
            for record, pred in zip(table.records, predictions):
                writer.writerow([record.id, record.line, *kind.prediction_cells(targets, pred)])
        return len(predictions)


def model_load(directory: str | Path, *, device: str = "cpu") -> LoadedModel:
    """Load a model directory written by `model_save`; the model is in eval mode on `device`."""
    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{directory} is not a model directory (no config.json)")
    config = json.loads(config_path.read_text())
    if config.get("format") != FORMAT or config.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{directory}: unsupported model format {config.get('format')!r} "
                         f"version {config.get('format_version')!r}")
    featurizer = featurizer_from_state(config["modality"], json.loads((directory / "featurizer.json").read_text()))
    targets = TargetEncoder.from_state(json.loads((directory / "targets.json").read_text()))
    encoder_config = EncoderConfig.from_dict(config["encoder"])
    # A placeholder of the right size; the saved buffer overwrites it.
    class_weights = torch.ones(config["n_outputs"]) if config.get("class_weights") else None
    model = model_build(featurizer, encoder_config, targets.kind, config["n_outputs"], class_weights)
    if config.get("compression"):
        from mlcore.compress.storage import load_weights  # int8 / sparse / bf16 layouts live there

        model = load_weights(model, directory, config["compression"])
    else:
        model.load_state_dict(load_file(str(directory / "model.safetensors")))
    model.to(device).eval()
    return LoadedModel(directory=directory, config=config, featurizer=featurizer, targets=targets, model=model)


__all__ = ["DataError", "LoadedModel", "json_clean", "json_write", "model_load", "model_save"]
