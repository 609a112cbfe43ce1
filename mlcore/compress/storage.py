"""Saving and reloading optimized weights compactly, in the ordinary model directory format.

An optimized model directory is a `mlcore.modeldir` directory whose `config.json` carries a
`"compression": {"profile": ..., "storage": ...}` block; `modeldir.model_load` sees it and hands the
weights to `load_weights` here. Storage kinds:

- `dense`: plain float32 safetensors. A slimmed model needs nothing more: its per-layer head counts
  and FFN widths are in the encoder config, so `model_build` rebuilds the smaller shapes.
- `bf16`: every floating tensor stored as bfloat16 (half the bytes); reloaded into a `Bf16Model`.
- `int8`: each quantized Linear (a stem convolution rewritten as `int8.WindowLinear` included) as `<name>.qweight` (int8, row-major), `<name>.qscale` (float32,
  one per output row), `<name>.qzero` (int8) and `<name>.bias`; everything else float32. Reloading
  rebuilds the float model, quantizes it the same way, then sets the stored integer weights, so the
  reloaded model computes exactly what was saved (no re-quantization error).
- `sparse`: each mostly-zero weight matrix as `<name>.mask` (its non-zero pattern, 1 bit per element
  packed into uint8) and `<name>.values` (the non-zero values, float32, row-major). At 50% sparsity a
  matrix takes 2.125 bytes per element instead of 4. Reloaded dense: dense kernels are what run.

safetensors holds only plain tensors (no pickle), so these layouts are spelled out as tensors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

SPARSE_MIN = 0.25  # below this sparsity a mask + values costs more than it saves: stored dense


class Bf16Model(nn.Module):
    """Runs a model entirely in bfloat16: float inputs are cast in, logits cast back to float32.

    Casting the weights once (rather than autocast re-casting fp32 weights on every call) keeps the
    per-call overhead off small batches. LayerNorm and softmax still accumulate in float32 inside
    PyTorch's bf16 CPU kernels.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.to(torch.bfloat16)

    def forward(self, labels: Tensor | None = None, **batch: Tensor) -> Any:
        batch = {k: v.to(torch.bfloat16) if torch.is_floating_point(v) else v for k, v in batch.items()}
        out = self.model(labels=labels, **batch)
        out.logits = out.logits.float()
        return out

    @property
    def encoder(self) -> nn.Module:
        return self.model.encoder

    @property
    def head(self) -> nn.Module:
        return self.model.head


def state_for_storage(model: nn.Module, storage: str) -> dict[str, Tensor]:
    """The tensors to write into `model.safetensors` for `model` stored as `storage`."""
    if storage == "dense":
        return {k: v.detach().cpu().float().contiguous() if v.is_floating_point() else v.detach().cpu().contiguous()
                for k, v in model.state_dict().items()}
    if storage == "bf16":
        inner = model.model if isinstance(model, Bf16Model) else model
        return {k: (v.to(torch.bfloat16) if v.is_floating_point() else v).detach().cpu().contiguous()
                for k, v in inner.state_dict().items()}
    if storage == "int8":
        return _int8_state(model)
    if storage == "sparse":
        return _sparse_state(model)
    raise ValueError(f"unknown storage kind {storage!r}")


def load_weights(model: nn.Module, directory: Path, compression: dict[str, Any]) -> nn.Module:
    """Load `directory/model.safetensors` into a freshly built float `model`; returns the model to run."""
    tensors = load_file(str(Path(directory) / "model.safetensors"))
    storage = compression.get("storage", "dense")
    if storage == "dense":
        model.load_state_dict(tensors)
        return model
    if storage == "bf16":
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()})
        return Bf16Model(model)
    if storage == "sparse":
        model.load_state_dict(_sparse_unpack(tensors))
        return model
    if storage == "int8":
        return _int8_load(model, tensors, compression)
    raise ValueError(f"{directory}: unknown compression storage {storage!r}")


def weights_bytes(directory: Path) -> int:
    """Bytes on disk of a model directory's weights file."""
    return (Path(directory) / "model.safetensors").stat().st_size


def compression_meta(directory: Path) -> dict[str, Any] | None:
    """The `compression` block of a model directory's config (None for an ordinary model)."""
    return json.loads((Path(directory) / "config.json").read_text()).get("compression")


# --------------------------------------------------------------------------------------------- int8


def _quantized_linears(model: nn.Module) -> dict[str, nn.Module]:
    from torch.ao.nn.quantized.dynamic import Linear as DynLinear

    return {name: m for name, m in model.named_modules() if isinstance(m, DynLinear)}


