"""The training loop every Labformer job runs: `train`, `predict`, `cross_validate`.

Model contract: `out = model(**collate(examples))` with `out.loss` (a scalar when the batch holds
`labels`) and `out.logits` ((B, C) / (B,) pooled, or (B, T, C) per token). The trainer knows
nothing about modalities or tasks; the caller passes `collate`, `length` (tokens per example, for
bucketing and for trimming per-token outputs) and `evaluate` (per-example logits and labels → metrics).

What `train` does, in order: AdamW (no weight decay on biases, norms, embeddings), linear warmup
then cosine decay per step, gradient clipping, optional autocast (bf16 / fp16 with GradScaler),
length-bucketed batches (`mlcore.sampler`), validation each epoch with early stopping on the
primary metric and best-weights restore (or the average of the best epochs' weights, below),
callbacks (rank 0 only), a checkpoint every epoch (`mlcore.checkpoint`) and an exact resume from it,
DDP under torchrun (`mlcore.distributed`).

Averaging the best epochs (`TrainConfig.average_best` = k > 1): the weights of the k epochs with the
best validation metric are kept, and at the end their uniform average (of at most half the epochs
run, best first: a short run's first epochs are far from where it ends) replaces the single best
epoch's (a "soup" of checkpoints from one run, in the spirit of stochastic weight averaging). On the
small tables of bench/quality.py it was the one change that helped across seeds (bench/README.md,
"Quality"). The average is kept whatever its validation metric: the best single epoch's metric is
the maximum over noisy epochs and biased upwards, so comparing the two on the same validation set
would favour the single epoch by construction. `TrainResult.averaged_epochs` names the epochs used.
The ranked epochs' weights stay in memory (CPU) and travel in each checkpoint, so a checkpoint holds
up to k + 1 copies of the weights (the `base` preset: ~13 MB each).

Determinism: all randomness comes from the seeded python / numpy / torch generators (saved in
checkpoints) and from the sampler, which is a pure function of (seed, epoch). On CPU the same seed
and the same initial weights give bit-identical weights, and a run resumed from epoch k's
checkpoint ends bit-identical to one that never stopped.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mlcore import distributed as dist_utils
from mlcore.checkpoint import CHECKPOINT_NAME, capture_rng, load_checkpoint, restore_rng, save_checkpoint
from mlcore.sampler import BucketBatchSampler, eval_batches

__all__ = ["CVResult", "Callback", "TrainConfig", "TrainResult", "TrainState", "cross_validate", "kfold_indices",
           "param_groups", "predict", "resolve_device", "resolve_precision", "train", "warmup_cosine"]

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
STOP_COMPLETED, STOP_EARLY, STOP_CANCELLED = "completed", "early_stopping", "cancelled"

Collate = Callable[[list], dict[str, Tensor]]
Evaluate = Callable[[list[np.ndarray], list[np.ndarray]], dict[str, float]]


@dataclass
class TrainConfig:
    """Hyperparameters of one training run (stored in every checkpoint)."""

    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3  # peak learning rate, reached at the end of warmup
    weight_decay: float = 0.01  # AdamW decoupled decay; biases, norms and embeddings get none
    warmup_frac: float = 0.1  # share of all optimizer steps spent ramping the lr linearly from ~0
    grad_clip: float = 1.0  # max global gradient L2 norm; 0 disables clipping
    patience: int | None = 5  # epochs without validation improvement before stopping; None: never stop early
    precision: str = "fp32"  # fp32 | bf16 | fp16 | auto (bf16 where the device supports it, else fp32)
    seed: int = 0
    device: str = "auto"  # auto (cuda if available, else cpu) | cpu | cuda | cuda:N
    bucket_chunk: int = 3200  # examples sorted by length together (100 batches of 32); 0 = no bucketing
    bucket_jitter: float = 0.02  # sort key = length x a random factor within ±2%: batches differ each epoch
    average_best: int = 1  # k > 1: the result is the average of the k best validation epochs' weights (module doc)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.epochs < 0 or self.batch_size < 1:
            raise ValueError("epochs must be >= 0 and batch_size >= 1")
        if self.average_best < 1:
            raise ValueError(f"average_best must be >= 1, got {self.average_best}")


@dataclass
class TrainState:
    """Progress as seen by callbacks. `epoch` is 1-based (the epoch running); `step` counts optimizer steps."""

    epoch: int = 0
    step: int = 0
    total_steps: int = 0
    fraction: float = 0.0  # step / total_steps, 0..1
    loss: float = float("nan")  # the last step's training loss
    lr: float = 0.0
    examples_seen: int = 0  # over all ranks


class Callback:
    """Hooks into `train`; every method is optional. Only rank 0 calls them under DDP.

    Order at the end of an epoch: `on_epoch_end`, then the checkpoint is written, then `on_checkpoint`.
    """

    def on_train_start(self, state: TrainState) -> None:
        """Before the first step (after a resume: before the first resumed step)."""

    def on_step_end(self, state: TrainState) -> None:
        """After every optimizer step."""

    def on_epoch_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        """After validation; `metrics` is the epoch's history row."""

    def should_stop(self) -> bool:
        """Polled between steps; True makes `train` return promptly with stopped_reason 'cancelled'."""
        return False

    def on_checkpoint(self, path: Path) -> None:
        """A checkpoint was written atomically at `path` (overwritten next epoch: copy it now if needed)."""

    def on_phase(self, name: str, index: int, count: int) -> None:
        """The recipe entered phase `name`, the `index`-th (1-based) of `count` (preparing, training,
        evaluating, explaining, optimizing...). Called by `mlcore.recipe.recipe_run`, not by `train`."""


