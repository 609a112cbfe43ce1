"""The record rules live once, in each modality's torch-free `rules.py`: validation, the featurizer
and prediction give one bad record the same message, and the rules and views import no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlcore import catalog
from mlcore.modalities import RecordError, featurizer_build
from mlcore.modeldir import LoadedModel
from mlcore.predict import InvalidRecords, model_predict, records_parse
from mlcore.readers import ColumnMapping
from mlcore.validation import ValidationOptions, validate_file

ROOT = Path(__file__).resolve().parents[2]
LENIENT = ValidationOptions(max_invalid_fraction=1.0)


def _jet(pt2: float) -> dict[str, list[float]]:
    return {"pt": [10.0, pt2], "eta": [0.1, 0.2], "phi": [0.2, 0.1], "energy": [11.0, 6.0]}


def _curve(err2: float) -> dict[str, list[Any]]:
    return {"time": [1.0, 2.0, 3.0], "flux": [1.0, 2.0, 1.5], "flux_err": [0.1, err2, 0.1], "band": ["g", "r", "g"]}


def _long_csv(fields: tuple[str, ...], objects: dict[str, dict[str, list[Any]]]) -> str:
    rows = [",".join(("object_id", *fields))]
    for name, record in objects.items():
        for k in range(len(record[fields[0]])):
            rows.append(",".join([name, *(str(record[f][k]) for f in fields)]))
    return "\n".join(rows) + "\n"


# modality -> (valid records to fit on, the bad record, its file text with the bad record last, the
# validation options, the message every path must give)
CASES: dict[str, tuple[list[Any], Any, str, ValidationOptions, str]] = {
    "dna": (["ACGTACGT", "TTGACA"], "ACGTX", "sequence\nACGTACGT\nTTGACA\nACGTX\n", LENIENT,
            "invalid nucleotide 'X' at position 5"),
    "protein": (["MKV", "MKVLA"], "mkJ", "sequence\nMKV\nMKVLA\nmkJ\n", LENIENT, "invalid amino acid 'J' at position 3"),
    "smiles": (["CCO", "c1ccccc1"], "C1CC(", "smiles\nCCO\nc1ccccc1\nC1CC(\n", LENIENT,
               "unparsable SMILES 'C1CC(': syntax error around position 5"),
    "particles": ([_jet(5.0), _jet(3.0)], _jet(-1.0),
                  _long_csv(catalog.MODALITIES["particles"].element_fields,
                            {"a": _jet(5.0), "b": _jet(3.0), "c": _jet(-1.0)}), LENIENT,
                  "non-positive pt at particle 2"),
    "lightcurve": ([_curve(0.2), _curve(0.3)], _curve(-0.1),
                   _long_csv(catalog.MODALITIES["lightcurve"].element_fields,
                             {"a": _curve(0.2), "b": _curve(0.3), "c": _curve(-0.1)}), LENIENT,
                   "negative flux_err at observation 2"),
    "tabular": ([{"x1": "1.5", "site": "a"}, {"x1": "2", "site": "b"}], {"x1": "abc", "site": "a"},
                "x1,site\n1.5,a\n2,b\nabc,a\n", ValidationOptions(max_invalid_fraction=1.0, numeric_cols=("x1",)),
                "non-numeric value 'abc' in numeric column 'x1'"),
}


def _predict_message(modality: str, featurizer: Any, record: Any, tmp_path: Path) -> str:
    inputs = records_parse([{"id": "bad", "input": record}], modality=modality)  # the shape is right
    loaded = LoadedModel(directory=tmp_path, config={}, featurizer=featurizer, targets=None, model=None)  # type: ignore[arg-type]
    with pytest.raises(InvalidRecords) as bad:
        model_predict(loaded, inputs)  # every record is checked before the model is touched
    return bad.value.problems[0]["message"]


@pytest.mark.parametrize("modality", sorted(CASES))
def test_one_bad_record_one_message_in_validation_featurizer_and_prediction(modality: str, tmp_path: Path) -> None:
    good, bad, text, options, message = CASES[modality]
    path = tmp_path / "data.csv"
    path.write_text(text)
    result = validate_file(path, modality=modality, mapping=ColumnMapping(), policy="skip", options=options)
    assert [p.reason for p in result.problems] == [message]
    featurizer = featurizer_build(modality).fit(good)
    with pytest.raises(RecordError) as raised:
        featurizer.encode(bad)
    assert str(raised.value) == message
    assert raised.value.code == result.problems[0].code
    assert _predict_message(modality, featurizer, bad, tmp_path) == message


def test_smiles_chemistry_and_dna_length_messages_agree_too(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("smiles\nCCO\nC(C)(C)(C)(C)C\n")
    (problem,) = validate_file(path, modality="smiles", policy="skip", options=LENIENT).problems
    featurizer = featurizer_build("smiles").fit(["CCO"])
    with pytest.raises(RecordError) as raised:
        featurizer.encode("C(C)(C)(C)(C)C")
    assert str(raised.value) == problem.reason and "valence" in problem.reason and problem.code == "smiles_sanitize"
    path = tmp_path / "d.csv"
    path.write_text("sequence\nACGT\nACGTACGTA\n")
    (problem,) = validate_file(path, modality="dna", policy="skip", options=ValidationOptions(
        max_len=8, max_invalid_fraction=1.0)).problems
    with pytest.raises(RecordError) as raised:
        featurizer_build("dna", max_len=8).encode("ACGTACGTA")
    assert str(raised.value) == problem.reason == "sequence of 9 bases is longer than max_len 8"


def test_rules_views_and_validation_import_no_torch() -> None:
    modules = [f"mlcore.modalities.{key}.{part}" for key in catalog.MODALITIES for part in ("rules", "view")]
    code = ("import sys\n"
            f"for name in {modules!r} + ['mlcore.modalities', 'mlcore.modalities.views', 'mlcore.validation']:\n"
            "    __import__(name)\n"
            "import mlcore.modalities as m\n"
            "views = {k: m.view_get(k).drawing for k in m.catalog.MODALITIES}\n"
            "print(sorted(k for k in sys.modules if k == 'torch' or k.startswith('torch.')), len(views))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["[]", str(len(catalog.MODALITIES))], out.stdout


def test_element_fields_are_the_catalogs() -> None:
    from mlcore.modalities.lightcurve import rules as lightcurve_rules
    from mlcore.modalities.particles import rules as particles_rules

    assert particles_rules.REQUIRED is catalog.MODALITIES["particles"].element_fields
    assert lightcurve_rules.REQUIRED is catalog.MODALITIES["lightcurve"].element_fields


def test_old_import_paths_resolve_through_the_packages() -> None:
    from mlcore.modalities.dna import DnaFeaturizer, composition_matrix
    from mlcore.modalities.smiles import SmilesFeaturizer, smiles_canonical, smiles_tokenize
    from mlcore.modalities.tabular import TabularStem

    assert DnaFeaturizer.modality == "dna" and composition_matrix().shape == (16, 4)
    assert SmilesFeaturizer.modality == "smiles" and smiles_canonical("OCC") == "CCO"
    assert smiles_tokenize("CCl") == ["C", "Cl"] and TabularStem.__module__ == "mlcore.modalities.tabular.featurizer"
    with pytest.raises(ImportError):
        from mlcore.modalities.dna import no_such_name  # noqa: F401
