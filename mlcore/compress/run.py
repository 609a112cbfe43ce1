"""Applying a profile after training: optimize, evaluate on the test split, save, measure, report.

`profile_run` is what `mlcore.recipe.recipe_run` calls when `RecipeConfig.profile` is set (the
Celery worker gets it through `recipe_run`); it is also usable on its own with any trained model.
It writes `out/model-optimized/` (an ordinary model directory with a `compression` block, which
`mlcore.modeldir.model_load` reloads) and `out/report.json` (`CompressionReport.to_dict()`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mlcore import catalog
from mlcore.compress.base import CompressContext, CompressionCancelled, clone, profile_impl_get
from mlcore.compress.report import (CompressionReport, ModelStats, encoder_weight_bytes, honest_notes,
                                    load_average, measure_latency, paired_speedup, param_count, sparsity_of,
                                    time_split, time_split_note, timing_batches,
                                    timing_unstable_note)
from mlcore.compress.storage import state_for_storage, weights_bytes
from mlcore.modeldir import json_clean, json_write
from mlcore.trainer import predict, resolve_device

OPTIMIZED_DIR = "model-optimized"
REPORT_NAME = "report.json"

# save(directory, model, state, compression, metrics) -> directory: writes a model directory
Saver = Callable[[Path, nn.Module, dict[str, torch.Tensor] | None, dict[str, Any] | None, dict[str, Any]], Path]


def _config_dict(config: Any) -> dict[str, Any]:
    return json_clean(asdict(config)) if is_dataclass(config) else {}


def _find(info: Any, key: str) -> Any:
    """The first value of `key` in a nested dict (compact nests its stages' info)."""
    if isinstance(info, dict):
        if key in info:
            return info[key]
        for value in info.values():
            found = _find(value, key)
            if found is not None:
                return found
    return None


def profile_options_split(profile: str, options: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the catalog's options of `profile`, typed with defaults filled in; the remaining config fields).

    The first part is checked by `mlcore.catalog.profile_options_resolve` (ProfileOptionError for a
    bad value); the second holds config fields the catalog does not offer (benches and tests tune
    them), checked by the profile's config class.
    """
    declared = {o.name for o in catalog.profile_get(profile).options}
    options = dict(options or {})
    typed = catalog.profile_options_resolve(profile, {k: v for k, v in options.items() if k in declared})
    return typed, {k: v for k, v in options.items() if k not in declared}


def profile_run(*, profile: str, model: nn.Module, ctx: CompressContext, test_set: Sequence,
                test_labels: Sequence[Any], baseline_dir: Path, baseline_metrics: dict[str, float],
                out: Path, save: Saver, options: dict[str, Any] | None = None,
                runs: int = 20, warmup: int = 5) -> tuple[CompressionReport, Path]:
    """Apply `profile` to a copy of the trained `model`; write out/model-optimized and out/report.json.

    `baseline_dir` is the saved baseline model directory (its file size is the baseline's bytes) and
    `baseline_metrics` its test metrics. `options` are the profile's options (the catalog's, as
    strings or typed values, plus any other field of its config); a `budget` among them replaces
    `ctx.budget`. The report's `options` holds the catalog options used, typed, defaults filled in.
    Returns the report and the optimized model directory.
    Raises `CompressionCancelled` (writing nothing) when a `ctx.callbacks` entry asks to stop.
    """
    impl = profile_impl_get(profile)
    typed, extras = profile_options_split(profile, options)
    if typed.get("budget") is not None:
        ctx = replace(ctx, budget=typed["budget"])
    config = impl.config(**{k: v for k, v in typed.items() if v is not None}, **extras)
    compressed = impl.apply(clone(model), config, ctx)
    if any(cb.should_stop() for cb in ctx.callbacks):
        raise CompressionCancelled(f"cancelled while applying profile {profile!r}")
    optimized = compressed.model.cpu().eval()
    baseline = clone(model).eval()

    logits = predict(model=optimized, dataset=test_set, collate=ctx.collate, length=ctx.length,
                     batch_size=ctx.train_config.batch_size, device="cpu")
    metrics = {k: float(v) for k, v in ctx.evaluate(logits, list(test_labels)).items()}

    out = Path(out)
    if compressed.storage == "torchao":
        raise ValueError("an int8 model quantized with the torchao backend cannot be saved; use backend torch.ao")
    state = state_for_storage(optimized, compressed.storage)
    compression = {"profile": profile, "storage": compressed.storage, "dtype": compressed.dtype,
                   "config": _config_dict(config)}
    engine = _find(compressed.info, "engine")
    if engine:
        compression["engine"] = engine  # int8: reloading packs the weights for the same kernel library
        compression["stem_conv"] = bool(_find(compressed.info, "stem_conv"))  # int8: the stem conv's shape
    optimized_dir = save(out / OPTIMIZED_DIR, optimized, state, compression, {"test": metrics})

    batches = timing_batches(test_set, ctx.collate)
    raw: dict[str, dict[int, list[float]]] = {}
    timing: dict[str, Any] = {}
    latency = measure_latency({"baseline": baseline, "optimized": optimized}, batches, runs=runs, warmup=warmup,
                              raw=raw, timing=timing)
    threads = torch.get_num_threads()

    def stats(m: nn.Module, storage: str, directory: Path, test: dict[str, float], dtype: str, lat: dict[int, float]) -> ModelStats:
        return ModelStats(metrics=test, params=param_count(m), bytes=weights_bytes(directory),
                          encoder_weight_bytes=encoder_weight_bytes(m, storage), latency_ms_b1=round(lat[1], 4),
                          latency_ms_b32=round(lat[32], 4), throughput_b32=round(1e3 / lat[32], 2),
                          sparsity=round(sparsity_of(m), 6), dtype=dtype)

    base = stats(baseline, "dense", Path(baseline_dir), dict(baseline_metrics), "float32", latency["baseline"])
    opt = stats(optimized, compressed.storage, optimized_dir, metrics, compressed.dtype, latency["optimized"])
    primary = ctx.primary_metric
    report = CompressionReport(
        profile=profile, primary_metric=primary, greater_is_better=ctx.greater_is_better,
        baseline=base, optimized=opt,
        speedup_b1=round(paired_speedup(raw["baseline"][1], raw["optimized"][1]), 3),
        speedup_b32=round(paired_speedup(raw["baseline"][32], raw["optimized"][32]), 3),
        size_ratio=round(base.bytes / opt.bytes, 3),
        encoder_weight_ratio=round(base.encoder_weight_bytes / max(1, opt.encoder_weight_bytes), 3),
        metric_delta=round(opt.metrics.get(primary, float("nan")) - base.metrics.get(primary, float("nan")), 6),
        params_ratio=round(opt.params / base.params, 4), threads=threads, load_average=load_average(),
        runs=runs, warmup=warmup, budget=ctx.budget, options=json_clean(typed), config=_config_dict(config),
        info=json_clean(compressed.info), notes=list(compressed.notes), timing=timing,
    )
    report.notes += honest_notes(report)
    if all(p.device.type == "cpu" for m in (baseline, optimized) for p in m.parameters()):
        report.time_split_b32 = time_split({"baseline": baseline, "optimized": optimized}, batches[32][0])
        report.notes.append(time_split_note(report.time_split_b32))
    device = resolve_device(ctx.train_config.device)
    if device.type == "cuda":
        report.gpu, note = _gpu_comparison(baseline, optimized, compressed.storage, batches, device, runs, warmup)
        report.notes.append(note)
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or os.environ.get("MALLOC_TOP_PAD_"):
        report.info["malloc_env"] = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    json_write(out / REPORT_NAME, report.to_dict())
    return report, optimized_dir


def _gpu_comparison(baseline: nn.Module, optimized: nn.Module, storage: str, batches: dict, device: torch.device,
                    runs: int, warmup: int) -> tuple[dict[str, Any] | None, str]:
    """The latency comparison again on the job's GPU (report.gpu), and a sentence about it."""
    if storage == "int8":
        return None, "dynamic int8 runs on the CPU only: the GPU was not timed, the latencies above are the CPU's."
    models = {"baseline": baseline.to(device), "optimized": optimized.to(device)}  # both are profile_run's own copies
    raw: dict[str, dict[int, list[float]]] = {}
    timing: dict[str, Any] = {}
    latency = measure_latency(models, batches, runs=runs, warmup=warmup, raw=raw, device=device, timing=timing)
    name = torch.cuda.get_device_name(device)
    gpu = {
        "device": name,
        **{side: {"latency_ms_b1": round(latency[side][1], 4), "latency_ms_b32": round(latency[side][32], 4)}
           for side in models},
        "speedup_b1": round(paired_speedup(raw["baseline"][1], raw["optimized"][1]), 3),
        "speedup_b32": round(paired_speedup(raw["baseline"][32], raw["optimized"][32]), 3),
        "timing": timing,
    }
    del models
    torch.cuda.empty_cache()
    note = (f"on the job's GPU ({name}), batch 32: {gpu['baseline']['latency_ms_b32']:.3f} -> "
            f"{gpu['optimized']['latency_ms_b32']:.3f} ms per record ({gpu['speedup_b32']:.2f}x), batch 1: "
            f"{gpu['speedup_b1']:.2f}x; the figures above are the CPU's.")
    slower = [f"batch {bs} ({gpu[f'speedup_b{bs}']:.2f}x)" for bs in (1, 32) if gpu[f"speedup_b{bs}"] < 0.95]
    if slower:
        note += f" On this GPU the optimized model is slower than the baseline at {' and '.join(slower)}."
    if not timing["stable"]:
        note += " " + timing_unstable_note(timing, where="the GPU")
    return gpu, note
