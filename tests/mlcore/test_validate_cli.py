"""The validate command as a user runs it (a subprocess): exit codes 0 / 1 / 2, output, report.

Run through `python -m mlcore.validate_cli`, the module `python -m mlcore validate` routes to.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[2]
# file lines: 1 header; 4 and 8 broken SMILES, 6 a non-numeric target
MOLECULES = "smiles,target\nCCO,1.0\nc1ccccc1,2.0\nC1CC,3.0\nCC(=O)O,0.5\nCCN,x\nCCCl,1.1\nC(C)(C)(C)(C)C,0.2\nCCOC,0.9\n"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlcore.validate_cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_skip_is_valid_lists_lines_and_writes_the_report(tmp_path: Path) -> None:
    data = tmp_path / "m.csv"
    data.write_text(MOLECULES)
    report, out = tmp_path / "r.json", tmp_path / "canon.parquet"
    proc = _run("--task", "molecule-regression", "--data", str(data), "--policy", "skip", "--report", str(report),
                "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "smiles_parse: 1" in proc.stdout and "target_not_numeric: 1" in proc.stdout
    assert "smiles_sanitize: 1" in proc.stdout
    d = json.loads(report.read_text())
    assert (d["rows"], d["valid"], d["invalid"], d["status"]) == (8, 5, 3, "valid")
    assert [(p["line"], p["column"], p["code"]) for p in d["problems"]] == [
        (4, "smiles", "smiles_parse"), (6, "target", "target_not_numeric"), (8, "smiles", "smiles_sanitize")]
    assert d["totals"] == {"smiles_parse": 1, "target_not_numeric": 1, "smiles_sanitize": 1}
    assert set(d["stats"]) >= {"length", "target", "duplicates"}
    assert pq.read_table(out).column("source_line").to_pylist() == [2, 3, 5, 7, 9]


def test_strict_exits_1_on_a_bad_file_and_0_on_a_good_one(tmp_path: Path) -> None:
    data = tmp_path / "m.csv"
    data.write_text(MOLECULES)
    report = tmp_path / "s.json"
    proc = _run("--task", "molecule-regression", "--data", str(data), "--policy", "strict", "--report", str(report))
    assert proc.returncode == 1 and json.loads(report.read_text())["status"] == "invalid"
    good = tmp_path / "good.tsv"
    good.write_text("id\tseq\ty\nA\tACGT\t0\nB\tGGCC\t1\nC\tTTAA\t0\nD\tAACC\t1\n")
    proc = _run("--task", "dna-classification", "--data", str(good), "--input-col", "seq", "--target-col", "y",
                "--id-col", "id")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 records, 4 valid, 0 invalid" in proc.stdout


def test_unreadable_files_exit_2_with_a_one_line_message(tmp_path: Path) -> None:
    binary = tmp_path / "img.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    wrong_col = tmp_path / "m.csv"
    wrong_col.write_text("smiles,value\nCCO,1\n")
    cases = [
        (["--modality", "smiles", "--data", str(tmp_path / "absent.csv")], "absent.csv: file not found"),
        (["--modality", "smiles", "--data", str(binary)], "img.csv line 3: binary file"),
        (["--task", "molecule-regression", "--data", str(wrong_col)], "m.csv: no target column 'target'"),
        (["--modality", "dna", "--data", str(wrong_col)], "m.csv: no input column 'sequence'"),
    ]
    for args, message in cases:
        report = tmp_path / "r.json"
        proc = _run(*args, "--report", str(report))
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], proc.stderr
        assert json.loads(report.read_text())["status"] == "unreadable"


def test_task_and_modality_are_exclusive_and_one_is_required(tmp_path: Path) -> None:
    data = tmp_path / "m.csv"
    data.write_text(MOLECULES)
    assert _run("--data", str(data)).returncode == 2
    assert _run("--task", "molecule-regression", "--modality", "smiles", "--data", str(data)).returncode == 2
