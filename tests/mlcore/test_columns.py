"""mlcore.columns.ColumnMapping: one vocabulary for the column mapping, its dictionaries old and new."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlcore.columns import MAPPING_KEYS, ColumnMapping, MappingError
from mlcore.readers import ColumnMapping as ReadersColumnMapping
from mlcore.recipe import RecipeConfig
from mlcore.validation import validate_file


def test_round_trip_through_to_dict_and_json() -> None:
    mapping = ColumnMapping(input_cols=("a", "b"), target_cols=("y", "z"), id_col="name", group_col="family",
                            split_col="fold")
    data = mapping.to_dict()
    assert data == {"input_cols": ["a", "b"], "target_cols": ["y", "z"], "id_col": "name", "group_col": "family",
                    "split_col": "fold"}
    assert ColumnMapping.from_dict(json.loads(json.dumps(data))) == mapping
    assert ColumnMapping().to_dict() == {} and ColumnMapping.from_dict({}) == ColumnMapping()
    assert ColumnMapping.from_dict(None) == ColumnMapping() and ColumnMapping.from_dict(mapping) is mapping
    assert tuple(data) == MAPPING_KEYS


def test_lists_and_strings_are_normalized() -> None:
    mapping = ColumnMapping(input_cols=["a", " b ", "a", ""], target_cols="y, z", id_col="  ", split_col=" fold ")
    assert mapping == ColumnMapping(input_cols=("a", "b"), target_cols=("y", "z"), split_col="fold")
    assert mapping.to_dict() == {"input_cols": ["a", "b"], "target_cols": ["y", "z"], "split_col": "fold"}
    assert hash(mapping) == hash(ColumnMapping(input_cols=("a", "b"), target_cols=("y", "z"), split_col="fold"))


def test_old_dictionaries_still_read() -> None:
    # A dataset schema as the upload form, the API and load_demo_data stored it (empty entries, a task).
    schema = {"input_cols": [], "target_cols": ["label"], "id_col": None, "group_col": None, "split_col": None,
              "task": "dna-classification", "demo": {"key": "x"}}
    assert ColumnMapping.from_dict(schema) == ColumnMapping(target_cols=("label",))
    assert ColumnMapping.from_dict({"input_col": "seq"}) == ColumnMapping(input_cols=("seq",))  # an early schema
    # A model directory's config.json `columns` before ColumnMapping (sequence and table).
    assert ColumnMapping.from_dict({"input_col": "smiles", "target_cols": ["y"], "id_col": None,
                                    "feature_cols": None}) == ColumnMapping(input_cols=("smiles",), target_cols=("y",))
    assert ColumnMapping.from_dict({"input_col": None, "target_cols": ["y"], "id_col": "id", "feature_cols":
                                    ["a", "b"]}) == ColumnMapping(input_cols=("a", "b"), target_cols=("y",), id_col="id")
    # A validation report's `columns` before ColumnMapping.
    report = {"input": "sequence", "targets": ["label"], "id": "name", "group": None, "split": "fold",
              "line": "source_line", "file": ["name", "sequence", "label", "fold"]}
    assert ColumnMapping.from_dict(report) == ColumnMapping(input_cols=("sequence",), target_cols=("label",),
                                                            id_col="name", split_col="fold")
    table = {"input": ["a", "b"], "targets": [], "id": None, "group": None, "split": None, "numeric": ["a"]}
    assert ColumnMapping.from_dict(table) == ColumnMapping(input_cols=("a", "b"))


def test_a_column_in_two_roles_or_a_malformed_entry_is_refused() -> None:
    with pytest.raises(MappingError, match="'y' is a target column; it cannot also be an input column") as exc:
        ColumnMapping(input_cols=("a", "y"), target_cols=("y",))
    assert exc.value.field == "target_cols"
    with pytest.raises(ValueError, match="cannot also be the split column"):
        ColumnMapping.from_dict({"target_cols": ["fold"], "split_col": "fold"})
    with pytest.raises(MappingError, match="id_col: a column name is a string") as exc:
        ColumnMapping.from_dict({"id_col": 3})
    assert exc.value.field == "id_col"
    with pytest.raises(MappingError, match="expected a list of column names"):
        ColumnMapping.from_dict({"input_cols": {"a": 1}})
    with pytest.raises(MappingError, match="is a dictionary"):
        ColumnMapping.from_dict(["a"])  # type: ignore[arg-type]


def test_with_targets_and_the_input_per_modality() -> None:
    table = ColumnMapping(input_cols=("a", "b", "y"), id_col="y")
    picked = table.with_targets(["y"])
    assert picked == ColumnMapping(input_cols=("a", "b"), target_cols=("y",))
    assert table.with_targets(None) is table and table.with_targets([]) is table
    assert picked.feature_cols(table=True) == ["a", "b"] and picked.input_col(table=True) is None
    seq = ColumnMapping(input_cols=("seq",), target_cols=("label",))
    assert seq.input_col(table=False) == "seq" and seq.feature_cols(table=False) is None
    assert ColumnMapping().input_col(table=False) is None and ColumnMapping().feature_cols(table=True) is None


def test_readers_and_recipe_config_use_the_one_mapping(tmp_path: Path) -> None:
    assert ReadersColumnMapping is ColumnMapping  # re-exported for older imports
    config = RecipeConfig(task="dna-classification", data=tmp_path / "d.csv", out=tmp_path / "o",
                          columns={"input": "seq", "targets": ["activity"]})  # a dictionary (launch.json) is read
    assert config.columns == ColumnMapping(input_cols=("seq",), target_cols=("activity",))
    assert RecipeConfig(task="dna-classification", data=tmp_path, out=tmp_path).columns == ColumnMapping()


def test_the_validation_report_holds_the_resolved_mapping(tmp_path: Path) -> None:
    path = tmp_path / "mols.csv"
    path.write_text("name,SMILES,activity\nm1,CCO,1.5\nm2,c1ccccc1,2.5\nm3,CCN,0.5\n")
    result = validate_file(path, task="molecule-regression",
                           mapping=ColumnMapping(target_cols=("activity",), id_col="name"))
    assert result.ok, result.report()
    columns = result.report()["columns"]
    assert ColumnMapping.from_dict(columns) == ColumnMapping(input_cols=("SMILES",), target_cols=("activity",),
                                                             id_col="name")
    assert columns["input_cols"] == ["SMILES"] and columns["input"] == "SMILES"  # the older key stays


def test_a_target_that_defaults_onto_another_role_is_a_read_error(tmp_path: Path) -> None:
    from mlcore.readers import ReadError

    path = tmp_path / "seqs.csv"
    path.write_text("sequence,label\nACGT,1\nGGCA,0\n")
    with pytest.raises(ReadError, match="'sequence' is the target and also the input"):
        validate_file(path, task="dna-classification", mapping=ColumnMapping(target_cols=("sequence",)))
