"""The one Transformer encoder every modality runs on, its thin task heads, and attention rollout.

Reads top to bottom: config and size presets, the dropout helpers, attention, MLP, block, encoder,
heads, rollout.

A modality stem turns records into token embeddings `(B, T, D)` (positions included when the modality
has an order) and a padding mask; the encoder prepends a learned [CLS] vector, runs pre-LayerNorm
blocks and returns the final hidden states, the pooled [CLS] vector and the per-token states.

Where dropout is applied (a design choice that differs from Hugging Face BERT, made for speed on CPU
and kept an honest regularizer at the same rate, `config.dropout` / `config.attn_dropout`, 0.1):

- input dropout on the [CLS] + token embeddings, as BERT drops its embedding output;
- residual dropout on the attention output and on the MLP output, fused with the residual add
  (`x + dropout(f(x))`, one kernel forward and one backward), as BERT and GPT-2 drop the output of
  each sublayer before the residual add;
- attention dropout as column-wise DropAttention (Zehui Lin et al., 2019, "DropAttention(c)"; the
  DropKey idea of Li et al., CVPR 2023, of dropping before the softmax): for each sample and head,
  each key is hidden from every query of that layer with probability `attn_dropout`, by masking its
  logits *before* the softmax, so the softmax renormalizes over the surviving keys. BERT instead
  zeroes individual attention probabilities *after* the softmax and rescales by 1/(1-p). Dropping
  keys before the softmax turns attention dropout into a small boolean mask `(B, H, 1, T)` that
  PyTorch's fused scaled-dot-product kernel takes with the padding mask (about +10% on the
  attention kernel), whereas post-softmax dropout (`dropout_p`) pushes PyTorch off that kernel onto
  the unfused path (about +60% on CPU) and a per-link mask `(B, H, T, T)` costs a full-size random
  draw per layer (measured: 7% of a training step). Each (query, key) link is still dropped with
  probability `attn_dropout`; what differs is that the drops are shared by the queries of one head.
  The [CLS] key is never dropped, so no row of the attention can lose all of its keys;
- the classification / regression / token heads drop their input features, as BERT's heads do.

All dropout masks come from one cheap generator (`_keep_mask`): 16 random bits per element, drawn
four at a time from the default torch generator (so `torch.manual_seed` makes runs reproducible),
compared against a threshold. PyTorch's own `F.dropout` draws a float Bernoulli per element and
costs about 6 ns per element on CPU, which made dropout the largest cost outside the matmuls.

Compression (structured slimming, dynamic quantization, pruning) works on this model as is: every
projection is a plain `nn.Linear`; each block carries its own head count and FFN width, recorded in
`EncoderConfig.layer_n_heads` / `layer_d_ff` so a slimmed model saves and reloads from its config.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlcore.catalog import PRESETS

# ---------------------------------------------------------------------------------------------------
# Config and size presets


@dataclass
class EncoderConfig:
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4  # heads of an unslimmed layer; head_dim = d_model // n_heads unless set
    d_ff: int = 1024  # MLP width of an unslimmed layer (4 * d_model, as in BERT / GPT-2)
    dropout: float = 0.1  # input, residual and head dropout (see the module docstring for where)
    attn_dropout: float = 0.1  # rate of keys hidden per (sample, head), before the softmax
    max_len: int = 512  # longest token sequence (without [CLS]) a stem may hand over; checked
    layer_norm_eps: float = 1e-5  # PyTorch's default; BERT's 1e-12 only matters in fp64
    init_std: float = 0.02  # normal init of Linear weights, as BERT / GPT-2
    # Width of one head. None means d_model // n_heads; it is stored explicitly once heads are
    # removed, because it can no longer be derived from a per-layer head count.
    head_dim: int | None = None
    # Per-layer sizes after structured slimming (None: every layer has n_heads / d_ff). Kept in the
    # config so that a slimmed checkpoint rebuilds the exact module shapes before loading weights.
    layer_n_heads: list[int] | None = None
    layer_d_ff: list[int] | None = None

    def __post_init__(self) -> None:
        if self.head_dim is None and self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        for name in ("layer_n_heads", "layer_d_ff"):
            sizes = getattr(self, name)
            if sizes is not None and len(sizes) != self.n_layers:
                raise ValueError(f"{name} has {len(sizes)} entries for {self.n_layers} layers")

    @property
    def dim_per_head(self) -> int:
        return self.head_dim if self.head_dim is not None else self.d_model // self.n_heads

    def heads_of(self, layer: int) -> int:
        return self.layer_n_heads[layer] if self.layer_n_heads is not None else self.n_heads

    def d_ff_of(self, layer: int) -> int:
        return self.layer_d_ff[layer] if self.layer_d_ff is not None else self.d_ff

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; `EncoderConfig.from_dict(c.to_dict()) == c`."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown EncoderConfig fields: {sorted(unknown)}")
        return cls(**data)


def _from_preset(name: str, overrides: dict[str, Any]) -> EncoderConfig:
    # The shapes live in mlcore.catalog (torch-free), so the portal shows the numbers we build.
    shape = {k: PRESETS[name][k] for k in ("d_model", "n_layers", "n_heads", "d_ff", "dropout")}
    # one rate for both kinds of dropout unless a caller sets attn_dropout explicitly
    config = EncoderConfig(**shape, attn_dropout=shape["dropout"])
    return replace(config, **overrides)


def encoder_tiny(**overrides: Any) -> EncoderConfig:
    return _from_preset("tiny", overrides)


def encoder_small(**overrides: Any) -> EncoderConfig:
    return _from_preset("small", overrides)


def encoder_base(**overrides: Any) -> EncoderConfig:
    return _from_preset("base", overrides)


PRESET_BUILDERS = {"tiny": encoder_tiny, "small": encoder_small, "base": encoder_base}


# ---------------------------------------------------------------------------------------------------
# Dropout helpers


def _random_lanes(shape: tuple[int, ...], device: torch.device) -> Tensor:
    """Independent uniform int16 values: one full-range int64 draw yields four of them, so the
    default generator runs a quarter as often as for a float Bernoulli per element."""
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-(2**63), None)  # full 64-bit range: every 16-bit lane is uniform
    return words.view(torch.int16)[:n].view(shape)


def _threshold(p: float) -> int:
    return round(p * 65536) - 32768  # P(lane < threshold) = p, quantized to 1/65536


def _keep_mask(shape: tuple[int, ...], p: float, device: torch.device) -> Tensor:
    """Boolean mask, True with probability 1 - p, independent per element."""
    return _random_lanes(shape, device) >= _threshold(p)


def _scaled_keep(shape: tuple[int, ...], p: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Inverted-dropout multiplier: 1/(1-p) with probability 1 - p, else 0, in `dtype`.

    Made once per forward and reused by backward: multiplying by a boolean mask would convert it
    to floats twice (forward and backward), which cost more than the random draw.
    """
    keep = torch.empty(shape, dtype=dtype, device=device)
    torch.ge(_random_lanes(shape, device), _threshold(p), out=keep)
    return keep.mul_(1.0 / (1.0 - p))