@dataclass
class TrainResult:
    """What `train` returns. `model` is unwrapped (no DDP) and holds the best-validation weights."""

    model: nn.Module
    history: list[dict[str, float]]  # per epoch: epoch, train_loss, val_loss, val_<metric>..., lr, time
    best_epoch: int  # 1-based; the last epoch when there is no validation set; 0 if none finished
    best_metrics: dict[str, float]  # validation metrics (unprefixed) of the returned weights
    stopped_reason: str  # completed | early_stopping | cancelled
    averaged_epochs: list[int] = field(default_factory=list)  # 1-based, best first, when the weights are an average


# ----------------------------------------------------------------------------- building blocks


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' → cuda if available else cpu; anything else as given (a missing GPU is an error)."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return resolved


def _bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        # Autocast bf16 runs anywhere, but is only faster with native bf16 units (AVX512-BF16 / AMX).
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_precision(precision: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None for fp32, whether a GradScaler is needed) for `precision` on `device`."""
    if precision == "auto":
        precision = "bf16" if _bf16_supported(device) else "fp32"
    if precision == "fp32":
        return None, False
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("bf16 requested but this GPU does not support it; use fp16 or auto")
        return torch.bfloat16, False  # bf16 has fp32's exponent range: no loss scaling needed
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError("fp16 training is CUDA-only here; use bf16 (or auto) on CPU")
        return torch.float16, True
    raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")


_NO_DECAY_MODULES = (nn.LayerNorm, nn.Embedding, nn.GroupNorm, nn.RMSNorm, nn.modules.batchnorm._BatchNorm)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay matrices of Linear-like layers; not biases, norm scales or embeddings.

    Decaying a LayerNorm gain or a bias pulls it towards 0, which is not a useful prior, and
    embeddings of rare tokens would shrink simply for being rarely updated.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()  # tied weights (shared between modules) go into one group only
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if id(param) in seen or not param.requires_grad:
                continue
            seen.add(id(param))
            if isinstance(module, _NO_DECAY_MODULES) or param.ndim < 2:
                no_decay.append(param)
            else:
                decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """lr multiplier per step: linear ramp to 1 over `warmup_steps`, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            # (step + 1) so the very first update already moves (HF's schedule spends it at lr 0).
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _field(out: Any, name: str) -> Any:
    return out[name] if isinstance(out, dict) else getattr(out, name)


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    # non_blocking only matters for pinned host memory on CUDA; harmless elsewhere.
    return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}


