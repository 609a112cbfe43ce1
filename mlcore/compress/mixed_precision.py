"""`mixed-precision`: training under autocast and bfloat16 inference.

`apply` trains a second copy of the job's model from the same initialization (same preset and seed)
with the job's hyperparameters under autocast (bf16 on CPU and on GPUs that support it, else fp16
with a GradScaler on CUDA), so the report sets its metric and training time beside the float32
run's, then runs inference entirely in bfloat16 (`storage.Bf16Model`: weights cast once, half the
bytes on disk). `retrain=False` skips the second training and only casts the trained model, for a
quick look at inference speed and metric.

bf16 only pays where the CPU has bf16 matrix units (AVX512-BF16 / AMX: this project's EPYC Zen 4
does); elsewhere PyTorch emulates it and bf16 inference can be slower than float32, which the report
then says.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from mlcore.compress.base import CompressContext, Compressed, profile_register
from mlcore.compress.storage import Bf16Model
from mlcore.trainer import _bf16_supported, resolve_device


@dataclass
class MixedPrecisionConfig:
    retrain: bool = True  # train a copy under autocast from the same init; False: cast the trained model
    train_precision: str = "auto"  # bf16 where supported, else fp16 on CUDA / fp32 (see mlcore.trainer)


@profile_register("mixed-precision", MixedPrecisionConfig)
def apply(model: nn.Module, config: MixedPrecisionConfig, ctx: CompressContext) -> Compressed:
    """Retrain under autocast (optional), then wrap the model for bfloat16 inference."""
    notes: list[str] = []
    info: dict = {}
    if config.retrain and ctx.build_model is not None:
        device = resolve_device(ctx.train_config.device)
        precision = config.train_precision
        if precision == "auto":
            precision = "bf16" if _bf16_supported(device) else ("fp16" if device.type == "cuda" else "fp32")
        fresh = ctx.build_model(None)
        t0 = time.perf_counter()
        result = ctx.fine_tune(fresh, epochs=ctx.train_config.epochs, precision=precision,
                               patience=ctx.train_config.patience)  # the job's own schedule, only the precision differs
        info["train_seconds"] = round(time.perf_counter() - t0, 3)
        info["train_precision"] = precision
        info["best_epoch"] = result.best_epoch
        model = result.model.cpu()
        notes.append(f"retrained from the same initialization under {precision} autocast "
                     f"({ctx.train_config.epochs} epochs, {info['train_seconds']:.1f} s).")
    else:
        notes.append("not retrained: the float32-trained weights were cast to bfloat16.")
    if not _bf16_supported(torch.device("cpu")):
        notes.append("this CPU has no native bf16 matrix units: bf16 inference is emulated and may be slower.")
    model.eval()
    return Compressed(model=Bf16Model(model), storage="bf16", dtype="bfloat16", notes=notes, info=info)
