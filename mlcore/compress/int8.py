"""`int8`: post-training dynamic int8 quantization of the encoder's and the head's Linear layers.

Weights are quantized once, per output channel (symmetric int8, one float scale per row: more
accurate than one scale per matrix at the same speed); activations are quantized per call from
their observed range, so no calibration data is needed.

The sequence stems' 1-D convolution (DNA, protein, SMILES) is a Linear map over each position's
window, so it is rewritten as exactly that (`WindowLinear`: pad, unfold the window, one Linear of
kernel * channels inputs; the same numbers up to float rounding) and quantized with the encoder:
measured on the bench's protein model (same inputs, interleaved, twice) it took the int8 speedup at
batch 32 from 1.80x to 1.92-1.94x and compact's from 2.51x to 2.74-2.75x. The rest of the stems stays
float32 (embeddings, positions, LayerNorm, and the particle / light-curve MLPs, whose cost is small).

Why `torch.ao.quantization.quantize_dynamic` and not torchao, although `torch.ao.quantization` is
deprecated in favour of torchao: measured on this project's `small` model (bench/compression.py,
torch 2.13 CPU, 2-core EPYC, 1 thread, batch 32, interleaved with float32), torch.ao's dynamic int8
ran 1.68-1.81x faster than float32, torchao 0.18's `Int8DynamicActivationInt8WeightConfig` 0.93-0.99x
in eager mode, and 1.44x under `torch.compile` after 90 s of compilation (per model and input shape;
compile gives float32 nothing here). torchao stays available behind the same interface
(`Int8Config(backend="torchao")`) for measurement and for the day torch.ao is removed; a
torchao-quantized model is not saved by this module (its tensor subclasses have no stable
plain-tensor layout), so the profile refuses to save one.

Kernel library (`engine`): PyTorch's default (x86, fbgemm kernels). oneDNN ran one isolated Linear
of this model 2.8x faster than fbgemm (0.61 vs 1.70 ms, AVX512-VNNI), but inside the whole model the
two were equal at batch 32 (1.85x vs 1.84x over float32, interleaved) and oneDNN was slower at batch 1
(0.81-0.88x vs 1.27x), so the default stays; `Int8Config(engine="onednn")` selects it. Per-channel and
per-tensor weight scales ran at the same speed inside the model; per-channel is kept for accuracy.

The quantized model saves as int8 rows + float32 scales (see mlcore.compress.storage) and reloads
bit-exact (activation scales are taken per batch, so the same batches give the same outputs). Dynamic quantization is a CPU path: on a GPU the profile's model runs on the CPU.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mlcore.compress.base import CompressContext, Compressed, method_register

BACKENDS = ("torch.ao", "torchao")


class WindowLinear(nn.Module):
    """A stride-1, zero-'same'-padded `nn.Conv1d` computed as one Linear over each position's window.

    Takes and returns the convolution's (B, C, T) layout. `linear.weight[o, j*C + c]` is the
    convolution's `weight[o, c, j]`, so the outputs equal the convolution's; as a Linear it is
    quantized like every other one.
    """

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        (k,), (pad,) = conv.kernel_size, conv.padding
        self.kernel, self.pad = k, pad
        self.linear = nn.Linear(conv.in_channels * k, conv.out_channels, bias=conv.bias is not None)
        with torch.no_grad():
            self.linear.weight.copy_(conv.weight.permute(0, 2, 1).reshape(conv.out_channels, -1))  # (O, k*C)
            if conv.bias is not None:
                self.linear.bias.copy_(conv.bias)

    @staticmethod
    def supports(conv: nn.Module) -> bool:
        """True for the convolutions this rewrite is exact for."""
        return (isinstance(conv, nn.Conv1d) and conv.stride == (1,) and conv.dilation == (1,) and conv.groups == 1
                and conv.padding_mode == "zeros" and isinstance(conv.padding, tuple)
                and 2 * conv.padding[0] == conv.kernel_size[0] - 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        B, C, T = h.shape
        x = F.pad(h.transpose(1, 2), (0, 0, self.pad, self.pad))  # (B, T+2p, C)
        x = x.unfold(1, self.kernel, 1).transpose(2, 3).reshape(B, T, self.kernel * C)  # (B, T, k*C)
        return self.linear(x).transpose(1, 2)  # (B, O, T), a view of (B, T, O)


def windows_as_linear(module: nn.Module) -> list[str]:
    """Replace every supported Conv1d under `module` by a WindowLinear, in place; the dotted names of all
    WindowLinear modules (new or already there)."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if WindowLinear.supports(child):
                setattr(parent, name, WindowLinear(child))
    return [name for name, m in module.named_modules() if isinstance(m, WindowLinear)]


