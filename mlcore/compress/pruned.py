"""`pruned`: global unstructured magnitude pruning of the encoder's Linear weights, with fine-tuning.

The smallest-magnitude weights over all encoder Linear layers together (global, so layers that
matter less lose more) are set to zero, gradually: sparsity follows the cubic schedule of Zhu &
Gupta (2017) over `steps` stages, each followed by `finetune_epochs` of fine-tuning during which
a mask keeps the pruned weights at zero after every optimizer step. With an accuracy budget a stage
that lowers the validation metric by more than the budget is undone and pruning stops there.

The saved model stores each sparse matrix as a bit mask plus its non-zero values
(mlcore.compress.storage), so the file shrinks. Dense kernels run a sparse matrix no faster: the
pruned model runs at the baseline's speed, and its report says so.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mlcore.compress.base import (CompressContext, Compressed, encoder_linears, is_quantized_linear,
                                  profile_register)
from mlcore.trainer import Callback, TrainState


@dataclass
class PrunedConfig:
    sparsity: float = 0.5  # target share of zero encoder Linear weights
    steps: int = 3  # gradual stages (cubic schedule); the budget is checked after each
    finetune_epochs: int = 1  # per stage; 0 = one-shot pruning without fine-tuning
    lr_scale: float = 0.5  # fine-tuning peak lr relative to the job's

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError("sparsity must lie in [0, 1)")
        if self.steps < 1:
            raise ValueError("steps must be >= 1")


@torch.no_grad()
def magnitude_masks(linears: dict[str, nn.Linear], sparsity: float) -> dict[str, Tensor]:
    """Boolean keep-masks zeroing exactly round(sparsity * N) of the smallest |w| over all layers."""
    weights = [m.weight.detach().abs().reshape(-1).cpu() for m in linears.values()]
    flat = torch.cat(weights)
    k = round(sparsity * flat.numel())
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    if k > 0:
        # indices, not a threshold: ties (already-zero weights) would otherwise make the count inexact
        keep[torch.topk(flat, k, largest=False).indices] = False
    masks, offset = {}, 0
    for (name, m), w in zip(linears.items(), weights):
        masks[name] = keep[offset:offset + w.numel()].view_as(m.weight)
        offset += w.numel()
    return masks


class _KeepMasked(Callback):
    """Re-applies the masks after every optimizer step, so pruned weights stay zero while fine-tuning."""

    def __init__(self, linears: dict[str, nn.Linear], masks: dict[str, Tensor]) -> None:
        self.pairs = [(linears[name], mask) for name, mask in masks.items()]

    @torch.no_grad()
    def on_step_end(self, state: TrainState) -> None:
        for linear, mask in self.pairs:
            linear.weight.mul_(mask.to(linear.weight.device))


@torch.no_grad()
def linear_sparsity(model: nn.Module) -> float:
    """Share of exactly-zero weights over the encoder's Linear layers (float or dynamically quantized)."""
    zeros = total = 0
    for m in model.encoder.modules():
        if isinstance(m, nn.Linear):
            w = m.weight
            zeros += int((w == 0).sum())
        elif is_quantized_linear(m):
            w = m.weight()
            zeros += int((w.int_repr() == 0).sum()) if w.is_quantized else int((w == 0).sum())
        else:
            continue
        total += w.numel()
    return zeros / total if total else 0.0


@profile_register("pruned", PrunedConfig)
def apply(model: nn.Module, config: PrunedConfig, ctx: CompressContext) -> Compressed:
    """Prune gradually to `config.sparsity` with fine-tuning, within the accuracy budget when one is set."""
    notes: list[str] = []
    reached, stages = 0.0, 0
    for stage in range(1, config.steps + 1):
        target = config.sparsity * (1 - (1 - stage / config.steps) ** 3)
        previous = copy.deepcopy(model) if ctx.budget is not None else None
        linears = encoder_linears(model)
        masks = magnitude_masks(linears, target)
        with torch.no_grad():
            for name, mask in masks.items():
                linears[name].weight.mul_(mask)
        if config.finetune_epochs > 0:
            model = ctx.fine_tune(model, epochs=config.finetune_epochs, lr_scale=config.lr_scale,
                                  callbacks=[_KeepMasked(linears, masks)]).model.cpu()
        value = ctx.val_metric(model) if ctx.budget is not None else None
        if not ctx.within_budget(value):
            model = previous
            notes.append(f"accuracy budget {ctx.budget:g}: stage {stage} ({target:.0%} sparsity) lowered the "
                         f"validation {ctx.primary_metric} by {ctx.metric_drop(value):.4f}; undone, pruning "
                         f"stopped at {reached:.0%}.")
            break
        reached, stages = target, stage
    if ctx.budget is not None and not ctx.val_set:
        notes.append("no validation split: the accuracy budget could not be checked.")
    real = linear_sparsity(model)
    notes.append(f"{real:.1%} of the encoder's Linear weights are zero (global magnitude pruning, {stages} "
                 "stage(s) with fine-tuning); the file stores them compactly, but dense kernels run no "
                 "faster: expect the baseline's latency.")
    model.eval()
    return Compressed(model=model, storage="sparse", dtype="float32", notes=notes,
                      info={"target_sparsity": config.sparsity, "reached_target": reached, "stages": stages,
                            "linear_sparsity": real})
