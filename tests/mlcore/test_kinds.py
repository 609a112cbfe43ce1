"""Target kinds as plug-ins: the registry matches the catalog, and every kind honours the contract the
rest of mlcore, the worker and the dashboards rely on (encode -> collate -> head loss -> metrics ->
decode -> prediction columns -> evaluation arrays -> distillation loss), with no torch at import."""

from __future__ import annotations

import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mlcore import catalog
from mlcore.data import TargetEncoder
from mlcore.kinds import Kind, kind_get, kind_register, kinds_all
from mlcore.metrics import compute_metrics

# Raw training targets per kind, as records carry them (one value, or one per target column), and the
# target columns. A new kind adds its sample here: the contract test below runs on every kind.
SAMPLES: dict[str, tuple[list[str], list]] = {
    "binary": (["label"], ["pos", "neg", "pos", "neg", "pos", "neg"]),
    "multiclass": (["label"], ["a", "b", "c", "a", "b", "c"]),
    "regression": (["y"], ["1.5", "2", "3.25", "-1", "0", "4"]),
    "multi_regression": (["a", "b"], [["1", "2"], ["3", ""], ["5", "8"], ["", "1"], ["2", "2"], ["0", "3"]]),
    "token_labels": (["labels"], ["HHE", "CCH", "EEC", "HCE", "CHE", "EHC"]),
    "multi_label": (["a", "b", "c"], [["1", "0", ""], ["0", "1", "1"], ["1", "", "0"], ["0", "0", "1"],
                                      ["1", "1", "0"], ["", "0", "1"]]),
}


def test_every_catalog_kind_has_exactly_one_registered_class() -> None:
    assert set(kinds_all()) == set(catalog.TARGET_KINDS)
    for key, kind in kinds_all().items():
        assert isinstance(kind, Kind) and kind.key == key and kind.meta is catalog.TARGET_KINDS[key]
    with pytest.raises(KeyError, match="unknown target kind 'nope'"):
        kind_get("nope")


def test_a_kind_the_catalog_does_not_describe_cannot_register() -> None:
    class Stray(Kind):
        key = "stray_kind"

    with pytest.raises(KeyError, match="stray_kind"):
        kind_register(Stray)
    assert "stray_kind" not in kinds_all()


@pytest.mark.parametrize("key", sorted(catalog.TARGET_KINDS))
def test_catalog_metadata_is_consistent(key: str) -> None:
    meta = catalog.TARGET_KINDS[key]
    assert meta.primary_metric in meta.metrics
    assert set(meta.evaluation_plots) <= set(catalog.EVALUATION_PLOTS) and meta.evaluation_plots
    assert meta.embedding_colour in ("class", "value", "token_class")
    assert meta.resolve_by in ("", "classes", "columns")
    assert all(k in catalog.TARGET_KINDS for k in meta.resolution)
    assert meta.default_target_col
    for m in meta.metrics:
        assert m in catalog.METRICS, m


def test_resolution_is_the_kinds_own() -> None:
    # A classification task resolves by the number of classes, a regression one by its columns.
    assert TargetEncoder.resolve_kind("binary", ["label"], ["a", "b", "c"]) == "multiclass"
    assert TargetEncoder.resolve_kind("multiclass", ["label"], ["a", "b"]) == "binary"
    assert TargetEncoder.resolve_kind("regression", ["a", "b"], [["1", "2"]]) == "multi_regression"
    assert catalog.kind_resolve("multi_regression", n_targets=1) == "regression"
    with pytest.raises(ValueError, match="at least 2 classes"):
        TargetEncoder.resolve_kind("binary", ["label"], ["a", "a"])


def test_every_kind_has_a_sample_here() -> None:
    assert set(SAMPLES) == set(catalog.TARGET_KINDS), "add the new kind's raw targets to SAMPLES"


