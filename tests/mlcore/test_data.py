"""File readers (line numbers!), long-format grouping, splits and target encoding."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from mlcore.data import DataError, TargetEncoder, load_records, scaffold_of, split_indices
from tests.mlcore import synthetic


def test_csv_line_numbers_survive_blank_lines_and_multiline_fields(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('sequence,label,note\nACGT,1,a\n\nGGCC,0,"two\nlines"\nTTAA,1,c\n')
    table = load_records(path, modality="dna", target_cols=["label"])
    assert [(r.line, r.input, r.target) for r in table.records] == [
        (2, "ACGT", "1"), (4, "GGCC", "0"), (6, "TTAA", "1")]
    err = table.error(table.records[2], "bad thing", "sequence")
    assert str(err) == "d.csv line 6: bad thing in column 'sequence'"


def test_tsv_gz_fasta_and_parquet(tmp_path: Path) -> None:
    gz = tmp_path / "d.tsv.gz"
    with gzip.open(gz, "wt") as handle:
        handle.write("seq\ty\nACGT\t0.5\n")
    table = load_records(gz, modality="dna", input_col="seq", target_cols=["y"])
    assert table.records[0].input == "ACGT" and table.records[0].target == "0.5"

    fasta = tmp_path / "p.fasta"
    fasta.write_text(">s1 label=1\nMKV\nLLA\n>s2 label=0\nMKK\n")
    table = load_records(fasta, modality="protein", target_cols=["label"])
    assert [(r.id, r.line, r.input, r.target) for r in table.records] == [("s1", 1, "MKVLLA", "1"), ("s2", 4, "MKK", "0")]

    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"smiles": ["CCO", "CCN"], "label": [0, 1]}), tmp_path / "m.parquet")
    table = load_records(tmp_path / "m.parquet", modality="smiles", target_cols=["label"])
    assert table.unit == "row" and [r.line for r in table.records] == [1, 2]


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = synthetic.write_csv(tmp_path / "x.csv", ["seq", "label"], [["ACGT", 1]])
    with pytest.raises(DataError, match="x.csv: no input column 'sequence' \\(columns: seq, label\\)"):
        load_records(path, modality="dna", target_cols=["label"])
    with pytest.raises(DataError, match="no target column 'target'"):
        load_records(path, modality="dna", input_col="seq", target_cols=["target"])


def test_long_format_groups_rows_by_object(tmp_path: Path) -> None:
    rows = [["j1", 10, 0.1, 0.0, 11, 1, "1"], ["j2", 5, 0.0, 0.1, 5.5, 0, "0"], ["j1", 3, 0.2, 0.1, 3.2, -1, "1"]]
    path = synthetic.write_csv(tmp_path / "jets.csv", ["object_id", "pt", "eta", "phi", "energy", "charge", "label"], rows)
    table = load_records(path, modality="particles", target_cols=["label"])
    j1 = table.records[0]
    assert (j1.id, j1.line, j1.target) == ("j1", 2, "1")
    assert j1.input["pt"].tolist() == [10, 3] and j1.input["charge"].tolist() == [1, -1]
    assert "label" not in j1.input and "object_id" not in j1.input
    rows.append(["j2", 1, 0, 0, 1, 0, "1"])
    synthetic.write_csv(path, ["object_id", "pt", "eta", "phi", "energy", "charge", "label"], rows)
    with pytest.raises(DataError, match="jets.csv line 5: object 'j2' has target '1' here but '0' on line 3"):
        load_records(path, modality="particles", target_cols=["label"])


def test_tabular_features_are_every_other_column(tmp_path: Path) -> None:
    path = synthetic.write_csv(tmp_path / "t.csv", ["id", "a", "b", "target"], [["r1", 1, "x", 2.0]])
    table = load_records(path, modality="tabular", target_cols=["target"])
    assert table.feature_cols == ["a", "b"] and table.records[0].id == "r1"  # `id` is an id by default


def test_splits_are_seeded_and_respect_their_constraints() -> None:
    labels = ["a"] * 40 + ["b"] * 10
    for method in ("random", "stratified"):
        first = split_indices(50, method, seed=3, labels=labels)
        again = split_indices(50, method, seed=3, labels=labels)
        other = split_indices(50, method, seed=4, labels=labels)
        assert all((x == y).all() for x, y in zip(first, again))
        assert not all(np.array_equal(x, y) for x, y in zip(first, other))
        assert sorted(np.concatenate(first).tolist()) == list(range(50))
    train, val, test = split_indices(50, "stratified", seed=0, labels=labels)
    assert sorted(labels[i] for i in test) == ["a"] * 4 + ["b"]

    groups = [f"g{i % 7}" for i in range(50)]
    train, val, test = split_indices(50, "group", seed=0, groups=groups)
    assert not ({groups[i] for i in train} & {groups[i] for i in test})
    assert not ({groups[i] for i in val} & {groups[i] for i in test} | {groups[i] for i in train} & {groups[i] for i in val})

    split_col = ["train"] * 5 + ["valid"] * 2 + ["test"] * 3
    assert [len(p) for p in split_indices(10, "column", split_values=split_col)] == [5, 2, 3]
    with pytest.raises(ValueError, match="holdout"):
        split_indices(2, "column", split_values=["train", "holdout"])


def test_scaffold_split_keeps_each_scaffold_in_one_part() -> None:
    rings = ["c1ccccc1", "c1ccncc1", "C1CCCCC1", "C1CCNCC1", "c1ccoc1", "c1ccsc1", "C1CCOC1", "c1ccc2ccccc2c1",
             "C1CC1", "C1CCC1", "c1cnccn1", "c1ccc2[nH]ccc2c1"]
    smiles = [sub + ring for ring in rings for sub in ("C", "CC", "O", "N", "CO")]  # 12 scaffolds x 5
    train, val, test = split_indices(len(smiles), "scaffold", seed=0, smiles=smiles, val_frac=0.2, test_frac=0.2)
    parts = [{scaffold_of(smiles[i]) for i in p} for p in (train, val, test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert len(test) > 0 and len(val) > 0
    assert scaffold_of("c1ccccc1CCO") == "c1ccccc1"


def test_target_encoder() -> None:
    enc = TargetEncoder.fit("multiclass", ["label"], ["10", "9", "2", "9"])
    assert enc.classes == ["2", "9", "10"]  # numeric order, not text order
    assert enc.encode("10") == 2
    with pytest.raises(ValueError, match="not seen in training"):
        enc.encode("11")
    reg = TargetEncoder.fit("multi_regression", ["a", "b"], [["1", ""], ["3", "4"], ["5", "8"]])
    assert reg.mean == [3.0, 6.0]
    z = reg.encode(["5", ""])
    assert z[0] == pytest.approx((5 - 3) / np.std([1, 3, 5])) and np.isnan(z[1])
    np.testing.assert_allclose(reg.decode_regression(np.asarray([[z[0], 0.0]])), [[5.0, 6.0]])
    single = TargetEncoder(kind="regression", target_cols=["t"])
    for bad, reason in (("abc", "non-numeric target 'abc'"), ("", "missing target")):
        with pytest.raises(ValueError, match=reason):
            single.check(bad)
    assert TargetEncoder.resolve_kind("binary", ["label"], ["a", "b", "c"]) == "multiclass"


def test_a_canonical_copy_keeps_the_original_file_lines(tmp_path: Path) -> None:
    from mlcore.validation import validate_file

    path = tmp_path / "upload.csv"
    path.write_text("sequence,label\nACGT,1\n\nACQT,0\nGGCC,0\nTTAA,1\nCCGG,0\nAATT,1\n")
    copy = tmp_path / "canonical.parquet"
    assert validate_file(path, task="dna-classification", policy="skip", output=copy).ok
    table = load_records(copy, modality="dna", target_cols=["label"])
    assert [r.line for r in table.records] == [2, 5, 6, 7, 8]  # line 4 was dropped, line 3 is blank
    assert (table.source, table.unit) == ("upload.csv", "line")
    assert all(r.input != "source_line" for r in table.records)
    assert str(table.error(table.records[1], "bad thing", "sequence")) == "upload.csv line 5: bad thing in column 'sequence'"
    tabular = load_records(copy, modality="tabular", target_cols=["label"])
    assert tabular.feature_cols == ["sequence"]  # source_line is no feature


def test_sdf_molecules_are_read_as_smiles(tmp_path: Path) -> None:
    from rdkit import Chem

    blocks = []
    for name, smiles, label in (("ethanol", "CCO", "1"), ("benzene", "c1ccccc1", "0")):
        mol = Chem.MolFromSmiles(smiles)
        mol.SetProp("_Name", name)
        mol.SetProp("label", label)
        blocks.append(mol)
    writer = Chem.SDWriter(str(tmp_path / "m.sdf"))
    for mol in blocks:
        writer.write(mol)
    writer.close()
    table = load_records(tmp_path / "m.sdf", modality="smiles", target_cols=["label"])
    assert [(r.id, r.line, r.input, r.target) for r in table.records][0] == ("ethanol", 1, "CCO", "1")
    assert table.records[1].input == "c1ccccc1" and table.records[1].line > 1
    with pytest.raises(DataError, match="cannot be read as dna"):
        load_records(tmp_path / "m.sdf", modality="dna", target_cols=["label"])


def test_a_split_column_without_validation_rows_gets_validation_carved_from_train() -> None:
    split_values = ["train"] * 40 + ["test"] * 10
    labels = ["a"] * 30 + ["b"] * 10 + ["a"] * 10
    notes: list[str] = []
    train, val, test = split_indices(50, "column", split_values=split_values, labels=labels, val_frac=0.2, seed=7,
                                     notes=notes)
    assert list(test) == list(range(40, 50)) and len(val) == 8 and len(train) == 32
    assert sorted([*train, *val]) == list(range(40))  # carved from train only, test untouched
    assert sum(labels[i] == "b" for i in val) == 2  # stratified: 20% of each class
    assert notes == ["the split column has no validation rows: 8 of its 40 training records were held out as "
                     "validation (stratified by class, val_frac 0.2, seed 7)"]
    again = split_indices(50, "column", split_values=split_values, labels=labels, val_frac=0.2, seed=7)
    assert list(again[1]) == list(val)  # seeded
    # A column that has validation rows is followed as it is, and says nothing.
    notes.clear()
    given = split_indices(4, "column", split_values=["train", "train", "val", "test"], notes=notes)
    assert [list(p) for p in given] == [[0, 1], [2], [3]] and notes == []
    # Too few records to round to one per class still yields one validation record.
    tiny = split_indices(5, "column", split_values=["train"] * 4 + ["test"], val_frac=0.1, notes=notes)
    assert len(tiny[1]) == 1 and len(tiny[0]) == 3 and "at random" in notes[0]
