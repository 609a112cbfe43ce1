"""`slim`: structured pruning. Whole attention heads and FFN neurons are removed by importance, the
Linear layers physically shrink, and the model is fine-tuned: fewer multiply-adds on any hardware.

Importance is first-order Taylor (Molchanov et al., 2019): the estimated change of the training loss
when a unit is removed, |sum over the unit's weights of w * dL/dw|, with gradients summed over a few
training batches in eval mode (no dropout noise). `importance="magnitude"` uses the L2 norm of the
unit's weights instead (no data needed). Every layer loses the same share of its heads and neurons,
so the saved per-layer sizes stay regular and the parameter count falls by the requested fraction of
the FFN and attention weights.

Slimming runs in `steps` equal stages, each followed by `finetune_epochs` of fine-tuning. With an
accuracy budget, the validation metric is checked after each stage; a stage that falls more than the
budget below the baseline is undone and slimming stops there (the report says how far it got).

Where the stem feeds a per-head attention bias (particles with pairwise features), the bias has one
channel per original head, so heads are kept and only FFN neurons are removed (noted in the report).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from mlcore.compress.base import CompressContext, Compressed, profile_register


@dataclass
class SlimConfig:
    ffn_fraction: float = 0.5  # share of each layer's FFN neurons removed
    head_fraction: float = 0.25  # share of each layer's attention heads removed
    importance: str = "taylor"  # taylor | magnitude
    importance_batches: int = 8  # training batches whose gradients score the units (taylor)
    steps: int = 2  # gradual stages; the budget is checked after each
    finetune_epochs: int = 1  # per stage
    lr_scale: float = 0.5  # fine-tuning peak lr relative to the job's

    def __post_init__(self) -> None:
        if not (0.0 <= self.ffn_fraction < 1.0 and 0.0 <= self.head_fraction < 1.0):
            raise ValueError("slim fractions must lie in [0, 1)")
        if self.importance not in ("taylor", "magnitude"):
            raise ValueError(f"importance must be taylor or magnitude, got {self.importance!r}")
        if self.steps < 1:
            raise ValueError("steps must be >= 1")


def _taylor_grads(model: nn.Module, ctx: CompressContext, n_batches: int) -> None:
    """Leave in `.grad` the gradients of the training loss summed over `n_batches` fixed batches."""
    model.eval()  # dropout off: scores should not depend on which units happened to be dropped
    model.zero_grad(set_to_none=True)
    rng = np.random.default_rng(ctx.train_config.seed)
    order = rng.permutation(len(ctx.train_set))
    bs = ctx.train_config.batch_size
    for b in range(min(n_batches, math.ceil(len(order) / bs))):
        batch = ctx.collate([ctx.train_set[int(i)] for i in order[b * bs:(b + 1) * bs]])
        model(**batch).loss.backward()


def _unit_scores(w: Tensor, importance: str, dim: int) -> Tensor:
    """Per-row (dim=1 summed) or per-column score terms of one weight: w*grad (taylor) or w^2 (magnitude)."""
    if importance == "taylor":
        g = w.grad if w.grad is not None else torch.zeros_like(w)
        return (w.detach() * g).sum(dim=dim) if w.dim() == 2 else (w.detach() * g)
    return (w.detach() ** 2).sum(dim=dim) if w.dim() == 2 else w.detach() ** 2


@torch.no_grad()
def head_scores(attn: nn.Module, importance: str) -> Tensor:
    """(H,) importance of each head of one Attention: q, k, v rows and proj columns of the head."""
    H, Dh = attn.n_heads, attn.head_dim
    rows = _unit_scores(attn.qkv.weight, importance, 1) + _unit_scores(attn.qkv.bias, importance, 0)  # (3*H*Dh,)
    cols = _unit_scores(attn.proj.weight, importance, 0)  # (H*Dh,)
    per_head = rows.view(3, H, Dh).sum(dim=(0, 2)) + cols.view(H, Dh).sum(dim=1)
    return per_head.abs() if importance == "taylor" else per_head.sqrt()


@torch.no_grad()
def neuron_scores(mlp: nn.Module, importance: str) -> Tensor:
    """(d_ff,) importance of each FFN neuron: its fc row and bias and its proj column."""
    s = (_unit_scores(mlp.fc.weight, importance, 1) + _unit_scores(mlp.fc.bias, importance, 0)
         + _unit_scores(mlp.proj.weight, importance, 0))
    return s.abs() if importance == "taylor" else s.sqrt()


def slim_model(model: nn.Module, *, keep_heads: list[int], keep_neurons: list[int], importance: str = "magnitude",
               ctx: CompressContext | None = None, importance_batches: int = 8) -> nn.Module:
    """Shrink every layer of `model.encoder` to `keep_heads[i]` heads and `keep_neurons[i]` neurons, in place."""
    if importance == "taylor":
        if ctx is None:
            raise ValueError("taylor importance needs training data (a CompressContext)")
        _taylor_grads(model, ctx, importance_batches)
    encoder = model.encoder
    for i, block in enumerate(encoder.blocks):
        heads = neurons = None
        if keep_heads[i] < block.attn.n_heads:
            order = torch.argsort(head_scores(block.attn, importance), descending=True)
            heads = sorted(order[:keep_heads[i]].tolist())  # keep the original order of the survivors
        if keep_neurons[i] < block.mlp.fc.out_features:
            order = torch.argsort(neuron_scores(block.mlp, importance), descending=True)
            neurons = sorted(order[:keep_neurons[i]].tolist())
        if heads is not None or neurons is not None:
            encoder.slim_(i, heads=heads, neurons=neurons)
    model.zero_grad(set_to_none=True)
    return model


def _has_head_bias(model: nn.Module) -> bool:
    return getattr(model.stem, "pair", None) is not None


@profile_register("slim", SlimConfig)
def apply(model: nn.Module, config: SlimConfig, ctx: CompressContext) -> Compressed:
    """Remove heads and neurons in stages with fine-tuning, within the accuracy budget when one is set."""
    notes: list[str] = []
    c = model.encoder.config
    n = c.n_layers
    heads0 = [c.heads_of(i) for i in range(n)]
    dff0 = [c.d_ff_of(i) for i in range(n)]
    head_fraction = config.head_fraction
    if head_fraction > 0 and _has_head_bias(model):
        head_fraction = 0.0
        notes.append("the stem feeds a per-head attention bias, so heads were kept; only FFN neurons were removed.")
    reached = {"ffn_fraction": 0.0, "head_fraction": 0.0, "stages": 0, "val_metrics": []}
    for stage in range(1, config.steps + 1):
        f_ffn, f_head = config.ffn_fraction * stage / config.steps, head_fraction * stage / config.steps
        keep_h = [max(1, round(h * (1 - f_head))) for h in heads0]
        keep_n = [max(1, round(d * (1 - f_ffn))) for d in dff0]
        previous = copy.deepcopy(model) if ctx.budget is not None else None
        slim_model(model, keep_heads=keep_h, keep_neurons=keep_n, importance=config.importance, ctx=ctx,
                   importance_batches=config.importance_batches)
        if config.finetune_epochs > 0:
            model = ctx.fine_tune(model, epochs=config.finetune_epochs, lr_scale=config.lr_scale).model.cpu()
        value = ctx.val_metric(model) if ctx.budget is not None else None
        reached["val_metrics"].append(value)
        if not ctx.within_budget(value):
            model = previous
            notes.append(f"accuracy budget {ctx.budget:g}: stage {stage} of {config.steps} lowered the validation "
                         f"{ctx.primary_metric} by {ctx.metric_drop(value):.4f}; undone, slimming stopped "
                         f"at {reached['ffn_fraction']:.0%} of FFN neurons and {reached['head_fraction']:.0%} of heads.")
            break
        reached.update(ffn_fraction=f_ffn, head_fraction=f_head, stages=stage)
    if ctx.budget is not None and not ctx.val_set:
        notes.append("no validation split: the accuracy budget could not be checked.")
    notes.append(f"removed {reached['ffn_fraction']:.0%} of FFN neurons and {reached['head_fraction']:.0%} of "
                 f"attention heads per layer ({config.importance} importance), fine-tuned "
                 f"{config.finetune_epochs} epoch(s) per stage.")
    model.eval()
    return Compressed(model=model, storage="dense", dtype="float32", notes=notes, info=reached)