def _batch_features(kind: Kind, n: int, length: int, d: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(n, length, d) if kind.token_level else torch.randn(n, d)


@pytest.mark.parametrize("key", sorted(SAMPLES))
def test_every_kind_honours_the_contract(key: str) -> None:
    cols, values = SAMPLES[key]
    kind = kind_get(key)
    assert TargetEncoder.resolve_kind(key, cols, values) == key
    enc = TargetEncoder.fit(key, cols, values)
    for v in values:
        enc.check(v)
    labels = [enc.encode(v) for v in values]
    n, d = len(values), 16
    k = enc.n_outputs
    assert k >= 1

    # Collation and the head's loss: finite, with a gradient.
    batch_labels = kind.collate_labels(labels)
    length = max(len(str(v)) for v in values) if kind.token_level else 1
    head = kind.head(d, k, 0.0)
    feats = _batch_features(kind, n, length, d).requires_grad_(True)
    out = head(feats, batch_labels)
    assert out.loss is not None and torch.isfinite(out.loss)
    out.loss.backward()
    assert feats.grad is not None

    # Distillation loss between two sets of logits: finite and 0 for identical logits.
    logits_t = out.logits.detach().float()
    assert torch.isfinite(kind.distill_loss(logits_t + 0.3, logits_t, batch_labels, 2.0))
    assert float(kind.distill_loss(logits_t, logits_t, batch_labels, 2.0)) == pytest.approx(0.0, abs=1e-5)

    # Metrics: every catalog metric of the kind, through the one entry point.
    per_example = [logits_t[i].numpy()[: len(str(values[i]))] if kind.token_level else logits_t[i].numpy()
                   for i in range(n)]
    y_true, y_score = enc.metric_inputs(per_example, labels)
    metrics = compute_metrics(key, y_true, y_score)
    assert set(kind.meta.metrics) <= set(metrics)
    assert all(isinstance(v, float) for v in metrics.values())

    # Decoding and prediction columns: one cell per header column, for every record.
    predictions = enc.decode(per_example)
    assert len(predictions) == n and all("prediction" in p for p in predictions)
    header = kind.prediction_header(enc)
    assert all(len(kind.prediction_cells(enc, p)) == len(header) for p in predictions)

    # Evaluation arrays: numpy arrays over the records, with the metadata a dashboard needs.
    arrays = kind.evaluation_arrays(enc, per_example, labels)
    assert "y_true" in arrays and all(isinstance(a, np.ndarray) for a in arrays.values())
    meta = kind.evaluation_meta(enc)
    assert meta.get("classes") or meta.get("target_cols")

    # The state survives a save / load.
    again = TargetEncoder.from_state(enc.state())
    assert again.decode(per_example) == predictions

    # True labels in the user's terms, one per record.
    records = [SimpleNamespace(target=v) for v in values]
    assert len(enc.true_labels(records, labels)) == n


def test_missing_targets_are_refused_unless_the_kind_masks_them() -> None:
    with pytest.raises(ValueError, match="missing"):
        TargetEncoder(kind="binary", target_cols=["label"]).check("")
    with pytest.raises(ValueError, match="missing"):
        TargetEncoder(kind="regression", target_cols=["y"]).check("")
    TargetEncoder(kind="multi_regression", target_cols=["a", "b"]).check(["", "1"])
    with pytest.raises(ValueError, match="every target"):
        TargetEncoder(kind="multi_regression", target_cols=["a", "b"]).check(["", ""])


def test_kinds_validation_and_prediction_files_load_no_torch() -> None:
    code = ("import sys, mlcore.kinds, mlcore.validation, mlcore.metrics; mlcore.kinds.kinds_all(); "
            "print(sorted(m for m in ('torch', 'django') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_token_level_metric_ignores_unlabelled_positions() -> None:
    enc = TargetEncoder.fit("token_labels", ["labels"], ["AB"])
    labels = [np.array([0, -100])]
    logits = [np.array([[2.0, 0.0], [0.0, 5.0]])]
    assert compute_metrics("token_labels", *enc.metric_inputs(logits, labels))["token_accuracy"] == 1.0
    assert not math.isnan(compute_metrics("binary", [0, 1], [[1.0, 0.0], [0.0, 1.0]])["roc_auc"])


def test_several_target_columns_only_for_kinds_that_take_them(tmp_path) -> None:
    from mlcore.data import DataError
    from mlcore.columns import ColumnMapping
    from mlcore.recipe import RecipeConfig, setup

    assert catalog.TARGET_KINDS["multi_regression"].several_targets
    assert not catalog.TARGET_KINDS["binary"].several_targets
    with pytest.raises(DataError, match="takes one target column, got 2: a, b"):
        setup(RecipeConfig(task="dna-classification", data=tmp_path / "d.csv", columns=ColumnMapping(target_cols=["a", "b"]), out=tmp_path))