def _int8_state(model: nn.Module) -> dict[str, Tensor]:
    qlinears = _quantized_linears(model)
    state: dict[str, Tensor] = {}
    for name, m in qlinears.items():
        w = m.weight()  # quantized tensor (out, in)
        if w.qscheme() in (torch.per_channel_symmetric, torch.per_channel_affine):
            scale, zero = w.q_per_channel_scales(), w.q_per_channel_zero_points()
        else:
            scale, zero = torch.tensor([w.q_scale()]), torch.tensor([w.q_zero_point()])
        state[f"{name}.qweight"] = w.int_repr().contiguous()
        state[f"{name}.qscale"] = scale.float().contiguous()
        state[f"{name}.qzero"] = zero.to(torch.int8).contiguous()  # qint8 zero points lie in [-128, 127]
        bias = m.bias()
        if bias is not None:
            state[f"{name}.bias"] = bias.detach().float().contiguous()
    prefixes = tuple(f"{name}." for name in qlinears)
    for key, value in model.state_dict().items():
        if key.startswith(prefixes) or not isinstance(value, Tensor):
            continue  # packed params of the quantized Linears (written above) and their bookkeeping
        state[key] = value.detach().cpu().contiguous()
    return state


def _int8_load(model: nn.Module, tensors: dict[str, Tensor], compression: dict[str, Any]) -> nn.Module:
    from mlcore.compress.int8 import quantize_model

    from mlcore.compress.int8 import windows_as_linear

    stem_conv = bool(compression.get("stem_conv"))
    if stem_conv:  # the saved stem convolution is a WindowLinear: rebuild that shape before loading
        windows_as_linear(model.stem)
    names = sorted({k[: -len(".qweight")] for k in tensors if k.endswith(".qweight")})
    floats = {k: v for k, v in tensors.items() if not k.startswith(tuple(f"{n}." for n in names))}
    missing, unexpected = model.load_state_dict(floats, strict=False)
    if unexpected:
        raise ValueError(f"int8 weights file has unexpected tensors: {unexpected[:5]}")
    expected_missing = {f"{n}.{p}" for n in names for p in ("weight", "bias")}
    if set(missing) - expected_missing:
        raise ValueError(f"int8 weights file lacks tensors: {sorted(set(missing) - expected_missing)[:5]}")
    from mlcore.compress.int8 import default_engine, quantized_engine

    # Pack for the engine the model was measured with (when this PyTorch has it): packing is engine-specific.
    engine = compression.get("engine") or default_engine()
    if engine not in torch.backends.quantized.supported_engines:
        engine = default_engine()
    model = quantize_model(model, engine=engine, stem_conv=stem_conv)
    qlinears = _quantized_linears(model)
    if set(qlinears) != set(names):
        raise ValueError(f"quantized layers differ from the saved ones: {sorted(set(qlinears) ^ set(names))[:5]}")
    with quantized_engine(engine):
        for name, m in qlinears.items():
            q, scale, zero = tensors[f"{name}.qweight"], tensors[f"{name}.qscale"], tensors[f"{name}.qzero"]
            if scale.numel() == 1:
                w = torch._make_per_tensor_quantized_tensor(q, float(scale), int(zero))
            else:
                w = torch._make_per_channel_quantized_tensor(q, scale.double(), zero.long(), 0)
            m.set_weight_bias(w, tensors.get(f"{name}.bias"))
    return model


# --------------------------------------------------------------------------------------------- sparse


def _sparse_state(model: nn.Module) -> dict[str, Tensor]:
    state: dict[str, Tensor] = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        zero_frac = float((value == 0).float().mean()) if value.is_floating_point() and value.dim() == 2 else 0.0
        if zero_frac < SPARSE_MIN:
            state[key] = value.float() if value.is_floating_point() else value
            continue
        nonzero = (value != 0).numpy().reshape(-1)
        state[f"{key}.mask"] = torch.from_numpy(np.packbits(nonzero))  # uint8, 8 elements per byte
        state[f"{key}.values"] = value.reshape(-1)[torch.from_numpy(nonzero)].float().contiguous()
        state[f"{key}.shape"] = torch.tensor(value.shape, dtype=torch.int64)
    return state


def _sparse_unpack(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    state = {k: v for k, v in tensors.items() if not k.endswith((".mask", ".values", ".shape"))}
    for key in (k[: -len(".mask")] for k in tensors if k.endswith(".mask")):
        shape = tuple(int(s) for s in tensors[f"{key}.shape"])
        n = int(np.prod(shape))
        nonzero = torch.from_numpy(np.unpackbits(tensors[f"{key}.mask"].numpy())[:n].astype(bool))
        dense = torch.zeros(n, dtype=torch.float32)
        dense[nonzero] = tensors[f"{key}.values"]
        state[key] = dense.view(shape)
    return state
