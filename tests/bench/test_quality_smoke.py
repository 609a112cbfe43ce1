"""Smoke test for bench/quality.py: one small real dataset, one epoch, the output's structure."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("bench_quality", ROOT / "bench" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def test_one_dataset_one_epoch(quality, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "wine-cultivars" in {d.key for d in quality.real_datasets()}
    assert all(not d.synthetic for d in quality.real_datasets())
    assert quality.main(["--datasets", "wine-cultivars", "--max-epochs", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    assert list(summary) == ["wine-cultivars"]
    row = summary["wine-cultivars"]
    assert row["metric"] == "macro_f1" and row["task"] == "tabular-classification"
    assert row["greater_is_better"] is True
    assert 0.0 <= row["model"] <= 1.0 and 0.0 <= row["baseline"] <= 1.0


def test_both_sides_see_the_same_split(quality, tmp_path: Path) -> None:
    spec = quality.DEMO_DATASETS["wine-cultivars"]
    path = quality.dataset_prepare(spec, tmp_path, seed=0)
    again = quality.dataset_prepare(spec, tmp_path / "again", seed=0)
    assert path.read_bytes() == again.read_bytes()  # seeded: the same split every run
    table = quality._read(spec, path, split_col=quality.SPLIT_COL)
    parts = [r.split for r in table.records]
    assert {p: parts.count(p) for p in set(parts)} == {"train": 142, "val": 18, "test": 18}
    assert quality.SPLIT_COL not in table.feature_cols  # the split column is never a feature
