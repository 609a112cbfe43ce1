"""What every optimization profile shares: the registry, the context a profile fine-tunes with, its result.

A profile is one module of this package: a `<Profile>Config` dataclass and an `apply(model, config,
ctx) -> Compressed` function registered right under its definition with `@profile_register(key,
ConfigClass)`. The key is the catalog's profile key (`mlcore.catalog.PROFILES`), where the profile's
typed options (`ProfileOption`) are declared; adding a profile touches one file here plus its
catalog entry. The config's field names are the catalog's option names (a config whose options are
nested, like compact's, builds itself with a `from_options` classmethod).

`apply` receives a trained model (it may modify it in place: callers pass a copy), the profile's
config and a `CompressContext` holding what fine-tuning and the accuracy budget need (training and
validation sets, the trainer's callables, the job's training config, the baseline's validation
metric). It returns a `Compressed`: the model to run, how its weights are stored (`storage`, which
`mlcore.compress.storage` knows how to save and reload), the inference dtype and plain notes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch import nn

from mlcore import catalog
from mlcore.trainer import Callback, TrainConfig, TrainResult, predict, train

# How the optimized weights are stored and reloaded (see mlcore.compress.storage).
STORAGE_KINDS = ("dense", "bf16", "int8", "sparse")


@dataclass
class Compressed:
    """The outcome of one profile: the model to run and what the report should say about it."""

    model: nn.Module
    storage: str = "dense"  # one of STORAGE_KINDS
    dtype: str = "float32"  # inference dtype in words: float32 | bfloat16 | int8 (dynamic) + float32
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # profile specifics (reached sparsity, steps, ...)


@dataclass
class CompressContext:
    """Everything a profile may need besides the model; built by `mlcore.recipe.recipe_profile`."""

    train_set: Sequence
    val_set: Sequence | None
    collate: Callable[[list], dict[str, torch.Tensor]]
    length: Callable[[Any], int]
    evaluate: Callable[[list, list], dict[str, float]]
    primary_metric: str
    greater_is_better: bool
    train_config: TrainConfig  # the job's training config; profiles derive fine-tuning configs from it
    kind: str  # resolved target kind (binary, multiclass, regression, ...)
    budget: float | None = None  # max absolute fall of the validation primary metric; None: no limit
    baseline_val: float | None = None  # the trained model's validation primary metric
    # A freshly initialized model of a given preset (or the job's preset when None), same seed as the job.
    build_model: Callable[[str | None], nn.Module] | None = None
    preset: str = "tiny"
    callbacks: Sequence[Callback] = ()  # the job's callbacks: only their should_stop() is honoured here

    def fine_tune(self, model: nn.Module, *, epochs: int, lr_scale: float = 1.0, precision: str | None = None,
                  patience: int | None = None, callbacks: Sequence[Callback] = ()) -> TrainResult:
        """Train `model` for `epochs` with the job's settings (early stopping only with `patience`), best-val restore."""
        config = replace(self.train_config, epochs=epochs, lr=self.train_config.lr * lr_scale, patience=patience,
                         precision=precision or self.train_config.precision,
                         # a short fine-tune needs little warmup, but a jump to full lr disturbs trained weights
                         warmup_frac=min(self.train_config.warmup_frac, 0.1))
        return train(model=model, train_set=self.train_set, val_set=self.val_set, collate=self.collate,
                     length=self.length, evaluate=self.evaluate, primary_metric=self.primary_metric,
                     greater_is_better=self.greater_is_better, config=config,
                     callbacks=[_CancelOnly(self.callbacks), *callbacks])

    def val_metric(self, model: nn.Module) -> float | None:
        """The validation primary metric of `model` (None without a validation split)."""
        if not self.val_set:
            return None
        logits = predict(model=model, dataset=self.val_set, collate=self.collate, length=self.length,
                         batch_size=self.train_config.batch_size, device=self.train_config.device)
        return float(self.evaluate(logits, [self.val_set[i]["label"] for i in range(len(self.val_set))])
                     [self.primary_metric])

    def metric_drop(self, value: float | None) -> float:
        """How far `value` is below the baseline's validation metric (positive = worse), direction-aware."""
        if value is None or self.baseline_val is None or math.isnan(value):
            return 0.0 if value is not None and not math.isnan(value) else math.inf
        return self.baseline_val - value if self.greater_is_better else value - self.baseline_val

    def within_budget(self, value: float | None) -> bool:
        """True when no budget is set, or the metric fell by at most the budget."""
        if self.budget is None:
            return True
        if not self.val_set:
            return True  # nothing to check against: the report notes it
        return self.metric_drop(value) <= self.budget + 1e-12


class CompressionCancelled(Exception):
    """A job callback asked to stop while a profile was being applied."""


class _CancelOnly(Callback):
    """Forwards only cancellation: fine-tuning restarts step counts, which a progress callback would misread."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks = list(callbacks)

    def should_stop(self) -> bool:
        return any(cb.should_stop() for cb in self.callbacks)


@dataclass(frozen=True)
class ProfileImpl:
    """A registered profile implementation: its config class and `apply`."""

    key: str
    config_cls: type
    apply: Callable[[nn.Module, Any, CompressContext], Compressed]

    def config(self, **options: Any) -> Any:
        """The profile's config with `options` applied (ValueError naming an unknown option).

        `budget` is not a config field: it is the context's (`CompressContext.budget`)."""
        options = {k: v for k, v in options.items() if k != "budget"}
        from_options = getattr(self.config_cls, "from_options", None)
        if from_options is not None:
            return from_options(**options)
        known = {f.name for f in fields(self.config_cls)}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"profile {self.key!r} has no option(s) {sorted(unknown)}; valid: {sorted(known)}")
        return self.config_cls(**options)


PROFILE_IMPLS: dict[str, ProfileImpl] = {}


def profile_register(key: str, config_cls: type) -> Callable[[Callable], Callable]:
    """Decorator registering `apply` as the implementation of profile `key` (which the catalog must list)."""

    def decorate(apply: Callable) -> Callable:
        if key not in catalog.PROFILES:
            raise KeyError(f"profile {key!r} is not in mlcore.catalog.PROFILES")
        PROFILE_IMPLS[key] = ProfileImpl(key, config_cls, apply)
        return apply

    return decorate


def profile_impl_get(key: str) -> ProfileImpl:
    """The registered implementation of profile `key`; KeyError listing the valid ones otherwise."""
    try:
        return PROFILE_IMPLS[key]
    except KeyError:
        raise KeyError(f"unknown profile {key!r}; valid profiles: {', '.join(PROFILE_IMPLS)}") from None


def clone(model: nn.Module) -> nn.Module:
    """A deep copy on the CPU, so a profile never changes the caller's model."""
    return copy.deepcopy(model).cpu()


def is_quantized_linear(module: nn.Module) -> bool:
    """A dynamically quantized Linear (torch.ao): its weight is a method over `_packed_params`."""
    return hasattr(module, "_packed_params") and callable(getattr(module, "weight", None))


def encoder_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """The encoder's Linear layers by qualified name (what pruning and quantization act on)."""
    return {f"encoder.{name}": m for name, m in model.encoder.named_modules() if isinstance(m, nn.Linear)}