class _DropoutAdd(torch.autograd.Function):
    """`residual + dropout(x)` as one addcmul; backward is one multiply by the saved mask."""

    @staticmethod
    def forward(ctx: Any, residual: Tensor | None, x: Tensor, p: float) -> Tensor:
        dtype = x.dtype if residual is None else torch.promote_types(residual.dtype, x.dtype)
        keep = _scaled_keep(tuple(x.shape), p, dtype, x.device)  # 0 or 1/(1-p)
        ctx.save_for_backward(keep)
        ctx.x_dtype = x.dtype
        return x * keep if residual is None else torch.addcmul(residual, x, keep)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        (keep,) = ctx.saved_tensors
        grad_x = (grad * keep).to(ctx.x_dtype) if ctx.needs_input_grad[1] else None
        return (grad if ctx.needs_input_grad[0] else None), grad_x, None


def dropout_add(residual: Tensor, x: Tensor, p: float, training: bool) -> Tensor:
    """`residual + F.dropout(x, p, training)`, in one pass and with a cheap mask."""
    if not training or p == 0.0:
        return residual + x
    return _DropoutAdd.apply(residual, x, p)


def fast_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Inverted dropout with the cheap mask; the same distribution as `F.dropout`."""
    if not training or p == 0.0:
        return x
    return _DropoutAdd.apply(None, x, p)


# ---------------------------------------------------------------------------------------------------
# Blocks


class _FlashAttentionCPU(torch.autograd.Function):
    """PyTorch's fused CPU attention on a fused QKV tensor, for fp32 training.

    The public SDPA call gives the same numbers; its backward, though, returns separate q/k/v
    gradients that autograd stacks (one copy) and then makes contiguous for the QKV Linear (a second
    copy). This backward writes the three straight into the fused `(B, T, 3, H, Dh)` layout.
    """

    @staticmethod
    def forward(ctx: Any, qkv: Tensor, mask: Tensor | None, scale: float) -> Tensor:
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, Dh), views
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, attn_mask=mask, scale=scale)
        ctx.save_for_backward(qkv, mask, out, lse)
        ctx.scale = scale
        return out  # (B, H, T, Dh), laid out as (B, T, H, Dh)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None, None]:
        qkv, mask, out, lse = ctx.saved_tensors
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        grads = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
            grad_out, q, k, v, out, lse, 0.0, False, attn_mask=mask, scale=ctx.scale
        )
        return torch.stack([g.transpose(1, 2) for g in grads], dim=2), None, None  # (B, T, 3, H, Dh)


def cpu_has_flag(flag: str) -> bool:
    """True when the CPU reports `flag` (e.g. `amx_bf16`) in Linux's /proc/cpuinfo; False elsewhere."""
    return flag in _cpu_flags()