def default_engine() -> str:
    """PyTorch's default quantized engine (x86: fbgemm kernels here; see the module docstring for oneDNN)."""
    return torch.backends.quantized.engine


@contextlib.contextmanager
def quantized_engine(engine: str | None) -> Iterator[None]:
    """Pack quantized weights for `engine` (the packed layout is engine-specific), then restore the global."""
    previous = torch.backends.quantized.engine
    if engine:
        torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


@dataclass
class Int8Config:
    backend: str = "torch.ao"  # torch.ao (dynamic quantized Linear) | torchao (eager; measurement only)
    engine: str = ""  # torch.ao kernel library: x86 | fbgemm | onednn | qnnpack; "" = default_engine()
    per_channel: bool = True  # one scale per output row: more accurate than one per matrix, same speed here
    stem_conv: bool = True  # also quantize the sequence stems' convolution (as a WindowLinear)


def quantize_model(model: nn.Module, *, scope: str = "encoder+head", backend: str = "torch.ao",
                   per_channel: bool = True, engine: str = "", stem_conv: bool = True) -> nn.Module:
    """Dynamically quantize the Linear layers of `model.encoder` and `model.head` (and, with `stem_conv`,
    the stem's convolution as a WindowLinear) in place; returns the model."""
    if backend not in BACKENDS:
        raise ValueError(f"int8 backend must be one of {BACKENDS}, got {backend!r}")
    model.eval()
    parts = ["encoder", "head"] if scope == "encoder+head" else ["encoder"]
    if backend == "torchao":
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        for part in parts:
            quantize_(getattr(model, part), Int8DynamicActivationInt8WeightConfig())
        return model
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    with warnings.catch_warnings(), quantized_engine(engine or default_engine()):
        # torch.ao.quantization warns that it is deprecated on every call (the module docstring says why we use it).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        for part in parts:
            quantized = quantize_dynamic(getattr(model, part), {nn.Linear: qconfig}, dtype=torch.qint8)
            setattr(model, part, quantized)
        stem = getattr(model, "stem", None)
        windows = windows_as_linear(stem) if stem_conv and stem is not None else []
        if windows:  # only the windows' Linears: other stem modules stay float32
            model.stem = quantize_dynamic(stem, {f"{name}.linear": qconfig for name in windows}, dtype=torch.qint8)
    return model


@method_register("int8", Int8Config)
def apply(model: nn.Module, config: Int8Config, ctx: CompressContext) -> Compressed:
    """Quantize `model` (in place, on the CPU); no fine-tuning is needed or done."""
    engine = config.engine or default_engine()
    model = quantize_model(model.cpu(), backend=config.backend, per_channel=config.per_channel, engine=engine,
                           stem_conv=config.stem_conv)
    stem_conv = config.stem_conv and any(isinstance(m, WindowLinear) for m in model.modules())
    notes = ["int8 dynamic quantization of the encoder and head Linear layers"
             + (" and of the stem's convolution" if stem_conv else "")
             + "; embeddings, LayerNorm and attention softmax stay float32."]
    if config.backend == "torchao":
        notes.append("torchao backend: measurement only, the model cannot be saved in this format.")
    return Compressed(model=model, storage="int8" if config.backend == "torch.ao" else "torchao",
                      dtype="int8 weights, dynamic int8 activations (float32 elsewhere)", notes=notes,
                      info={"backend": config.backend, "engine": engine, "per_channel": config.per_channel,
                            "stem_conv": stem_conv})
