"""mlcore.validation: every modality's rules with exact line numbers, targets, policies, the canonical
copy, duplicates, the worker pool, agreement with the featurizers, and bounded memory."""

from __future__ import annotations

import gzip
import random
import tracemalloc
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcore.readers import ColumnMapping, ReadError
from mlcore.modalities.smiles.rules import smiles_token_count
from mlcore.validation import SOURCE_LINE_COL, ValidationOptions, ValidationResult, validate_file


# These small files are mostly bad records on purpose; `skip` would otherwise refuse them as a whole.
LENIENT = ValidationOptions(max_invalid_fraction=1.0)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _lines(result: ValidationResult, code: str | None = None) -> list[int | None]:
    return [p.line for p in result.problems if code is None or p.code == code]


def _codes(result: ValidationResult) -> list[tuple[int | None, str]]:
    return [(p.line, p.code) for p in result.problems]


# -- SMILES ---------------------------------------------------------------------------------------

MOLECULES = "smiles,target\nCCO,1.0\nc1ccccc1,2.0\nC1CC,3.0\nCC(=O)O,0.5\nCCN,x\nCCCl,1.1\nC(C)(C)(C)(C)C,0.2\nOCC,inf\n"


def test_smiles_problems_name_lines_columns_and_rdkit_messages(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.csv", MOLECULES)
    result = validate_file(path, task="molecule-regression", policy="skip")
    assert _codes(result) == [(4, "smiles_parse"), (6, "target_not_numeric"), (8, "smiles_sanitize"),
                              (9, "target_not_finite")]
    by_line = {p.line: p for p in result.problems}
    assert by_line[4].column == "smiles" and "unclosed ring" in by_line[4].reason  # RDKit's own words
    assert "Explicit valence for atom # 0 C, 5" in by_line[8].reason
    assert by_line[6].column == "target" and by_line[6].value == "x"
    assert (result.rows, result.valid, result.invalid, result.status) == (8, 4, 4, "valid")
    assert result.totals == {"smiles_parse": 1, "target_not_numeric": 1, "smiles_sanitize": 1, "target_not_finite": 1}
    strict = validate_file(path, task="molecule-regression", policy="strict")
    assert strict.status == "invalid" and _lines(strict) == _lines(result)


def test_over_default_max_len_counts_the_fp_token_of_molecule_tasks(tmp_path: Path) -> None:
    # SMILES default max_len is 256; the [FP] token (molecule tasks' default) takes one position, so a
    # SMILES of exactly 256 tokens fails training with the defaults and must be counted at upload.
    limit = 256
    rows = [("C" * (limit - 1), 1.0), ("C" * limit, 2.0), ("CCO", 3.0), ("CCN", 4.0)]
    path = _write(tmp_path, "long.csv", "smiles,target\n" + "".join(f"{s},{t}\n" for s, t in rows))
    result = validate_file(path, task="molecule-regression", policy="skip")
    length = result.stats["length"]
    assert (length["default_max_len"], length["extra_tokens"], length["max"]) == (limit, 1, limit)
    assert length["over_default_max_len"] == 1
    warning = next(w for w in result.warnings if w["code"] == "over_default_max_len")
    assert warning["count"] == 1 and "[FP] token" in warning["message"]


def test_canonical_copy_and_duplicates_with_conflicting_labels(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.csv", "smiles,label,split\nOCC,1,train\nC1=CC=CC=C1,0,test\nCCO,0,val\n"
                                     "c1ccccc1,0,valid\nCC,1,train\nCCC,1,Train\n")
    out = tmp_path / "canon.parquet"
    result = validate_file(path, task="molecule-classification", mapping=ColumnMapping(split_col="split"),
                           policy="strict", output=out)
    assert result.status == "valid" and result.output == str(out)
    table = pq.read_table(out).to_pydict()
    assert table["smiles"] == ["CCO", "c1ccccc1", "CCO", "c1ccccc1", "CC", "CCC"]
    assert table[SOURCE_LINE_COL] == [2, 3, 4, 5, 6, 7]
    assert table["split"] == ["train", "test", "val", "val", "train", "train"]
    dup = result.stats["duplicates"]
    assert dup["records"] == 2 and dup["groups"] == 2 and dup["conflicting_groups"] == 1
    assert dup["examples"] == [{"lines": [2, 4], "conflicting_targets": True},
                               {"lines": [3, 5], "conflicting_targets": False}]
    assert {w["code"] for w in result.warnings} >= {"duplicate", "duplicate_conflict"}
    assert result.stats["target"]["classes"] == {"1": 3, "0": 3}


def test_classification_needs_two_examples_per_class(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.csv", "smiles,label\nCCO,a\nCCN,a\nCCC,b\nCCCC,b\nCCCCC,c\n")
    strict = validate_file(path, task="molecule-classification", policy="strict")
    assert strict.status == "invalid" and _codes(strict) == [(6, "class_too_small")]
    out = tmp_path / "o.parquet"
    skip = validate_file(path, task="molecule-classification", policy="skip", output=out)
    assert skip.status == "valid" and (skip.valid, skip.invalid) == (4, 1)
    assert pq.read_table(out).column("label").to_pylist() == ["a", "a", "b", "b"]
    one = _write(tmp_path, "one.csv", "smiles,label\nCCO,a\nCCN,a\nCCC,b\n")
    result = validate_file(one, task="molecule-classification", policy="skip", output=out.with_name("x.parquet"))
    assert result.status == "invalid" and "too_few_classes" in result.totals and result.output is None
    assert not out.with_name("x.parquet").exists() and not out.with_name("x.parquet.partial").exists()


def test_strict_invalid_leaves_no_canonical_copy(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.csv", MOLECULES)
    out = tmp_path / "o.parquet"
    result = validate_file(path, task="molecule-regression", policy="strict", output=out)
    assert result.status == "invalid" and result.output is None and list(tmp_path.iterdir()) == [path]


def test_multi_target_regression_masks_missing_values(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.csv", "smiles,a,b\nCCO,1,\nCCN,,2\nCCC,,\nCCCl,nan,3\n")
    out = tmp_path / "o.parquet"
    result = validate_file(path, task="molecule-regression", mapping=ColumnMapping(target_cols=("a", "b")),
                           policy="skip", output=out)
    assert _codes(result) == [(4, "target_missing")]
    assert pq.read_table(out).to_pydict()["a"] == [1.0, None, None]
    stats = result.stats["target"]["columns"]
    assert stats["a"]["count"] == 1 and stats["a"]["missing"] == 2 and stats["b"]["mean"] == 2.5


def test_regression_target_stats(tmp_path: Path) -> None:
    rng = random.Random(0)
    values = [rng.gauss(5, 2) for _ in range(500)]
    path = _write(tmp_path, "d.csv", "sequence,target\n" + "".join(f"ACGT,{v}\n" for v in values))
    stats = validate_file(path, task="dna-regression").stats["target"]["columns"]["target"]
    assert stats["count"] == 500 and stats["approximate"] is False
    assert stats["mean"] == pytest.approx(sum(values) / 500)
    assert stats["quantiles"]["p50"] == pytest.approx(sorted(values)[249], abs=0.05)
    assert sum(stats["histogram"]["counts"]) == 500


def test_sdf_target_from_property(tmp_path: Path) -> None:
    from rdkit import Chem

    text = ""
    for smiles, value in (("OCC", "1.5"), ("c1ccccc1", "oops")):
        mol = Chem.MolFromSmiles(smiles)
        text += Chem.MolToMolBlock(mol) + f"> <logS>\n{value}\n\n$$$$\n"
    pentavalent = Chem.MolFromSmiles("C(C)(C)(C)(C)C", sanitize=False)
    pentavalent.UpdatePropertyCache(strict=False)
    text += Chem.MolToMolBlock(pentavalent, kekulize=False) + "> <logS>\n1\n\n$$$$\n"
    path = _write(tmp_path, "m.sdf", text)
    out = tmp_path / "o.parquet"
    result = validate_file(path, task="molecule-regression", mapping=ColumnMapping(target_cols=("logS",)),
                           policy="skip", output=out, options=LENIENT)
    second = text.split("$$$$\n")[0].count("\n") + 2  # the line after the first record's $$$$
    third = second + text.split("$$$$\n")[1].count("\n") + 1
    assert _codes(result) == [(second, "target_not_numeric"), (third, "smiles_sanitize")]
    assert pq.read_table(out).to_pydict()["smiles"] == ["CCO"]


def test_smiles_token_count_matches_the_tokenizer_and_featurizer_agrees() -> None:
    from mlcore.modalities.base import RecordError
    from mlcore.modalities.smiles.featurizer import SMILES_REGEX, SmilesFeaturizer, smiles_canonical
    from mlcore.validation import _check_sequences, _Collector, _Plan
    from mlcore.readers import Chunk

    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from validation import smiles_drug_like  # the benchmark's generator

    rng = random.Random(3)
    tricky = ["[NH4+].[Cl-]", "C[C@H](N)C(=O)O", "[2H]C([2H])([2H])O", "F/C=C/F", "[H]OC", "Brc1ccccc1Cl",
              "C1CC2CC1CC2", "c1ccc2c(c1)oc1ccccc12", "[Fe+2]", "[Na+].[O-]C(=O)C", "*CC", "C1CC", "c1cccc1",
              "C(C)(C)(C)(C)C", "CC[Xx]", "", "[C@@H]1(Cl)CC1", "C%12CC%12"]
    smiles = tricky + [smiles_drug_like(rng) for _ in range(2000)]
    plan = _Plan("smiles", "sequence", "smiles", (), None, None, None, None)
    chunk = Chunk(list(range(2, len(smiles) + 2)), {"smiles": smiles})
    col = _Collector(chunk, 10_000)
    canon, lengths = _check_sequences(plan, chunk, col)
    featurizer = SmilesFeaturizer(max_len=100_000)
    for i, s in enumerate(smiles):
        try:
            expected = smiles_canonical(s)
            featurizer.encode(s)
        except RecordError:
            expected = None
        assert (i in col.bad) == (expected is None), s  # validation accepts exactly what training accepts
        if expected is not None:
            assert canon[i] == expected, s  # and stores the canonical SMILES training computes
            assert lengths[i] == len(SMILES_REGEX.findall(expected)) == smiles_token_count(expected)


def test_smiles_worker_pool_gives_the_same_report_as_one_process(tmp_path: Path) -> None:
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from validation import write_smiles_csv

    path = tmp_path / "m.csv"
    write_smiles_csv(path, 3000, seed=5)
    reports = []
    for workers in (1, 2):
        out = tmp_path / f"o{workers}.parquet"
        result = validate_file(path, task="molecule-regression", policy="skip", output=out,
                               options=ValidationOptions(workers=workers, chunk_size=250))
        report = result.report()
        report.pop("output")
        reports.append((report, pq.read_table(out).to_pydict()))
    assert reports[0] == reports[1]
    assert reports[0][0]["invalid"] > 0 and reports[0][0]["problems"][0]["line"] >= 2


# -- DNA and protein ------------------------------------------------------------------------------


def test_dna_alphabet_iupac_empty_and_length(tmp_path: Path) -> None:
    text = "sequence,label\nacgtn,0\nACGTX,1\n,0\nACGRYT,1\nACGTACGTACGT,0\nAC GT,1\nACGU,0\n"
    path = _write(tmp_path, "d.csv", text)
    out = tmp_path / "o.parquet"
    opts = ValidationOptions(max_len=10, max_invalid_fraction=1.0)
    mapping = ColumnMapping(target_cols=("label",))  # carried into the copy, not checked (no task)
    result = validate_file(path, modality="dna", mapping=mapping, policy="skip", options=opts, output=out)
    assert _codes(result) == [(3, "invalid_character"), (4, "empty"), (6, "too_long"), (7, "invalid_character")]
    by_line = {p.line: p for p in result.problems}
    assert by_line[3].reason == "invalid nucleotide 'X' at position 5" and by_line[3].column == "sequence"
    assert by_line[7].reason == "invalid nucleotide ' ' at position 3"
    (warning,) = [w for w in result.warnings if w["code"] == "ambiguous_base"]
    assert warning["count"] == 1 and warning["examples"][0]["line"] == 5
    assert pq.read_table(out).to_pydict() == {SOURCE_LINE_COL: [2, 5, 8], "sequence": ["ACGTN", "ACGRYT", "ACGU"],
                                              "label": ["0", "1", "0"]}
    rejected = validate_file(path, modality="dna", policy="skip",
                             options=ValidationOptions(max_len=10, iupac="reject"))
    assert (5, "ambiguous_base") in _codes(rejected)
    assert result.stats["length"]["max"] == 6 and result.stats["length"]["unit"] == "bases"


def test_dna_and_protein_alphabets_agree_with_the_featurizers() -> None:
    from mlcore.modalities.base import RecordError
    from mlcore.modalities.dna.featurizer import DnaFeaturizer
    from mlcore.modalities.dna.rules import CORE as DNA_CORE, IUPAC_CODES as DNA_IUPAC
    from mlcore.modalities.protein.featurizer import ProteinFeaturizer
    from mlcore.modalities.protein.rules import ALPHABET as PROTEIN_ALPHABET

    for letters, featurizer in ((DNA_CORE + DNA_IUPAC, DnaFeaturizer()), (PROTEIN_ALPHABET, ProteinFeaturizer())):
        for code in range(32, 127):
            ch = chr(code)
            try:
                featurizer.parse("A" + ch + "A")
                accepted = True
            except RecordError:
                accepted = False
            assert accepted == (ch.upper() in letters), (featurizer.modality, ch)


def test_protein_alphabet_stop_symbol_and_per_residue_labels(tmp_path: Path) -> None:
    path = _write(tmp_path, "p.csv", "sequence,labels\nMKXBZUO*,HHHCCCE\nmkv,HHH\nMKJ,HHH\nMKV,HH\n")
    out = tmp_path / "o.parquet"
    result = validate_file(path, task="residue-labeling", policy="skip", output=out)
    assert _codes(result) == [(4, "invalid_character"), (5, "label_length")]
    assert "3 per-residue labels" not in result.problems[1].reason and "2 per-residue labels" in result.problems[1].reason
    assert pq.read_table(out).to_pydict()["sequence"] == ["MKXBZUO", "MKV"]
    assert result.stats["target"]["label_counts"] == {"H": 6, "C": 3, "E": 1}


def test_fasta_labels_from_headers(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.fasta", ">s1 label=1\nACGT\nACGT\n>s2 label=0\nACQT\n>s3 label=1\nAAAA\n"
                                       ">s4 label=0\nCC\n>s5 label=0\nGG\n>s6\nTT\n")
    out = tmp_path / "o.parquet"
    result = validate_file(path, task="dna-classification", policy="skip", output=out)
    assert _codes(result) == [(4, "invalid_character"), (12, "target_missing")]
    assert result.stats["target"]["classes"] == {"1": 2, "0": 2} and result.status == "valid"
    assert pq.read_table(out).to_pydict()["id"] == ["s1", "s3", "s4", "s5"]


# -- sets and series ------------------------------------------------------------------------------

JETS = ("object_id,pt,eta,phi,energy,label\n"
        "j1,10,0.1,0.2,11,1\nj1,5,0.2,0.1,6,1\n"
        "j2,7,0.1,0.3,8,0\nj2,inf,0.1,0.3,8,0\n"
        "j3,4,0.1,0.3,5,1\nj3,-1,0.1,0.3,5,1\n"
        "j4,3,x,0.3,5,0\n"
        "j5,3,0.1,0.3,5,0\nj5,3,0.1,0.3,5,0\n"
        "j1,1,1,1,2,1\n"
        "j6,3,0.2,0.3,5,1\n")


def test_particles_long_format(tmp_path: Path) -> None:
    path = _write(tmp_path, "jets.csv", JETS)
    out = tmp_path / "o.parquet"
    result = validate_file(path, modality="particles", mapping=ColumnMapping(target_cols=("label",)),
                           policy="skip", output=out, options=LENIENT)
    assert _codes(result) == [(5, "not_finite"), (7, "non_positive"), (8, "not_numeric"), (11, "not_contiguous")]
    assert {p.line: p.column for p in result.problems} == {5: "pt", 7: "pt", 8: "eta", 11: "object_id"}
    table = pq.read_table(out).to_pydict()
    assert table["object_id"] == ["j1", "j5", "j6"] and table["pt"][0] == [10.0, 5.0]
    assert table[SOURCE_LINE_COL] == [2, 9, 12]
    assert result.stats["length"]["unit"] == "particles" and result.rows == 7  # j1 twice: not merged


def test_particles_parquet_list_columns(tmp_path: Path) -> None:
    path = tmp_path / "jets.parquet"
    pq.write_table(pa.table({
        "object_id": ["a", "b", "c", "d"],
        "pt": [[1.0, 2.0], [1.0], [1.0, float("nan")], [2.0, 3.0]],
        "eta": [[0.0, 0.1], [0.0, 0.1], [0.0, 0.1], [0.1, 0.2]],
        "phi": [[0.0, 0.1], [0.0], [0.0, 0.1], [0.0, 0.1]],
        "energy": [[2.0, 3.0], [2.0], [2.0, 3.0], [3.0, 4.0]],
        "label": [1, 0, 1, 0],
    }), path)
    result = validate_file(path, modality="particles", policy="skip")
    assert result.unit == "row"
    assert _codes(result) == [(2, "length_mismatch"), (3, "missing_value")]


def test_lightcurve_time_order_errors_and_minimum(tmp_path: Path) -> None:
    text = ("object_id,time,flux,flux_err,band,label\n"
            "a,2,1,0.1,g,x\na,1,2,0.1,r,x\n"
            "b,1,1,-0.1,g,y\nb,2,1,0.1,g,y\n"
            "c,1,1,0.1,g,y\n"
            "d,1,1,0.1,g,y\nd,3,1,0.1,,y\n"
            "e,1,1,0.1,g,x\ne,2,1,0.1,g,x\n")
    path = _write(tmp_path, "lc.csv", text)
    out = tmp_path / "o.parquet"
    mapping = ColumnMapping(target_cols=("label",))
    result = validate_file(path, modality="lightcurve", mapping=mapping, policy="skip", output=out, options=LENIENT)
    assert _codes(result) == [(4, "negative_error"), (6, "too_few_elements"), (8, "missing_value")]
    table = pq.read_table(out).to_pydict()
    assert table["time"][0] == [1.0, 2.0] and table["band"][0] == ["r", "g"]  # sorted by time
    assert [w["code"] for w in result.warnings if w["code"] == "times_unordered"] == ["times_unordered"]
    rejected = validate_file(path, modality="lightcurve", policy="skip", options=ValidationOptions(time_order="reject"))
    assert (3, "time_order") in _codes(rejected)


def test_long_format_missing_required_field_is_unreadable(tmp_path: Path) -> None:
    path = _write(tmp_path, "jets.csv", "object_id,pt,eta,label\nj1,1,2,0\n")
    with pytest.raises(ReadError, match="no column 'phi'"):
        validate_file(path, task="jet-tagging")


# -- tabular --------------------------------------------------------------------------------------


def test_skip_refuses_a_file_that_is_mostly_bad(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", "sequence\nACGT\nACGX\nACGX\nAC\n")
    assert validate_file(path, modality="dna", policy="skip").status == "valid"  # 2 of 4 bad: not more than half
    path.write_text("sequence\nACGT\nACGX\nACGX\nACQ\n")
    result = validate_file(path, modality="dna", policy="skip")
    assert result.status == "invalid" and result.totals["too_many_invalid"] == 1 and result.valid == 1
    lenient = validate_file(path, modality="dna", policy="skip", options=ValidationOptions(max_invalid_fraction=1.0))
    assert lenient.status == "valid"


def test_tabular_declared_numeric_columns_and_sentinels(tmp_path: Path) -> None:
    path = _write(tmp_path, "t.csv", "a,b,label\n1,x,0\n-1,2,1\n5,3,0\n7,4,1\n")
    result = validate_file(path, task="tabular-classification", policy="skip",
                           options=ValidationOptions(numeric_cols=("a",), sentinels=(-1.0,)))
    assert result.columns["numeric"] == ["a"] and result.problems == [] and result.stats["missing"] == {"a": 1}


def test_tabular_numeric_columns_and_sentinels(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i * 0.5},red,{i % 2}\n" for i in range(40))
    text = "a,b,colour,label\n" + rows + "7,abc,blue,1\n-999,NA,,0\n3,inf,red,1\n"
    path = _write(tmp_path, "t.csv", text)
    out = tmp_path / "o.parquet"
    result = validate_file(path, task="tabular-classification", policy="skip", output=out)
    assert _codes(result) == [(42, "not_numeric"), (44, "not_finite")]
    assert result.problems[0].column == "b" and result.columns["numeric"] == ["a", "b"]
    assert result.stats["missing"] == {"a": 1, "b": 1, "colour": 1}
    table = pq.read_table(out).to_pydict()
    assert table["a"][-1] is None and table["colour"][-1] is None and table["b"][3] == 1.5


# -- arguments and streaming ----------------------------------------------------------------------


def test_arguments_and_mapping_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.csv", "SMILES,y\nCCO,1\nCCN,2\n")
    result = validate_file(path, task="molecule-regression", mapping=ColumnMapping(target_cols=("y",)))
    assert result.status == "valid" and result.columns["input"] == "SMILES"  # case-insensitive default
    with pytest.raises(ReadError, match="no target column 'target'"):
        validate_file(path, task="molecule-regression")
    with pytest.raises(ValueError, match="takes smiles records"):
        validate_file(path, task="molecule-regression", modality="dna")
    with pytest.raises(ValueError, match="policy"):
        validate_file(path, modality="smiles", policy="lenient")


def test_problem_list_is_capped_but_totals_count_everything(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", "sequence\n" + "ACGX\n" * 1500)
    result = validate_file(path, modality="dna", policy="skip", options=ValidationOptions(chunk_size=256))
    assert len(result.problems) == 1000
    assert result.totals == {"invalid_character": 1500, "too_few_valid": 1, "too_many_invalid": 1}
    assert _lines(result)[:3] == [2, 3, 4] and result.status == "invalid"


_TO_BASES = bytes.maketrans(bytes(range(256)), b"ACGT" * 64)


def _dna_file(path: Path, n: int) -> None:
    rng = random.Random(0)
    with gzip.open(path, "wt", compresslevel=1) as fh:
        fh.write("sequence,label\n")
        for i in range(n):
            seq = rng.randbytes(150).translate(_TO_BASES).decode()
            fh.write(seq + ("X" if i % 1000 == 0 else "") + f",{i % 2}\n")


def test_streaming_memory_is_bounded_and_flat_in_file_size(tmp_path: Path) -> None:
    validate_file(_write(tmp_path, "warm.csv", "sequence,label\nACGT,0\nACGT,1\n"), task="dna-classification",
                  output=tmp_path / "warm.parquet")  # first-use imports (pyarrow.parquet) are not the data's memory
    peaks = {}
    for n in (10_000, 80_000):  # 8x the records (80k x 150 bases = 12 MB of sequence)
        path = tmp_path / f"d{n}.csv.gz"
        _dna_file(path, n)
        tracemalloc.start()
        result = validate_file(path, task="dna-classification", policy="skip", output=tmp_path / f"o{n}.parquet",
                               options=ValidationOptions(chunk_size=2048))
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert result.rows == n and result.invalid == n // 1000
    assert peaks[80_000] < 8 * 2**20, peaks  # well below the 12 MB of sequence text read
    assert peaks[80_000] < 1.5 * peaks[10_000], peaks  # flat: 8x the file, about the same peak


def _report_keys(report: dict[str, Any]) -> set[str]:
    return set(report)


def test_report_format(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.csv", MOLECULES)
    report = validate_file(path, task="molecule-regression", policy="skip").report()
    assert _report_keys(report) >= {"rows", "valid", "invalid", "problems", "totals", "warnings", "stats", "status"}
    assert report["problems"][0] == {"line": 4, "column": "smiles", "code": "smiles_parse",
                                     "reason": "SMILES Parse Error: unclosed ring for input: 'C1CC'", "value": "C1CC"}


def test_worker_pool_works_from_a_script_without_a_main_guard(tmp_path: Path) -> None:
    """A portal task or a user's script calls validate_file at module level; the pool must not
    re-run that module in its workers (which a spawned pool does, and then crashes)."""
    import subprocess
    import sys

    data = tmp_path / "m.csv"
    data.write_text("smiles,target\n" + "CCO,1\nc1ccccc1O,2\nC1CC,3\n" * 300)
    script = tmp_path / "check.py"
    script.write_text(
        "from mlcore.validation import ValidationOptions, validate_file\n"
        f"r = validate_file({str(data)!r}, task='molecule-regression', policy='skip',\n"
        "                  options=ValidationOptions(workers=2, chunk_size=100))\n"
        "print(r.rows, r.invalid, r.problems[0].line, [w['code'] for w in r.warnings if w['code'] == 'note'])\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(script)], cwd=root, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["900", "300", "4", "[]"]


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_pool_worker_functions_run_by_module_path_in_a_fresh_interpreter(method: str) -> None:
    """Spawn and forkserver children find the pool's initializer and task by their module path
    (`mlcore.validation.streaming`) and give the chunk result this process gives."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from mlcore.readers import Chunk
    from mlcore.validation import _Plan, validate_chunk
    from mlcore.validation.streaming import _worker_chunk, _worker_init

    assert _worker_init.__module__ == _worker_chunk.__module__ == "mlcore.validation.streaming"
    plan = _Plan("smiles", "sequence", "smiles", (), None, None, None, None)
    chunk = Chunk([2, 3, 4, 5], {"smiles": ["OCC", "C1CC", "c1ccccc1O", "CCO"]})
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context(method),
                             initializer=_worker_init, initargs=(plan, 10)) as pool:
        remote = pool.submit(_worker_chunk, chunk).result(timeout=120)
    local = validate_chunk(plan, chunk, max_problems=10)
    assert remote.out == local.out == {SOURCE_LINE_COL: [2, 4, 5], "smiles": ["CCO", "Oc1ccccc1", "CCO"]}
    assert [p[:3] for p in remote.problems] == [(3, "smiles", "smiles_parse")]
    assert remote.keys.tolist() == local.keys.tolist() and remote.keys[0] == remote.keys[2]


def test_tabular_report_summarizes_every_feature(tmp_path: Path) -> None:
    rows = "".join(f"{20 + i % 50},{['red', 'blue', 'NA'][i % 3]},{'' if i % 10 == 0 else i * 0.5},{i % 2}\n"
                   for i in range(300))
    path = _write(tmp_path, "t.csv", "age,color,score,label\n" + rows)
    result = validate_file(path, task="tabular-classification", mapping=ColumnMapping(target_cols=("label",)),
                           options=ValidationOptions(chunk_size=64))
    assert result.ok
    features = result.report()["stats"]["features"]
    assert list(features) == ["age", "color", "score"]
    age, color, score = features["age"], features["color"], features["score"]
    assert age["type"] == "numeric" and (age["min"], age["max"], age["missing_share"]) == (20.0, 69.0, 0.0)
    assert sum(age["histogram"]["counts"]) == 300 and age["mean"] == pytest.approx(44.5)
    assert score["missing"] == 30 and score["missing_share"] == pytest.approx(0.1) and score["count"] == 270
    assert color["type"] == "categorical" and color["distinct"] == 2 and color["missing_share"] == pytest.approx(1 / 3)
    assert sorted(color["top"]) == [["blue", 100], ["red", 100]]


def test_categorical_feature_counts_stay_bounded(tmp_path: Path) -> None:
    path = _write(tmp_path, "ids.csv", "code,y\n" + "".join(f"c{i},{i % 2}\n" for i in range(3000)))
    result = validate_file(path, task="tabular-classification", mapping=ColumnMapping(target_cols=("y",)),
                           options=ValidationOptions(numeric_cols=()))
    code = result.report()["stats"]["features"]["code"]
    # 3000 distinct values: the first 1000 are told apart, the rest only counted.
    assert code["distinct"] == 1000 and code["distinct_at_least"] and code["count"] == 3000 and len(code["top"]) == 10


def test_a_split_column_without_validation_rows_is_warned_about(tmp_path: Path) -> None:
    rows = "".join(f"ACGTACGT{'ACGT'[i % 4]},{i % 2},{'test' if i >= 16 else 'train'}\n" for i in range(20))
    path = _write(tmp_path, "s.csv", "sequence,label,part\n" + rows)
    result = validate_file(path, task="dna-classification", mapping=ColumnMapping(split_col="part"))
    report = result.report()
    assert result.ok and report["stats"]["split"] == {"train": 16, "val": 0, "test": 4}
    assert [w["code"] for w in report["warnings"] if w["code"] == "no_validation_rows"] == ["no_validation_rows"]
    with_val = _write(tmp_path, "v.csv", "sequence,label,part\n" + rows.replace("train\n", "val\n", 2))
    report = validate_file(with_val, task="dna-classification", mapping=ColumnMapping(split_col="part")).report()
    assert report["stats"]["split"]["val"] == 2 and "no_validation_rows" not in [w["code"] for w in report["warnings"]]