def cpu_name() -> str:
    """The CPU's model name from Linux's /proc/cpuinfo ('' where there is none)."""
    return _cpuinfo("model name")


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    return frozenset(_cpuinfo("flags").split())


@functools.lru_cache(maxsize=None)
def _cpuinfo(key: str) -> str:
    """The first value of `key` in /proc/cpuinfo ('' where the file or the key is missing)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                name, sep, value = line.partition(":")
                if sep and name.strip() == key:
                    return value.strip()
    except OSError:
        pass
    return ""


def _bf16_cpu_attention_fused() -> bool:
    """Whether bf16 inference on the CPU takes PyTorch's fused attention kernel (else matmul + softmax).

    Measured on the bench's protein model in bf16 (bench/README.md, "Compression"; 1
    thread, interleaved): on a 2-core Intel Xeon with AMX-BF16 the fused kernel made the whole
    forward 1.69-1.70x faster than float32 at batch 32 against 1.49-1.54x with matmul + softmax,
    and 0.83x against 0.68x at batch 1. Without AMX (the AMD EPYC, AVX512-BF16) the fused kernel
    was the slower one in bf16 (docs/performance.md), so there matmul + softmax stays. Training in bf16
    always takes matmul + softmax: with the fused kernel a bf16 autocast training step ran 2.0x
    slower on the AMX Xeon too (`small` encoder, 32 x 60 tokens: 201.8 vs 101.7 ms; `base`: 245.5
    vs 171.6 ms).
    """
    return cpu_has_flag("amx_bf16")


class Attention(nn.Module):
    """Multi-head self-attention with one fused QKV projection.

    `qkv.weight` rows are laid out [q heads | k heads | v heads], each head `head_dim` rows, so
    removing head h means dropping the same row slice in all three thirds and the matching columns
    of `proj` (see `keep_heads`).
    """

    def __init__(self, d_model: int, n_heads: int, head_dim: int, attn_dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = head_dim
        self.attn_dropout = attn_dropout
        self.qkv = nn.Linear(d_model, 3 * n_heads * head_dim)
        self.proj = nn.Linear(n_heads * head_dim, d_model)

    def forward(
        self, x: Tensor, key_keep: Tensor | None, bias: Tensor | None, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        B, T, _ = x.shape
        H, Dh = self.n_heads, self.head_dim
        if H == 0:  # every head slimmed away: the sublayer reduces to proj's bias
            return self.proj(x.new_zeros(B, T, 0)), (x.new_zeros(B, 0, T, T) if need_weights else None)
        qkv = self.qkv(x).view(B, T, 3, H, Dh)  # (B, T, 3, H, Dh)
        # (3, B, H, T, Dh) views, no copy: SDPA only needs a unit last stride
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, Dh)

        keep = key_keep  # (B, 1, 1, T) bool padding mask or None
        if self.training and self.attn_dropout > 0.0:
            # column-wise DropAttention (module docstring): one draw per (sample, head, key)
            drop_keep = _keep_mask((B, H, 1, T), self.attn_dropout, x.device)  # (B, H, 1, T)
            drop_keep[..., 0] = True  # never drop the [CLS] key: no row can lose every key
            keep = drop_keep if keep is None else drop_keep & keep  # (B, H, 1, T)
        mask = keep
        if bias is not None:  # float logits bias (B, H|1, T, T); masked links get -inf
            mask = bias.to(q.dtype) if keep is None else bias.to(q.dtype).masked_fill(~keep, float("-inf"))

        # Low precision on the CPU takes matmul + softmax, except bf16 inference on AMX-BF16 CPUs
        # (`_bf16_cpu_attention_fused`); the weights themselves only come from the explicit path.
        explicit = need_weights or (
            x.device.type == "cpu" and q.dtype != torch.float32
            and not (q.dtype == torch.bfloat16 and not qkv.requires_grad and _bf16_cpu_attention_fused())
        )
        if explicit:
            scores = (q @ k.transpose(-2, -1)) * (Dh**-0.5)  # (B, H, T, T)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
            weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)  # (B, H, T, T)
            y = weights @ v  # (B, H, T, Dh)
        elif (
            x.device.type == "cpu"
            and q.dtype == torch.float32
            and qkv.requires_grad
            and (mask is None or not mask.requires_grad)  # the fused backward gives no mask gradient
        ):
            weights = None
            if mask is not None and mask.dtype == torch.bool:  # the kernel takes an additive mask
                mask = torch.zeros(mask.shape, dtype=q.dtype).masked_fill_(~mask, float("-inf"))
            y = _FlashAttentionCPU.apply(qkv, mask, Dh**-0.5)  # (B, H, T, Dh)
        else:
            weights = None
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, T, Dh)
        y = y.transpose(1, 2).reshape(B, T, H * Dh)  # (B, T, H*Dh); a view when SDPA wrote (B, T, H, Dh)
        return self.proj(y), (weights if need_weights else None)

    @torch.no_grad()
    def keep_heads(self, heads: list[int]) -> None:
        """Structured slimming: keep only `heads` (indices into the current heads), in that order."""
        Dh = self.head_dim
        idx = torch.tensor([h * Dh + i for h in heads for i in range(Dh)], dtype=torch.long)
        rows = torch.cat([idx + part * self.n_heads * Dh for part in range(3)])
        qkv = nn.Linear(self.qkv.in_features, rows.numel(), device=self.qkv.weight.device)
        qkv.weight.copy_(self.qkv.weight[rows])
        qkv.bias.copy_(self.qkv.bias[rows])
        proj = nn.Linear(idx.numel(), self.proj.out_features, device=self.proj.weight.device)
        proj.weight.copy_(self.proj.weight[:, idx])
        proj.bias.copy_(self.proj.bias)
        self.qkv, self.proj, self.n_heads = qkv, proj, len(heads)


class MLP(nn.Module):
    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d_model, d_ff)
        self.proj = nn.Linear(d_ff, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.gelu(self.fc(x)))  # (B, T, d_ff) -> (B, T, D); exact GELU, as BERT

    @torch.no_grad()
    def keep_neurons(self, neurons: Tensor | list[int]) -> None:
        """Structured slimming: keep only the given hidden neurons."""
        idx = torch.as_tensor(neurons, dtype=torch.long, device=self.fc.weight.device)
        fc = nn.Linear(self.fc.in_features, idx.numel(), device=self.fc.weight.device)
        fc.weight.copy_(self.fc.weight[idx])
        fc.bias.copy_(self.fc.bias[idx])
        proj = nn.Linear(idx.numel(), self.proj.out_features, device=self.proj.weight.device)
        proj.weight.copy_(self.proj.weight[:, idx])
        proj.bias.copy_(self.proj.bias)
        self.fc, self.proj = fc, proj


class Block(nn.Module):
    """Pre-LayerNorm block: x + drop(attn(ln(x))), then x + drop(mlp(ln(x))).

    Pre-LN keeps the residual stream an identity path, which trains stably without warmup tricks
    at the small sizes used here; the encoder adds the final LayerNorm that pre-LN needs.
    """

    def __init__(self, config: EncoderConfig, layer: int) -> None:
        super().__init__()
        D = config.d_model
        self.dropout = config.dropout
        self.ln_1 = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.attn = Attention(D, config.heads_of(layer), config.dim_per_head, config.attn_dropout)
        self.ln_2 = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.mlp = MLP(D, config.d_ff_of(layer))

    def forward(
        self, x: Tensor, key_keep: Tensor | None, bias: Tensor | None, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        a, weights = self.attn(self.ln_1(x), key_keep, bias, need_weights)  # (B, T, D)
        x = dropout_add(x, a, self.dropout, self.training)
        x = dropout_add(x, self.mlp(self.ln_2(x)), self.dropout, self.training)
        return x, weights


# ---------------------------------------------------------------------------------------------------
# Encoder


@dataclass
class EncoderOutput:
    hidden: Tensor  # (B, 1+T, D) after the final LayerNorm; index 0 is [CLS]
    pooled: Tensor  # (B, D) = hidden[:, 0]
    tokens: Tensor  # (B, T, D) = hidden[:, 1:]
    attentions: list[Tensor] | None = None  # per layer (B, H, 1+T, 1+T), only when asked


class Encoder(nn.Module):
    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        D = config.d_model
        # The [CLS] vector is the encoder's, not the stems': every modality gets the same pooling.
        self.cls = nn.Parameter(torch.zeros(1, 1, D))
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layers))
        self.ln_f = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.apply(self._init_weights)
        nn.init.normal_(self.cls, std=config.init_std)
        # GPT-2's scaled init: each residual branch adds to the stream, so its output projection
        # starts smaller with depth and the stream's variance does not grow with the layer count.
        for block in self.blocks:
            for linear in (block.attn.proj, block.mlp.proj):
                nn.init.normal_(linear.weight, std=config.init_std / math.sqrt(2 * config.n_layers))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=self.config.init_std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(
        self,
        x: Tensor,
        pad_mask: Tensor | None = None,
        attn_bias: Tensor | None = None,
        output_attentions: bool = False,
    ) -> EncoderOutput:
        """Encode `x` (B, T, D), token embeddings from a modality stem (positions already added).

        pad_mask: (B, T) bool, True for real tokens; None means all real. Padded tokens never change
            the outputs of real ones (their keys are masked); their own outputs are meaningless.
        attn_bias: float (B, H, T, T) or (B, 1, T, T) added to the attention logits over the T input
            tokens (pairwise features); the [CLS] row and column get 0. With per-head biases, H must
            match every layer's head count (a slimmed model takes (B, 1, T, T) or re-indexed biases).
        output_attentions: also return each layer's softmax weights (B, H, 1+T, 1+T), computed by the
            explicit matmul + softmax path; without it the fused SDPA kernel runs.
        """
        B, T, D = x.shape
        if T > self.config.max_len:
            raise ValueError(f"sequence of {T} tokens is longer than max_len {self.config.max_len}")
        h = torch.cat([self.cls.expand(B, 1, D).to(x.dtype), x], dim=1)  # (B, 1+T, D)
        h = fast_dropout(h, self.config.dropout, self.training)

        key_keep = None
        # All-real batches (fixed-length inputs, well-bucketed batches) skip the mask entirely, which
        # keeps SDPA on its unmasked path and materializes nothing. Under torch.export that check would
        # be a data-dependent branch, so an exported graph always applies the mask (same outputs).
        if pad_mask is not None and (torch.compiler.is_exporting() or not bool(pad_mask.all())):
            key_keep = F.pad(pad_mask.bool(), (1, 0), value=True)[:, None, None, :]  # (B, 1, 1, 1+T)
        bias = None
        if attn_bias is not None:
            bias = F.pad(attn_bias, (1, 0, 1, 0))  # (B, H|1, 1+T, 1+T): [CLS] links get zero bias

        attentions: list[Tensor] | None = [] if output_attentions else None
        for block in self.blocks:
            h, weights = block(h, key_keep, bias, output_attentions)
            if attentions is not None:
                attentions.append(weights)
        h = self.ln_f(h)  # (B, 1+T, D)
        return EncoderOutput(hidden=h, pooled=h[:, 0], tokens=h[:, 1:], attentions=attentions)

    @torch.no_grad()
    def slim_(self, layer: int, heads: list[int] | None = None, neurons: Tensor | list[int] | None = None) -> None:
        """Remove attention heads / MLP neurons of one layer in place, keeping `self.config` in sync."""
        c = self.config
        n_heads = [c.heads_of(i) for i in range(c.n_layers)]
        d_ff = [c.d_ff_of(i) for i in range(c.n_layers)]
        block = self.blocks[layer]
        if heads is not None:
            block.attn.keep_heads(list(heads))
            n_heads[layer] = block.attn.n_heads
        if neurons is not None:
            block.mlp.keep_neurons(neurons)
            d_ff[layer] = block.mlp.fc.out_features
        self.config = replace(c, head_dim=c.dim_per_head, layer_n_heads=n_heads, layer_d_ff=d_ff)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ---------------------------------------------------------------------------------------------------
# Heads: dropout + Linear, loss in forward when labels are given (Hugging Face style)


@dataclass
class HeadOutput:
    loss: Tensor | None
    logits: Tensor


# A pytree node, so that torch.export (and PT2E quantization on top of it) can trace a TaskModel.
torch.export.register_dataclass(HeadOutput)


class ClassificationHead(nn.Module):
    """Single-label classification of pooled features `(B, D)`; binary tasks use 2 classes."""

    def __init__(self, d_model: int, n_classes: int, class_weights: Tensor | None = None, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, n_classes)
        # a buffer, so the weights travel with the state dict and the device
        self.register_buffer("class_weights", None if class_weights is None else class_weights.float())

    def forward(self, features: Tensor, labels: Tensor | None = None) -> HeadOutput:
        logits = self.out(self.dropout(features))  # (B, C)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float(), labels.long(), weight=self.class_weights)
        return HeadOutput(loss=loss, logits=logits)


class RegressionHead(nn.Module):
    """(Multi-target) regression on standardized targets; NaN targets are left out of the loss.

    The caller standardizes targets (its statistics travel with the model files); the head only
    masks missing values, so a record with some targets missing still trains the others.
    """

    def __init__(self, d_model: int, n_targets: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, n_targets)

    def forward(self, features: Tensor, labels: Tensor | None = None) -> HeadOutput:
        logits = self.out(self.dropout(features))  # (B, n_targets)
        loss = None
        if labels is not None:
            target = labels.to(logits.dtype).view_as(logits)
            present = ~torch.isnan(target)
            diff = torch.where(present, logits - target.nan_to_num(), 0.0).float()
            # mean over present values; 0 (with a graph) when every target is missing
            loss = diff.pow(2).sum() / present.sum().clamp(min=1)
        return HeadOutput(loss=loss, logits=logits)


class LossHead(nn.Module):
    """A linear head on pooled features `(B, D)` whose loss the target kind gives: `loss(logits,
    labels)` is a module-level function of the kind's module (so the head can be copied and pickled).
    Kinds that need no special head state (no class weights, no per-token logits) use it."""

    def __init__(self, d_model: int, n_outputs: int, loss: Callable[[Tensor, Tensor], Tensor],
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, n_outputs)
        self.loss = loss

    def forward(self, features: Tensor, labels: Tensor | None = None) -> HeadOutput:
        logits = self.out(self.dropout(features))  # (B, n_outputs)
        return HeadOutput(loss=None if labels is None else self.loss(logits, labels), logits=logits)


class TokenClassificationHead(nn.Module):
    """Per-token labels on `(B, T, D)` token features; `ignore_index` marks padding / unlabeled."""

    def __init__(self, d_model: int, n_labels: int, ignore_index: int = -100, dropout: float = 0.1) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, n_labels)

    def forward(self, features: Tensor, labels: Tensor | None = None) -> HeadOutput:
        logits = self.out(self.dropout(features))  # (B, T, n_labels)
        loss = None
        if labels is not None:
            flat = labels.reshape(-1).long()
            counted = (flat != self.ignore_index).sum()
            loss = F.cross_entropy(
                logits.reshape(-1, logits.size(-1)).float(), flat, ignore_index=self.ignore_index, reduction="sum"
            ) / counted.clamp(min=1)  # a plain mean would be 0/0 = NaN for an all-ignored batch
        return HeadOutput(loss=loss, logits=logits)


# ---------------------------------------------------------------------------------------------------
# Explanation


@torch.no_grad()
def attention_rollout(attentions: list[Tensor], pad_mask: Tensor | None = None) -> Tensor:
    """Attention rollout (Abnar & Zuidema, 2020) from [CLS]: `(B, 1+T)`, each row summing to 1.

    Each layer's head-averaged attention is mixed half and half with the identity (the residual
    connection carries the token itself forward), the layers are multiplied from the first up, and
    the [CLS] row says how much each input position flows into the pooled vector. Padded positions
    (`pad_mask` False, over the T input tokens) get exactly 0.
    """
    rollout = None
    for weights in attentions:  # each (B, H, 1+T, 1+T)
        a = weights.float().mean(dim=1)  # (B, 1+T, 1+T)
        eye = torch.eye(a.size(-1), device=a.device)
        a = 0.5 * a + 0.5 * eye
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout  # (B, 1+T, 1+T)
    if rollout is None:
        raise ValueError("attention_rollout needs the attentions of at least one layer")
    cls_row = rollout[:, 0]  # (B, 1+T)
    if pad_mask is not None:
        real = F.pad(pad_mask.bool(), (1, 0), value=True)  # (B, 1+T)
        cls_row = cls_row * real
    return cls_row / cls_row.sum(dim=-1, keepdim=True)
