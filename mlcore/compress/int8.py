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

Kernel library (`engine`). PyTorch packs a quantized weight for one kernel library, and the best one
depends on the CPU and on how many rows (tokens in the batch) a call multiplies:
- 2-core AMD EPYC (Zen 4, AVX512-VNNI): fbgemm and oneDNN were equal inside the model at batch 32
  (1.84x vs 1.85x over float32, interleaved) and oneDNN was slower at batch 1 (0.81-0.88x vs 1.27x).
- 2-core Intel Xeon with AMX-INT8 (bench/compression.py's protein model, 1 thread, interleaved):
  fbgemm 1.26-1.28x at batch 32, oneDNN 1.54-1.59x; at batch 1 fbgemm 1.09x, oneDNN 0.87x. Per Linear
  (in 128, out 384): oneDNN is slower below ~200 rows and 3x faster than fbgemm at 1,000-2,300 rows.
So the default engine, `auto`, packs every weight for fbgemm and, where the CPU has AMX-INT8 and this
PyTorch has oneDNN, a second time for oneDNN (`DualEngineLinear`), and each call takes the oneDNN
kernel from LARGE_ROWS rows up: batch inference gets the AMX kernels, a single record keeps fbgemm's.
The second packing costs the int8 weights' size again in memory (not on disk). A fixed engine
(`Int8Config(engine="fbgemm" | "onednn" | "x86" | "qnnpack")`) packs once for that library only.
Per-channel and per-tensor weight scales ran at the same speed inside the model; per-channel is kept
for accuracy.

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
from torch.ao.nn.quantized.dynamic import Linear as DynLinear
from torch.ao.nn.quantized.modules.linear import LinearPackedParams

from mlcore.compress.base import CompressContext, Compressed, profile_register
from mlcore.model import cpu_has_flag

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


# From this many rows (tokens in a call) up, a DualEngineLinear takes the oneDNN kernel (module docstring).
LARGE_ROWS = 256


def cpu_has_amx_int8() -> bool:
    """True when the CPU reports Intel AMX-INT8 (Linux /proc/cpuinfo flags; False elsewhere)."""
    return cpu_has_flag("amx_int8")


def default_engine() -> str:
    """`auto` (fbgemm, plus oneDNN for large calls on AMX-INT8 CPUs; module docstring)."""
    return "auto"


def _small_engine() -> str:
    supported = torch.backends.quantized.supported_engines
    return "fbgemm" if "fbgemm" in supported else torch.backends.quantized.engine


def _auto_uses_onednn() -> bool:
    return cpu_has_amx_int8() and "onednn" in torch.backends.quantized.supported_engines


def engine_resolve(engine: str | None) -> str:
    """The engine a model is packed for: `auto` resolves to fbgemm+onednn or fbgemm on this machine."""
    if engine in (None, "", "auto"):
        return f"{_small_engine()}+onednn" if _auto_uses_onednn() else _small_engine()
    return engine


@contextlib.contextmanager
def quantized_engine(engine: str | None) -> Iterator[None]:
    """Pack quantized weights for `engine` (the packed layout is engine-specific), then restore the global.
    `auto` (and `fbgemm+onednn`) packs for fbgemm here; DualEngineLinear adds its oneDNN packing itself."""
    previous = torch.backends.quantized.engine
    if engine in ("auto", "fbgemm+onednn"):
        engine = _small_engine()
    if engine:
        torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


class DualEngineLinear(DynLinear):
    """A dynamic int8 Linear packed for two kernel libraries: fbgemm for calls with fewer than
    LARGE_ROWS rows, oneDNN (AMX-INT8) from LARGE_ROWS rows up. The int8 weights, scales and bias are
    the same for both, and `weight()` / `bias()` / the saved file are those of the fbgemm packing."""

    def __init__(self, in_features: int, out_features: int, bias_: bool = True, dtype: torch.dtype = torch.qint8) -> None:
        super().__init__(in_features, out_features, bias_=bias_, dtype=dtype)
        self._large: LinearPackedParams | None = None

    @classmethod
    def from_dynamic(cls, m: DynLinear) -> DualEngineLinear:
        new = cls(m.in_features, m.out_features, bias_=m.bias() is not None)
        new.version = m.version
        new.set_weight_bias(m.weight(), m.bias())
        return new

    def set_weight_bias(self, w: torch.Tensor, b: torch.Tensor | None) -> None:
        with quantized_engine(_small_engine()):
            super().set_weight_bias(w, b)
        with quantized_engine("onednn"):
            self._large = LinearPackedParams(dtype=torch.qint8)
            self._large.set_weight_bias(w, b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._large is not None and x.numel() >= LARGE_ROWS * self.in_features:
            return torch.ops.quantized.linear_dynamic(x, self._large._packed_params, reduce_range=True).to(x.dtype)
        return super().forward(x)

    def _get_name(self) -> str:
        return "DynamicQuantizedLinear(fbgemm+onednn)"


def _dual_engine(module: nn.Module) -> nn.Module:
    """Replace every dynamic quantized Linear under `module` by a DualEngineLinear (same weights)."""
    if isinstance(module, DynLinear) and not isinstance(module, DualEngineLinear):
        return DualEngineLinear.from_dynamic(module)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, DynLinear) and not isinstance(child, DualEngineLinear):
                setattr(parent, name, DualEngineLinear.from_dynamic(child))
    return module


@dataclass
class Int8Config:
    backend: str = "torch.ao"  # torch.ao (dynamic quantized Linear) | torchao (eager; measurement only)
    engine: str = "auto"  # torch.ao kernel library: auto | x86 | fbgemm | onednn | qnnpack (module docstring)
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
    engine = engine or default_engine()
    with warnings.catch_warnings(), quantized_engine(engine):
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
    if engine_resolve(engine).endswith("+onednn"):
        for part in [*parts, "stem"]:
            if getattr(model, part, None) is not None:
                setattr(model, part, _dual_engine(getattr(model, part)))
    return model


@profile_register("int8", Int8Config)
def apply(model: nn.Module, config: Int8Config, ctx: CompressContext) -> Compressed:
    """Quantize `model` (in place, on the CPU); no fine-tuning is needed or done."""
    engine = engine_resolve(config.engine or default_engine())
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
