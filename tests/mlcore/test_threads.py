"""mlcore.threads: the one rule for torch's CPU threads (CLI and workers), its overrides, and the CLI
recording what it chose in metrics.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlcore.threads import THREADS_ENV, cores_available, preset_width, spin_off, threads_choose
from tests.mlcore import synthetic

ROOT = Path(__file__).resolve().parents[2]


def test_a_tiny_model_gets_one_thread_however_many_cores() -> None:
    for cores in (1, 2, 16, 64):
        choice = threads_choose(d_model=preset_width("tiny"), environ={}, cores=cores)
        assert (choice.intra, choice.inter) == (1, 1), cores


def test_wider_models_get_more_threads_up_to_their_share_of_the_cores() -> None:
    assert threads_choose(d_model=preset_width("small"), environ={}, cores=16).intra == 2
    assert threads_choose(d_model=preset_width("base"), environ={}, cores=16).intra == 4
    assert threads_choose(d_model=1024, environ={}, cores=16).intra == 16
    # A worker with 4 pool processes on 16 cores: 4 each, whatever the width.
    assert threads_choose(d_model=1024, environ={}, cores=16, sharing=4).intra == 4
    # More processes than cores: still one thread each, never zero.
    assert threads_choose(d_model=1024, environ={}, cores=2, sharing=8).intra == 1
    # The base preset on a 2-core machine: its share, not its width.
    assert threads_choose(d_model=preset_width("base"), environ={}, cores=2).intra == 2


def test_prediction_of_an_unknown_size_gets_one_thread() -> None:
    assert threads_choose(d_model=None, environ={}, cores=8).intra == 1


def test_overrides_in_order_of_precedence() -> None:
    env = {THREADS_ENV: "3,2", "OMP_NUM_THREADS": "5"}
    choice = threads_choose(d_model=64, environ=env, cores=8)
    assert (choice.intra, choice.inter, choice.reason) == (3, 2, THREADS_ENV)
    assert threads_choose(d_model=64, environ=env, cores=8, requested=6).intra == 6  # --threads wins
    assert threads_choose(d_model=64, environ={THREADS_ENV: "4"}, cores=8).inter == 1
    omp = threads_choose(d_model=64, environ={"OMP_NUM_THREADS": "5"}, cores=8)
    assert (omp.intra, omp.reason) == (5, "OMP_NUM_THREADS")


@pytest.mark.parametrize("value", ["0", "two", "2,0", "-1"])
def test_a_bad_override_names_the_variable(value: str) -> None:
    with pytest.raises(ValueError, match=THREADS_ENV):
        threads_choose(d_model=64, environ={THREADS_ENV: value}, cores=8)


def test_cores_are_the_affinity_mask_not_the_machine() -> None:
    assert cores_available() == len(os.sched_getaffinity(0))


def test_spin_off_keeps_a_value_already_set() -> None:
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    spin_off(env)
    assert env == {"OMP_WAIT_POLICY": "ACTIVE", "KMP_BLOCKTIME": "0"}


def test_the_cli_records_the_threads_it_chose(tmp_path: Path) -> None:
    """A tiny run from the CLI on this machine: one intra-op and one inter-op thread, OpenMP threads
    that sleep, and why, in metrics.json's environment; LABFORMER_TORCH_THREADS overrides it."""
    seqs, labels = synthetic.dna(60, seed=2)
    data = synthetic.write_csv(tmp_path / "d.csv", ["sequence", "label"], list(zip(seqs, labels)))
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", THREADS_ENV)}
    env["PYTHONPATH"] = str(ROOT)

    def train(out: str, **extra: str) -> dict:
        proc = subprocess.run(
            [sys.executable, "-m", "mlcore", "train", "--task", "dna-classification", "--data", str(data),
             "--preset", "tiny", "--epochs", "1", "--no-progress", "--explain-samples", "1", "--out", str(tmp_path / out)],
            capture_output=True, text=True, env={**env, **extra}, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads((tmp_path / out / "metrics.json").read_text())["environment"]

    chosen = train("auto")
    assert (chosen["threads"], chosen["interop_threads"]) == (1, 1)
    assert chosen["omp_wait_policy"] == "PASSIVE" and chosen["cores"] == cores_available()
    assert chosen["threads_reason"].startswith("d_model 64")
    forced = train("forced", **{THREADS_ENV: "2,2"})
    assert (forced["threads"], forced["interop_threads"], forced["threads_reason"]) == (2, 2, THREADS_ENV)
