"""mlcore.predict: JSON record shapes checked without torch, every bad record named before anything is
predicted, predictions as JSON and CSV (a tabular regression model: numbers, a file's lines)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from mlcore.modeldir import model_load
from mlcore.predict import (
    InvalidRecords, inputs_from_file, model_predict, predictions_json, predictions_write_csv, records_parse,
)
from mlcore.recipe import RecipeConfig, recipe_run
from tests.mlcore import synthetic

ROOT = Path(__file__).resolve().parents[2]


def test_records_parse_checks_shapes_per_modality_and_names_every_bad_record() -> None:
    parsed = records_parse([" ACGT ", {"id": 9, "input": "TTGA"}], modality="dna")
    assert parsed.values == ["ACGT", "TTGA"] and parsed.ids == ["0", "9"] and parsed.name(1) == "record 1 (id '9')"
    jet = {"pt": [10.0, 5.0], "eta": [0.1, -0.2], "phi": [1.0, 2.0], "energy": [11.0, 6.0]}
    assert records_parse([{"input": jet}], modality="particles").values == [jet]
    assert records_parse([{"input": {"x1": 1.5, "site": "a"}}], modality="tabular").ids == ["0"]
    with pytest.raises(InvalidRecords) as bad:
        records_parse([{"input": {"pt": [1.0]}}, {"input": jet}, {"input": {**jet, "eta": 0.1}}, "x"],
                      modality="particles")
    assert bad.value.count == 3 and [p["index"] for p in bad.value.problems] == [0, 2, 3]
    assert "missing field(s) eta, phi, energy" in bad.value.problems[0]["message"]
    assert "field 'eta': expected a list" in bad.value.problems[1]["message"]
    assert str(bad.value).startswith("3 of 4 records cannot be predicted; record 0 (id '0'): missing field(s)")
    with pytest.raises(InvalidRecords, match="feature 'x1': expected a number or a string, got a list"):
        records_parse([{"input": {"x1": [1]}}], modality="tabular")
    with pytest.raises(InvalidRecords, match="id must be a string or a number"):
        records_parse([{"id": ["a"], "input": "ACGT"}], modality="dna")
    with pytest.raises(InvalidRecords, match="no records"):
        records_parse([], modality="dna")


def test_records_parse_imports_no_torch() -> None:
    code = "import sys, mlcore.predict; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


@pytest.fixture(scope="module")
def tabular_model(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    tmp = tmp_path_factory.mktemp("tabular")
    rows, ys, _ = synthetic.tabular(90)
    data = synthetic.write_csv(tmp / "rows.csv", ["x1", "x2", "site", "target"],
                               [[r["x1"], r["x2"], r["site"], y] for r, y in zip(rows, ys)])
    result = recipe_run(RecipeConfig(task="tabular-regression", data=data, out=tmp / "run", device="cpu",
                                     hyperparameters={"epochs": 2}, explain_samples=0))
    return model_load(result.model_dir), rows


def test_model_predict_names_every_bad_record_then_predicts_numbers(tabular_model, tmp_path: Path) -> None:  # noqa: ANN001
    loaded, rows = tabular_model
    inputs = records_parse([{"id": "r1", "input": rows[0]}, {"input": {"x1": "abc", "x2": "1", "site": "a"}},
                            {"input": {"x1": "1"}}], modality="tabular")
    with pytest.raises(InvalidRecords) as bad:
        model_predict(loaded, inputs)
    assert bad.value.count == 2 and [p["index"] for p in bad.value.problems] == [1, 2]
    assert "non-numeric value 'abc' in numeric column 'x1'" in bad.value.problems[0]["message"]
    assert "missing feature column(s) x2, site" in bad.value.problems[1]["message"]

    good = records_parse([{"id": "r1", "input": rows[0]}, {"input": rows[1]}], modality="tabular")
    predictions = model_predict(loaded, good)
    as_json = predictions_json(loaded, good, predictions)
    assert [p["id"] for p in as_json] == ["r1", "1"] and all(isinstance(p["prediction"], float) for p in as_json)
    assert as_json[0]["probabilities"] is None
    assert as_json[0]["prediction"] == pytest.approx(loaded.predict([rows[0]])[0]["prediction"], rel=1e-5)

    new = synthetic.write_csv(tmp_path / "new.csv", ["x1", "x2", "site"], [[r["x1"], r["x2"], r["site"]] for r in rows[:4]])
    from_file = inputs_from_file(loaded, new)
    out = tmp_path / "predictions.csv"
    assert predictions_write_csv(loaded, from_file, model_predict(loaded, from_file), out) == 4
    written = list(csv.reader(out.open()))
    assert written[0] == ["id", "line", "prediction"] and [r[1] for r in written[1:]] == ["2", "3", "4", "5"]
    assert float(written[1][2]) == pytest.approx(as_json[0]["prediction"], rel=1e-4)
