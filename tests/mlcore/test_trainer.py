"""Tests for mlcore/trainer.py and mlcore/checkpoint.py: learning, determinism, exact resume,
early stopping, cancellation, callbacks, mixed precision, predict order, cross-validation.

Every test trains the project's real encoder (mlcore.model, a one-layer 16-wide config) on a small
synthetic task: sequences of tokens 1..11, label 1 when their mean is above 6. Dropout stays on so
that the RNG bookkeeping (determinism, resume) is actually exercised.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from mlcore.checkpoint import CHECKPOINT_NAME, load_checkpoint
from mlcore.metrics import compute_metrics
from mlcore.model import ClassificationHead, Encoder, EncoderConfig, TokenClassificationHead
from mlcore.trainer import (
    Callback,
    TrainConfig,
    TrainState,
    cross_validate,
    kfold_indices,
    param_groups,
    predict,
    resolve_precision,
    train,
    warmup_cosine,
)

# ----------------------------------------------------------------------------- toy task (also used by test_ddp)

Example = tuple[np.ndarray, Any]


class ToyModel(nn.Module):
    """Embedding → mlcore Encoder → head; sequence classification or per-token labelling."""

    def __init__(self, n_out: int = 2, per_token: bool = False, d: int = 16) -> None:
        super().__init__()
        self.per_token = per_token
        self.emb = nn.Embedding(12, d, padding_idx=0)
        self.encoder = Encoder(EncoderConfig(d_model=d, n_layers=1, n_heads=2, d_ff=32, max_len=64))
        self.head = TokenClassificationHead(d, n_out) if per_token else ClassificationHead(d, n_out)

    def forward(self, input_ids: Tensor, labels: Tensor | None = None) -> Any:
        enc = self.encoder(self.emb(input_ids), pad_mask=input_ids != 0)
        return self.head(enc.tokens if self.per_token else enc.pooled, labels)


def make_data(n: int, seed: int = 0, per_token: bool = False) -> list[Example]:
    rng = np.random.default_rng(seed)
    data = []
    for _ in range(n):
        tokens = rng.integers(1, 12, int(rng.integers(3, 24)))
        label = (tokens > 6).astype(np.int64) if per_token else int(tokens.mean() > 6)
        data.append((tokens, label))
    return data


def collate(examples: list[Example]) -> dict[str, Tensor]:
    width = max(len(t) for t, _ in examples)
    ids = torch.zeros(len(examples), width, dtype=torch.long)
    per_token = isinstance(examples[0][1], np.ndarray)
    labels = torch.full((len(examples), width), -100, dtype=torch.long) if per_token else torch.zeros(
        len(examples), dtype=torch.long)
    for i, (tokens, label) in enumerate(examples):
        ids[i, : len(tokens)] = torch.as_tensor(tokens)
        if per_token:
            labels[i, : len(tokens)] = torch.as_tensor(label)
        else:
            labels[i] = label
    return {"input_ids": ids, "labels": labels}


def length(example: Example) -> int:
    return len(example[0])


def evaluate(logits: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
    return compute_metrics("multiclass", labels, logits)


def fit(model: nn.Module, config: TrainConfig, train_set: list, val_set: list | None, **kwargs: Any):
    return train(model=model, train_set=train_set, val_set=val_set, collate=collate, length=length,
                 evaluate=kwargs.pop("evaluate", evaluate), primary_metric=kwargs.pop("primary_metric", "accuracy"),
                 greater_is_better=kwargs.pop("greater_is_better", True), config=config, **kwargs)


def fresh_model(seed: int = 0, **kwargs: Any) -> ToyModel:
    torch.manual_seed(seed)
    return ToyModel(**kwargs)


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


DATA = make_data(160)
TRAIN, VAL = DATA[:128], DATA[128:]
FAST = dict(batch_size=16, lr=1e-2, bucket_chunk=64)  # tiny model: a high lr learns in a few epochs


def scripted_metric(name: str, values: list[float]) -> Any:
    """An `evaluate` that ignores the predictions and returns the next of `values` under `name`."""
    it = iter(values)

    def evaluate_scripted(logits: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
        return {name: next(it)}

    return evaluate_scripted


class Crash(Exception):
    """Stands in for a worker dying: raised from a callback after a chosen checkpoint."""


class Recorder(Callback):
    def __init__(self, stop_after_steps: int | None = None, crash_after_epoch: int | None = None,
                 model: nn.Module | None = None) -> None:
        self.starts: list[TrainState] = []
        self.steps: list[TrainState] = []
        self.epochs: list[dict[str, float]] = []
        self.checkpoints: list[Path] = []
        self.snapshots: list[dict[str, Tensor]] = []
        self.stop_after_steps, self.crash_after_epoch, self.model = stop_after_steps, crash_after_epoch, model

    def on_train_start(self, state: TrainState) -> None:
        self.starts.append(copy.copy(state))

    def on_step_end(self, state: TrainState) -> None:
        self.steps.append(copy.copy(state))

    def on_epoch_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        self.epochs.append(dict(metrics))
        if self.model is not None:
            self.snapshots.append(copy.deepcopy(self.model.state_dict()))

    def should_stop(self) -> bool:
        return self.stop_after_steps is not None and len(self.steps) >= self.stop_after_steps

    def on_checkpoint(self, path: Path) -> None:
        self.checkpoints.append(Path(path))
        if self.crash_after_epoch is not None and len(self.checkpoints) == self.crash_after_epoch:
            raise Crash


# ----------------------------------------------------------------------------- tests


def test_training_learns_and_reports_history() -> None:
    result = fit(fresh_model(), TrainConfig(epochs=6, patience=None, **FAST), TRAIN, VAL)
    history = result.history
    assert [row["epoch"] for row in history] == list(range(1, 7))
    assert {"train_loss", "val_loss", "val_accuracy", "val_roc_auc", "lr", "time"} <= history[0].keys()
    assert history[-1]["train_loss"] < 0.6 * history[0]["train_loss"]
    assert result.best_metrics["accuracy"] >= 0.85
    assert result.best_metrics["accuracy"] == max(row["val_accuracy"] for row in history)
    assert history[result.best_epoch - 1]["val_accuracy"] == result.best_metrics["accuracy"]
    assert result.stopped_reason == "completed"
    assert history[-1]["lr"] < 1e-3 * FAST["lr"]  # cosine decayed to ~0


def test_same_seed_gives_identical_weights_and_other_seed_differs() -> None:
    config = TrainConfig(epochs=2, patience=None, **FAST)
    a = fit(fresh_model(), config, TRAIN, VAL).model
    b = fit(fresh_model(), config, TRAIN, VAL).model
    assert_same_weights(a, b)
    c = fit(fresh_model(), TrainConfig(epochs=2, patience=None, **{**FAST, "seed": 1}), TRAIN, VAL).model
    assert not torch.equal(a.head.out.weight, c.head.out.weight)


@pytest.mark.parametrize("average_best", [1, 3])
def test_exact_resume_is_bit_identical(tmp_path: Path, average_best: int) -> None:
    # patience 3 with a noisy validation set: the early-stopping counter and best weights matter; with
    # averaging, so do the ranked epochs' weights carried by the checkpoint.
    config = TrainConfig(epochs=5, patience=3, average_best=average_best, **FAST)
    full = fit(fresh_model(), config, TRAIN, VAL[:12], checkpoint_dir=tmp_path / "full")

    crashing = Recorder(crash_after_epoch=2)
    with pytest.raises(Crash):
        fit(fresh_model(), config, TRAIN, VAL[:12], checkpoint_dir=tmp_path / "run", callbacks=[crashing])
    assert load_checkpoint(tmp_path / "run")["epoch"] == 2
    # A different initialization proves every weight comes back from the checkpoint.
    resumed_cb = Recorder()
    resumed = fit(fresh_model(seed=123), config, TRAIN, VAL[:12], checkpoint_dir=tmp_path / "run",
                  resume_from=tmp_path / "run", callbacks=[resumed_cb])

    assert_same_weights(full.model, resumed.model)
    assert resumed.best_epoch == full.best_epoch and resumed.stopped_reason == full.stopped_reason
    assert resumed.averaged_epochs == full.averaged_epochs
    assert len(full.averaged_epochs) == (0 if average_best == 1 else min(3, len(full.history) // 2))
    assert average_best == 1 or len(full.averaged_epochs) >= 2  # the averaging case really averages
    drop_time = [{k: v for k, v in row.items() if k != "time"} for row in resumed.history]
    assert drop_time == [{k: v for k, v in row.items() if k != "time"} for row in full.history]
    # Training continued where it stopped: the first resumed step is the one after epoch 2.
    steps_per_epoch = math.ceil(len(TRAIN) / FAST["batch_size"])
    assert resumed_cb.starts[0].step == 2 * steps_per_epoch
    assert resumed_cb.steps[0].step == 2 * steps_per_epoch + 1
    # The last checkpoints also agree (optimizer moments included).
    a, b = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "run")
    for key in a["optimizer"]["state"]:
        assert torch.equal(a["optimizer"]["state"][key]["exp_avg_sq"], b["optimizer"]["state"][key]["exp_avg_sq"])


def test_resume_refuses_a_different_config(tmp_path: Path) -> None:
    fit(fresh_model(), TrainConfig(epochs=1, **FAST), TRAIN, None, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="lr"):
        fit(fresh_model(), TrainConfig(epochs=2, **{**FAST, "lr": 0.5}), TRAIN, None, resume_from=tmp_path)


def test_checkpoint_is_self_describing_and_atomic(tmp_path: Path) -> None:
    recorder = Recorder()
    meta = {"task": "toy", "encoder": {"d_model": 16}, "score": np.float64(0.5)}
    fit(fresh_model(), TrainConfig(epochs=2, **FAST), TRAIN, VAL, checkpoint_dir=tmp_path, callbacks=[recorder],
        model_meta=meta)
    assert recorder.checkpoints == [tmp_path / CHECKPOINT_NAME] * 2
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]  # no temp file left behind
    ckpt = load_checkpoint(tmp_path / CHECKPOINT_NAME)  # weights_only: no pickled code
    assert ckpt["config"]["lr"] == FAST["lr"] and ckpt["model_meta"] == {**meta, "score": 0.5}
    assert ckpt["epoch"] == 2 and len(ckpt["history"]) == 2 and ckpt["rng"][0]["torch"].dtype == torch.uint8
    model = ToyModel()
    model.load_state_dict(ckpt["model"])


def test_early_stopping_restores_best_weights() -> None:
    # A validation metric that only gets worse after epoch 2: patience 2 stops after epoch 4.
    scores = iter([0.5, 0.9, 0.8, 0.7, 0.6, 0.5])

    def scripted(logits: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
        return {"score": next(scores)}

    model = fresh_model()
    recorder = Recorder(model=model)
    result = fit(model, TrainConfig(epochs=6, patience=2, **FAST), TRAIN, VAL, evaluate=scripted,
                 primary_metric="score", callbacks=[recorder])
    assert result.stopped_reason == "early_stopping"
    assert len(result.history) == 4 and result.best_epoch == 2 and result.best_metrics["score"] == 0.9
    assert not torch.equal(recorder.snapshots[1]["head.out.weight"], recorder.snapshots[3]["head.out.weight"])
    for key, value in recorder.snapshots[1].items():
        assert torch.equal(result.model.state_dict()[key], value), key


def test_lower_is_better_and_nan_never_improves() -> None:
    scores = iter([float("nan"), 3.0, 2.0, 2.5, float("nan")])

    def scripted(logits: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
        return {"rmse": next(scores)}

    result = fit(fresh_model(), TrainConfig(epochs=5, patience=None, **FAST), TRAIN, VAL, evaluate=scripted,
                 primary_metric="rmse", greater_is_better=False)
    assert result.best_epoch == 3 and result.best_metrics["rmse"] == 2.0


def test_a_tie_on_the_metric_goes_to_the_lower_validation_loss() -> None:
    # Small validation sets tie often (macro-F1 on 18 records): the tie must not freeze the first epoch.
    scores = iter([0.5, 0.9, 0.9, 0.9, 0.9, 0.9])

    def scripted(logits: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
        return {"score": next(scores)}

    result = fit(fresh_model(), TrainConfig(epochs=6, patience=3, **FAST), TRAIN, VAL, evaluate=scripted,
                 primary_metric="score")
    losses = [row["val_loss"] for row in result.history]
    tied = range(1, len(losses))  # epochs 2.. all score 0.9
    best = min(tied, key=lambda i: losses[i]) + 1
    assert best > 2, f"the toy model's validation loss should fall after epoch 2: {losses}"
    assert result.best_epoch == best and result.best_metrics["loss"] == losses[best - 1]


def test_average_best_returns_the_mean_of_the_k_best_epochs_weights() -> None:
    # Epochs 2, 6 and 4 score best; the last value is the validation of their average.
    scripted = scripted_metric("score", [0.5, 0.9, 0.6, 0.8, 0.7, 0.85, 0.95])
    model = fresh_model()
    recorder = Recorder(model=model)
    result = fit(model, TrainConfig(epochs=6, patience=None, average_best=3, **FAST), TRAIN, VAL,
                 evaluate=scripted, primary_metric="score", callbacks=[recorder])
    assert result.averaged_epochs == [2, 6, 4]
    assert result.best_epoch == 2  # the best single epoch is still reported
    assert result.best_metrics["score"] == 0.95  # the returned weights' own validation
    snaps = [recorder.snapshots[e - 1] for e in (2, 6, 4)]
    for key, value in result.model.state_dict().items():
        expected = sum(s[key].double() for s in snaps) / 3
        assert torch.allclose(value.double(), expected, rtol=0, atol=1e-6), key
    assert not torch.equal(result.model.head.out.weight, snaps[0]["head.out.weight"])  # not the best epoch's


def test_average_best_skips_undefined_metrics_and_averages_at_most_half_the_epochs() -> None:
    scripted = scripted_metric("score", [float("nan"), 0.7, float("nan"), float("nan")])
    model = fresh_model()
    recorder = Recorder(model=model)
    result = fit(model, TrainConfig(epochs=4, patience=None, average_best=5, **FAST), TRAIN, VAL,
                 evaluate=scripted, primary_metric="score", callbacks=[recorder])
    assert result.averaged_epochs == [] and result.best_epoch == 2  # one defined epoch: nothing to average
    for key, value in recorder.snapshots[1].items():
        assert torch.equal(result.model.state_dict()[key], value), key
    # At most half the epochs run are averaged: 4 epochs with average_best 5 average the best 2.
    scripted = scripted_metric("score", [0.6, 0.7, 0.9, 0.8, 0.95])
    result = fit(fresh_model(), TrainConfig(epochs=4, patience=None, average_best=5, **FAST), TRAIN, VAL,
                 evaluate=scripted, primary_metric="score")
    assert result.averaged_epochs == [3, 4] and result.best_metrics["score"] == 0.95
    with pytest.raises(ValueError, match="average_best"):
        TrainConfig(average_best=0)


def test_callbacks_progress_and_cancellation() -> None:
    recorder = Recorder()
    config = TrainConfig(epochs=2, **FAST)
    fit(fresh_model(), config, TRAIN, VAL, callbacks=[recorder])
    total = 2 * math.ceil(len(TRAIN) / FAST["batch_size"])
    assert len(recorder.starts) == 1 and recorder.starts[0].total_steps == total
    assert [s.step for s in recorder.steps] == list(range(1, total + 1))
    assert recorder.steps[-1].fraction == 1.0 and recorder.steps[-1].examples_seen == 2 * len(TRAIN)
    assert all(math.isfinite(s.loss) for s in recorder.steps)
    assert all(s.lr > 0 for s in recorder.steps[:-1]) and recorder.steps[-1].lr == pytest.approx(0.0)
    assert [row["epoch"] for row in recorder.epochs] == [1, 2]

    stopper = Recorder(stop_after_steps=3)
    result = fit(fresh_model(), TrainConfig(epochs=50, **FAST), TRAIN, VAL, callbacks=[stopper])
    assert result.stopped_reason == "cancelled" and len(stopper.steps) == 3 and result.history == []


def test_no_weight_decay_on_biases_norms_and_embeddings() -> None:
    model = ToyModel()
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert "head.out.weight" in decayed and "emb.weight" not in decayed
    assert not any(n.endswith("bias") or ".ln" in n or "norm" in n for n in decayed)
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_warmup_then_cosine_schedule() -> None:
    f = warmup_cosine(total_steps=100, warmup_steps=10)
    ramp = [f(s) for s in range(10)]
    assert ramp == sorted(ramp) and ramp[0] == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.5) and f(100) == pytest.approx(0.0)
    assert all(f(s) >= f(s + 1) for s in range(10, 100))


def test_bf16_autocast_on_cpu_trains() -> None:
    assert resolve_precision("bf16", torch.device("cpu")) == (torch.bfloat16, False)
    assert resolve_precision("fp32", torch.device("cpu")) == (None, False)
    with pytest.raises(ValueError):
        resolve_precision("fp16", torch.device("cpu"))
    result = fit(fresh_model(), TrainConfig(epochs=4, patience=None, precision="bf16", **FAST), TRAIN, VAL)
    assert result.history[-1]["train_loss"] < 0.8 * result.history[0]["train_loss"]
    assert all(p.dtype == torch.float32 for p in result.model.parameters())  # master weights stay fp32


def test_predict_keeps_order_and_trims_tokens() -> None:
    data = make_data(20, seed=3, per_token=True)
    model = fresh_model(n_out=2, per_token=True).eval()
    preds = predict(model=model, dataset=data, collate=collate, length=length, batch_size=4, device="cpu")
    assert len(preds) == len(data)
    with torch.no_grad():
        for (tokens, _), pred in zip(data, preds):
            alone = model(torch.as_tensor(tokens)[None]).logits[0].numpy()  # (T, C), no padding at all
            assert pred.shape == (len(tokens), 2) and pred.dtype == np.float32
            np.testing.assert_allclose(pred, alone, atol=1e-5)


def test_token_labels_train_with_trimmed_validation() -> None:
    data = make_data(96, seed=4, per_token=True)

    def token_eval(logits: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
        assert all(lo.shape[0] == la.shape[0] for lo, la in zip(logits, labels))
        assert all((la != -100).all() for la in labels)  # trimmed: no padding positions left
        return compute_metrics("token_labels", labels, logits)

    result = fit(fresh_model(per_token=True), TrainConfig(epochs=4, patience=None, **FAST), data[:72], data[72:],
                 evaluate=token_eval, primary_metric="token_accuracy")
    assert result.best_metrics["token_accuracy"] > 0.9


def test_kfold_indices_partition_and_stratify() -> None:
    folds = kfold_indices(23, 4, seed=1)
    assert sorted(np.concatenate(folds).tolist()) == list(range(23))
    assert sorted(len(f) for f in folds) == [5, 6, 6, 6]
    labels = np.array([0] * 16 + [1] * 8)
    for fold in kfold_indices(24, 4, stratify=labels):
        assert np.bincount(labels[fold]).tolist() == [4, 2]


def test_cross_validate_reports_per_fold_and_mean_std() -> None:
    cv = cross_validate(k=3, model_factory=ToyModel, dataset=DATA, collate=collate, length=length,
                        evaluate=evaluate, primary_metric="accuracy", greater_is_better=True,
                        config=TrainConfig(epochs=6, patience=3, **FAST), stratify=[y for _, y in DATA])
    assert len(cv.folds) == 3 and len(cv.best_epochs) == 3
    accs = [f["accuracy"] for f in cv.folds]
    assert cv.mean["accuracy"] == pytest.approx(np.mean(accs))
    assert cv.std["accuracy"] == pytest.approx(np.std(accs, ddof=1))
    assert cv.mean["accuracy"] > 0.7


class EpochAwareList(list):
    """A dataset that augments per epoch would key its randomness on the epoch it is told."""

    def __init__(self, items: list) -> None:
        super().__init__(items)
        self.told: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.told.append(epoch)


def test_train_set_is_told_each_epoch_also_after_resume(tmp_path: Path) -> None:
    config = TrainConfig(epochs=3, **FAST)
    first = EpochAwareList(TRAIN)
    with pytest.raises(Crash):
        fit(fresh_model(), config, first, None, checkpoint_dir=tmp_path, callbacks=[Recorder(crash_after_epoch=1)])
    assert first.told == [0]
    second = EpochAwareList(TRAIN)
    fit(fresh_model(), config, second, None, resume_from=tmp_path)
    assert second.told == [1, 2]
