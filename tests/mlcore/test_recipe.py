"""The recipe as workers use it: cancellation through a callback, and an exact resume from the
epoch checkpoint even with on-the-fly augmentation (reverse complements drawn per epoch)."""

from __future__ import annotations

from pathlib import Path

import torch

from mlcore.recipe import RecipeConfig, recipe_run
from mlcore.trainer import Callback, TrainState
from tests.mlcore import synthetic


class StopAfterFirstEpoch(Callback):
    def __init__(self) -> None:
        self.done = False

    def on_epoch_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        self.done = True

    def should_stop(self) -> bool:
        return self.done


def test_cancel_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    seqs, labels = synthetic.dna(48, seed=2)
    data = synthetic.write_csv(tmp_path / "d.csv", ["sequence", "label"], list(zip(seqs, labels)))

    def config(name: str) -> RecipeConfig:
        return RecipeConfig(task="dna-classification", data=data, out=tmp_path / name, device="cpu",
                            hyperparameters={"epochs": 2, "augment": True, "batch_size": 8}, explain_samples=0)

    full = recipe_run(config("full"))

    cancelled = recipe_run(config("part"), callbacks=[StopAfterFirstEpoch()], checkpoint_dir=tmp_path / "ckpt")
    assert cancelled.train_result.stopped_reason == "cancelled"
    assert not (tmp_path / "part" / "model").exists()  # a cancelled run writes no model
    resumed = recipe_run(config("part"), resume_from=tmp_path / "ckpt")

    assert resumed.train_result.stopped_reason == full.train_result.stopped_reason
    full_state, resumed_state = full.model.state_dict(), resumed.model.state_dict()
    for name, tensor in full_state.items():
        assert torch.equal(tensor, resumed_state[name]), name
    assert resumed.metrics["test"] == full.metrics["test"]