def _autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    return torch.autocast(device_type=device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _is_better(value: float, best: float | None, greater_is_better: bool, *,
               loss: float | None = None, best_loss: float | None = None) -> bool:
    """Whether an epoch's validation `value` beats the best so far.

    An exact tie on the primary metric goes to the lower validation loss. Small validation sets tie
    often (macro-F1 on 18 wine records, a ROC-AUC of 1.0), and without the tie-break the first epoch
    to reach the value is kept however much better later epochs separate the classes.
    """
    if value is None or math.isnan(value):
        return False  # an undefined metric never counts as an improvement
    if best is None or math.isnan(best):
        return True
    if value == best and loss is not None and best_loss is not None and not math.isnan(loss):
        return math.isnan(best_loss) or loss < best_loss
    return value > best if greater_is_better else value < best


def _cpu_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@dataclass
class _Ranked:
    """One epoch among the best kept for averaging: its validation value and loss, and its weights."""

    epoch: int  # 1-based
    value: float
    loss: float
    state: dict[str, Tensor] | None  # None only in a checkpoint: the checkpoint's own model weights


def _rank_key(r: _Ranked, greater_is_better: bool) -> tuple[float, float, int]:
    """Sort key, best first: the metric, then (on an exact tie) the lower loss, then the earlier epoch."""
    loss = r.loss if not math.isnan(r.loss) else math.inf
    return (-r.value if greater_is_better else r.value, loss, r.epoch)


def _keep_best(ranked: list[_Ranked], new: _Ranked, k: int, greater_is_better: bool) -> list[_Ranked]:
    """The k best of `ranked` + `new` (an undefined metric never enters), best first."""
    if math.isnan(new.value):
        return ranked
    return sorted([*ranked, new], key=lambda r: _rank_key(r, greater_is_better))[:k]


def average_states(states: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Uniform average of state dicts with the same keys; non-float entries are taken from the first."""
    out: dict[str, Tensor] = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            total = torch.zeros_like(first, dtype=torch.float64)
            for state in states:
                total += state[key].to(torch.float64)
            out[key] = (total / len(states)).to(first.dtype)
        else:
            out[key] = first.clone()
    return out


# ----------------------------------------------------------------------------- evaluation


@dataclass
class _EvalOut:
    indices: list[int] = field(default_factory=list)
    logits: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray | None] = field(default_factory=list)
    loss_sum: float = 0.0
    loss_count: int = 0


@torch.no_grad()
def _run_eval(model: nn.Module, dataset: Sequence, batches: Sequence[Sequence[int]], collate: Collate,
              length: Callable[[Any], int], device: torch.device, amp_dtype: torch.dtype | None,
              check: Callable[[], None] | None = None) -> _EvalOut:
    """Forward `batches` of `dataset`; per-example float32 logits (and labels), trimmed for tokens.
    `check` runs before each batch: an exception it raises stops the pass there."""
    out = _EvalOut()
    for idx in batches:
        if check is not None:
            check()
        examples = [dataset[i] for i in idx]
        batch = _to_device(collate(examples), device)
        with _autocast(device, amp_dtype):
            result = model(**batch)
        logits = _field(result, "logits").float().cpu()
        labels = batch.get("labels")
        labels = labels.cpu() if isinstance(labels, Tensor) else None
        loss = _field(result, "loss")
        if loss is not None:
            out.loss_sum += float(loss) * len(idx)
            out.loss_count += len(idx)
        per_token = logits.dim() == 3  # (B, T, C): trim each example to its own length
        for j, (i, ex) in enumerate(zip(idx, examples)):
            n = length(ex) if per_token else None
            out.indices.append(i)
            out.logits.append(logits[j, :n].numpy() if per_token else logits[j].numpy())
            if labels is None:
                out.labels.append(None)
            else:
                lab = labels[j]
                out.labels.append(lab[:n].numpy() if per_token and lab.dim() >= 1 else lab.numpy())
    return out


def _ordered(out: _EvalOut, n: int) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    logits: list[Any] = [None] * n
    labels: list[Any] = [None] * n
    for i, lo, la in zip(out.indices, out.logits, out.labels):
        logits[i], labels[i] = lo, la
    return logits, labels


def predict(*, model: nn.Module, dataset: Sequence, collate: Collate, length: Callable[[Any], int],
            batch_size: int, device: str | torch.device, precision: str = "fp32",
            check: Callable[[], None] | None = None) -> list[np.ndarray]:
    """Per-example float32 logits in the dataset's original order (per-token ones trimmed to length).

    Batches are formed from length-sorted examples, so padding is minimal; the model is moved to
    `device` and left there, in the train/eval mode it had before. `check` runs before each batch and
    stops the pass by raising (a worker whose lease was lost).
    """
    device = resolve_device(device)
    amp_dtype, _ = resolve_precision(precision, device)
    model = dist_utils.unwrap(model).to(device)
    was_training = model.training
    model.eval()
    try:
        batches = eval_batches([length(ex) for ex in dataset], batch_size)
        out = _run_eval(model, dataset, batches, collate, length, device, amp_dtype, check)
    finally:
        model.train(was_training)
    return _ordered(out, len(dataset))[0]


def _validate(model: nn.Module, val_set: Sequence, val_lengths: list[int], collate: Collate,
              length: Callable[[Any], int], evaluate: Evaluate, batch_size: int, device: torch.device,
              amp_dtype: torch.dtype | None, ctx: dist_utils.DistContext) -> dict[str, float]:
    """Validation metrics over the FULL set: each rank forwards a shard, results are gathered."""
    model.eval()
    batches = eval_batches(val_lengths, batch_size)[ctx.rank::ctx.world_size]
    local = _run_eval(model, val_set, batches, collate, length, device, amp_dtype)
    model.train()
    metrics: dict[str, float] | None = None
    parts = dist_utils.all_gather_objects(local, ctx)
    if ctx.is_main:
        merged = _EvalOut()
        for part in parts:
            merged.indices += part.indices
            merged.logits += part.logits
            merged.labels += part.labels
            merged.loss_sum += part.loss_sum
            merged.loss_count += part.loss_count
        logits, labels = _ordered(merged, len(val_set))
        metrics = {k: float(v) for k, v in evaluate(logits, labels).items()}
        if merged.loss_count:
            metrics.setdefault("loss", merged.loss_sum / merged.loss_count)
    # Rank 0 decides; everyone takes its numbers so early stopping agrees on all ranks.
    return dist_utils.broadcast_object(metrics, ctx)


# ----------------------------------------------------------------------------- train


def train(*, model: nn.Module, train_set: Sequence, val_set: Sequence | None, collate: Collate,
          length: Callable[[Any], int], evaluate: Evaluate, primary_metric: str, greater_is_better: bool,
          config: TrainConfig, callbacks: Sequence[Callback] = (), checkpoint_dir: Path | None = None,
          resume_from: Path | None = None, model_meta: dict | None = None) -> TrainResult:
    """Train `model` on `train_set`, early-stopping on validation `primary_metric`; see the module doc.

    A `train_set` with a `set_epoch(epoch)` method (0-based, as DistributedSampler's) is told each
    epoch before its batches are drawn, on every rank, so epoch-dependent augmentation is reproducible.
    `checkpoint_dir`: a checkpoint (`last.pt`) is written there after every epoch (rank 0).
    `resume_from`: a checkpoint file or directory; training continues after its last epoch and
    ends bit-identical (CPU) to a run that never stopped. `model_meta` (JSON-like) is stored in
    every checkpoint so it describes the model it holds.
    """
    device = resolve_device(config.device)
    ctx = dist_utils.setup(device)
    device = ctx.device
    amp_dtype, use_scaler = resolve_precision(config.precision, device)
    cbs: Sequence[Callback] = callbacks if ctx.is_main else ()
    if len(train_set) == 0:
        raise ValueError("train_set is empty")

    # Seeds first: nothing below may draw randomness before them. Ranks differ only in the torch
    # stream (dropout), so they do not all drop the same units on different data.
    _seed_everything(config.seed)
    torch.manual_seed(config.seed + ctx.rank)

    base_model = model.to(device)
    ddp_model = dist_utils.wrap_model(base_model, ctx)
    groups = [g for g in param_groups(base_model, config.weight_decay) if g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=config.lr,
                                  # The fused CPU/CUDA kernel is faster and deterministic on CPU.
                                  fused=device.type in ("cpu", "cuda"))
    sampler = BucketBatchSampler([length(ex) for ex in train_set], batch_size=config.batch_size,
                                 chunk=config.bucket_chunk, jitter=config.bucket_jitter, seed=config.seed,
                                 rank=ctx.rank, world_size=ctx.world_size)
    steps_per_epoch = len(sampler)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = max(1, round(config.warmup_frac * total_steps)) if config.warmup_frac > 0 else 0
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, warmup_steps))
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    val_lengths = [length(ex) for ex in val_set] if val_set is not None else []

    # Bookkeeping restored by a resume.
    start_epoch, step, examples_seen = 0, 0, 0
    history: list[dict[str, float]] = []
    best_value: float | None = None
    best_epoch, best_metrics, best_state = 0, {}, None
    ranked: list[_Ranked] = []  # the average_best best epochs, when averaging
    bad_epochs = 0
    stopped_reason: str | None = None

    if resume_from is not None:
        ckpt = load_checkpoint(resume_from, map_location="cpu")
        _check_resumable(ckpt, config, len(train_set))
        base_model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        sampler.load_state_dict(ckpt["sampler"])
        start_epoch, step, examples_seen = ckpt["epoch"], ckpt["step"], ckpt["examples_seen"]
        history = ckpt["history"]
        best_value, best_epoch, best_metrics = ckpt["best_value"], ckpt["best_epoch"], ckpt["best_metrics"]
        best_state = ckpt["best_model"] if ckpt["best_model"] is not None else (
            ckpt["model"] if best_epoch == start_epoch else None)
        bad_epochs, stopped_reason = ckpt["bad_epochs"], ckpt["stopped_reason"]
        ranked = [_Ranked(r["epoch"], r["value"], r["loss"], r["state"] if r["state"] is not None else ckpt["model"])
                  for r in ckpt.get("ranked", [])]
        rng = ckpt["rng"]
        if len(rng) == ctx.world_size:
            restore_rng(rng[ctx.rank])
        else:
            log.warning("checkpoint has RNG states for %d ranks, running %d: resume is not exact",
                        len(rng), ctx.world_size)
            _seed_everything(config.seed + 1000 * start_epoch + ctx.rank)

    state = TrainState(epoch=start_epoch, step=step, total_steps=total_steps,
                       fraction=step / total_steps if total_steps else 1.0,
                       lr=scheduler.get_last_lr()[0], examples_seen=examples_seen)
    for cb in cbs:
        cb.on_train_start(state)

    epoch = start_epoch
    while stopped_reason is None and epoch < config.epochs:
        t0 = time.perf_counter()
        state.epoch = epoch + 1
        sampler.set_epoch(epoch)
        if hasattr(train_set, "set_epoch"):
            # On every rank (callbacks run on rank 0 only): per-epoch augmentation stays in step, resume included.
            train_set.set_epoch(epoch)
        ddp_model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        n_steps = 0
        for idx in sampler:
            if dist_utils.any_true(any(cb.should_stop() for cb in cbs), ctx):
                stopped_reason = STOP_CANCELLED
                break
            batch = _to_device(collate([train_set[i] for i in idx]), device)
            with _autocast(device, amp_dtype):
                loss = _field(ddp_model(**batch), "loss")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.grad_clip > 0:
                scaler.unscale_(optimizer)  # clip the true gradients, not the loss-scaled ones
                nn.utils.clip_grad_norm_(base_model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss_sum += loss.detach().double()
            n_steps += 1
            step += 1
            examples_seen += len(idx) * ctx.world_size
            if cbs:
                state.step, state.fraction = step, step / total_steps
                state.loss, state.lr, state.examples_seen = float(loss.detach()), scheduler.get_last_lr()[0], examples_seen
                for cb in cbs:
                    cb.on_step_end(state)
        if stopped_reason == STOP_CANCELLED:
            break

        row: dict[str, float] = {"epoch": epoch + 1,
                                 "train_loss": dist_utils.mean_across(float(loss_sum) / max(1, n_steps), ctx)}
        if val_set is not None:
            metrics = _validate(base_model, val_set, val_lengths, collate, length, evaluate,
                                config.batch_size, device, amp_dtype, ctx)
            if primary_metric not in metrics:
                raise KeyError(f"evaluate() returned no {primary_metric!r} (got {sorted(metrics)})")
            row.update({f"val_{k}": v for k, v in metrics.items()})
            improved = _is_better(metrics[primary_metric], best_value, greater_is_better,
                                  loss=metrics.get("loss"), best_loss=best_metrics.get("loss"))
            if improved:
                best_value, best_epoch, best_metrics = metrics[primary_metric], epoch + 1, metrics
                best_state = _cpu_state(base_model)
            if config.average_best > 1:
                candidate = _Ranked(epoch + 1, metrics[primary_metric], metrics.get("loss", math.nan), None)
                ranked = _keep_best(ranked, candidate, config.average_best, greater_is_better)
                if any(r is candidate for r in ranked):  # one copy of the weights serves both lists
                    candidate.state = best_state if improved else _cpu_state(base_model)
            if improved:
                bad_epochs = 0
            else:
                bad_epochs += 1
                if config.patience is not None and bad_epochs >= config.patience:
                    stopped_reason = STOP_EARLY
        else:
            best_epoch = epoch + 1  # nothing to select on: the latest weights are the result
        row["lr"] = scheduler.get_last_lr()[0]
        row["time"] = time.perf_counter() - t0
        history.append(row)
        epoch += 1
        if ctx.is_main:  # the job log: one line per epoch
            shown = " ".join(f"{k}={v:.4g}" for k, v in row.items() if k not in ("epoch", "time") and isinstance(v, float))
            log.info("epoch %d/%d %s (%.1f s)%s", epoch, config.epochs, shown, row["time"],
                     f" - stopping: {stopped_reason}" if stopped_reason else "")

        state.step, state.fraction, state.examples_seen = step, step / total_steps if total_steps else 1.0, examples_seen
        state.lr = row["lr"]
        for cb in cbs:
            cb.on_epoch_end(state, row)

        # RNG states are gathered from every rank (dropout streams differ), so all ranks join in.
        rng_states = dist_utils.all_gather_objects(capture_rng(), ctx)
        if checkpoint_dir is not None and ctx.is_main:
            path = save_checkpoint(Path(checkpoint_dir) / CHECKPOINT_NAME, {
                "model": base_model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if use_scaler else None,
                "rng": rng_states,
                "epoch": epoch,  # epochs completed
                "step": step,
                "examples_seen": examples_seen,
                "sampler": sampler.state_dict(),
                "best_value": best_value,
                "best_epoch": best_epoch,
                "best_metrics": best_metrics,
                # The model weights above already are the best ones when the best epoch is this one.
                "best_model": best_state if best_state is not None and best_epoch != epoch else None,
                "bad_epochs": bad_epochs,
                # The epochs kept for averaging; this epoch's weights are "model" above.
                "ranked": [{"epoch": r.epoch, "value": r.value, "loss": r.loss,
                            "state": None if r.epoch == epoch else r.state} for r in ranked],
                "stopped_reason": stopped_reason,
                "history": history,
                "config": asdict(config),
                "model_meta": model_meta or {},
                "world_size": ctx.world_size,
                "n_train": len(train_set),
                "torch_version": str(torch.__version__),
            })
            for cb in cbs:
                cb.on_checkpoint(path)

    averaged: list[int] = []
    # At most half the epochs run: a short run's early epochs are far from its result.
    soup = ranked[:len(history) // 2]
    if stopped_reason != STOP_CANCELLED and val_set is not None and len(soup) > 1:
        # Every rank holds the same ranked weights (metrics are broadcast), so all can validate the average.
        base_model.load_state_dict(average_states([r.state for r in soup]))
        best_metrics = _validate(base_model, val_set, val_lengths, collate, length, evaluate,
                                 config.batch_size, device, amp_dtype, ctx)
        averaged = [r.epoch for r in soup]
        if ctx.is_main:
            log.info("weights: the average of epochs %s (validation %s %.4g; best single epoch %d: %.4g)",
                     averaged, primary_metric, best_metrics[primary_metric], best_epoch, best_value)
    elif best_state is not None and best_epoch != epoch:
        base_model.load_state_dict(best_state)
    return TrainResult(model=base_model, history=history, best_epoch=best_epoch, best_metrics=best_metrics,
                       stopped_reason=stopped_reason or STOP_COMPLETED, averaged_epochs=averaged)


# Fields that may differ between the interrupted run and its resume without breaking exactness.
_RESUME_FREE_FIELDS = ("device",)


def _check_resumable(ckpt: dict[str, Any], config: TrainConfig, n_train: int) -> None:
    # A field added after the checkpoint was written counts as its default there.
    defaults = asdict(TrainConfig())
    saved = {k: v for k, v in {**defaults, **ckpt["config"]}.items() if k not in _RESUME_FREE_FIELDS}
    now = {k: v for k, v in asdict(config).items() if k not in _RESUME_FREE_FIELDS}
    diff = {k: (saved.get(k), now.get(k)) for k in set(saved) | set(now) if saved.get(k) != now.get(k)}
    if diff:
        raise ValueError(f"cannot resume: TrainConfig differs from the checkpoint's (saved, now): {diff}")
    if ckpt["n_train"] != n_train:
        raise ValueError(f"cannot resume: checkpoint trained on {ckpt['n_train']} examples, now {n_train}")


# ----------------------------------------------------------------------------- cross-validation


def kfold_indices(n: int, k: int, seed: int = 0, stratify: Sequence | None = None) -> list[np.ndarray]:
    """`k` disjoint shuffled folds covering range(n); stratified by the `stratify` labels if given."""
    if not 2 <= k <= n:
        raise ValueError(f"k must be in 2..{n}, got {k}")
    rng = np.random.default_rng(seed)
    if stratify is None:
        return [np.sort(f) for f in np.array_split(rng.permutation(n), k)]
    labels = np.asarray(stratify)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        # Deal round-robin, continuing where the previous class stopped, so fold sizes stay even.
        for j, i in enumerate(members):
            folds[(offset + j) % k].append(int(i))
        offset += len(members)
    return [np.sort(np.asarray(f, dtype=np.int64)) for f in folds]


@dataclass
class CVResult:
    """Held-out metrics per fold, and their mean and sample standard deviation over folds."""

    folds: list[dict[str, float]]
    mean: dict[str, float]
    std: dict[str, float]
    best_epochs: list[int]


class _Subset(Sequence):
    def __init__(self, data: Sequence, indices: Sequence[int]) -> None:
        self.data, self.indices = data, [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        return self.data[self.indices[i]]

    def __iter__(self) -> Iterator[Any]:
        return (self.data[i] for i in self.indices)

    def set_epoch(self, epoch: int) -> None:
        """Pass the epoch on to an augmenting dataset (its draws depend on it)."""
        if hasattr(self.data, "set_epoch"):
            self.data.set_epoch(epoch)


def cross_validate(*, k: int, model_factory: Callable[[], nn.Module], dataset: Sequence, collate: Collate,
                   length: Callable[[Any], int], evaluate: Evaluate, primary_metric: str,
                   greater_is_better: bool, config: TrainConfig, stratify: Sequence | None = None,
                   inner_val_frac: float = 0.1, callbacks: Sequence[Callback] = ()) -> CVResult:
    """k-fold cross-validation: train a fresh model per fold, score it on the held-out fold.

    Early stopping (when `config.patience` is set) uses an inner validation split of
    `inner_val_frac` of the training folds, never the held-out fold, so fold scores stay unbiased.
    `model_factory()` is called once per fold after seeding torch with `config.seed + fold`.
    """
    folds = kfold_indices(len(dataset), k, seed=config.seed, stratify=stratify)
    fold_metrics: list[dict[str, float]] = []
    best_epochs: list[int] = []
    for f, held_out in enumerate(folds):
        train_idx = np.concatenate([folds[j] for j in range(k) if j != f])
        val_set = None
        if config.patience is not None and inner_val_frac > 0:
            perm = np.random.default_rng([config.seed, f]).permutation(train_idx)
            n_val = max(1, int(round(inner_val_frac * len(perm))))
            val_set, train_idx = _Subset(dataset, perm[:n_val]), perm[n_val:]
        torch.manual_seed(config.seed + f)
        result = train(model=model_factory(), train_set=_Subset(dataset, train_idx), val_set=val_set,
                       collate=collate, length=length, evaluate=evaluate, primary_metric=primary_metric,
                       greater_is_better=greater_is_better, config=config, callbacks=callbacks)
        device = resolve_device(config.device)
        amp_dtype, _ = resolve_precision(config.precision, device)
        test_set = _Subset(dataset, held_out)
        result.model.eval()
        out = _run_eval(result.model, test_set, eval_batches([length(ex) for ex in test_set], config.batch_size),
                        collate, length, device, amp_dtype)
        logits, labels = _ordered(out, len(test_set))
        fold_metrics.append({key: float(v) for key, v in evaluate(logits, labels).items()})
        best_epochs.append(result.best_epoch)
    keys = fold_metrics[0].keys()
    mean = {key: float(np.mean([m[key] for m in fold_metrics])) for key in keys}
    std = {key: float(np.std([m[key] for m in fold_metrics], ddof=1)) for key in keys}
    return CVResult(folds=fold_metrics, mean=mean, std=std, best_epochs=best_epochs)
