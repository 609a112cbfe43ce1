"""The compression report: one dataclass, stored by the job as `report.json`, and how it is measured.

Every figure compares the baseline (the job's trained float32 model) with the optimized model on the
same test split, in the same process, on the same machine:

- `metrics`: every test metric; `metric_delta` = optimized - baseline on the primary metric (signed:
  negative is worse for greater-is-better metrics such as ROC-AUC, positive is worse for RMSE).
- `params`: stored parameter values (a quantized weight counts once per int8 element); `bytes`: size
  of the saved weights file (`model.safetensors`); `encoder_weight_bytes`: bytes of the encoder's
  Linear weights as stored (int8 rows + scales, sparse masks + values, ...).
- `latency_ms_b1` / `latency_ms_b32`: milliseconds per record when predicting one record at a time /
  batches of 32, the median of the last `runs` (>= 20) timed forward passes after `warmup` untimed
  ones, the two models timed alternately (interleaved) so that a busy machine slows both alike. The
  same test records are used for both models. `throughput_b32` is records per second at batch 32.
- `timing`: the conditions of those timings and whether they can be trusted. Timing goes on, one
  round at a time, until the relative spread (interquartile range / median) of the last `runs`
  rounds is at most `STABLE_SPREAD` for every model and batch size, or `max_rounds` rounds were
  timed; `stable` says which, `spread` gives the spread per model and batch size (`max_spread` the
  largest), `rounds` the timed rounds in all. `load_before` / `load_after` are the 1, 5 and
  15-minute load averages when timing began and ended, `cpus` the machine's CPUs and `cores` those
  this process may use: the same kind of model timed 0.9 ms on an idle machine and 190 ms on a
  saturated one, and only these say which figure to believe.
- `speedup_b1` / `speedup_b32`: the median over rounds of baseline time / optimized time within the
  same round. On a machine shared with other work the load drifts between rounds; a ratio of two
  timings taken back to back cancels most of that drift, a ratio of two medians does not.
- `sparsity`: share of exactly-zero encoder Linear weights; `dtype`: what the model computes in.
- `threads` (torch intra-op threads) and the 1-minute load average at measurement time
  (`load_average`) are recorded, because on a shared machine they decide how far the timings can be
  trusted.
- `time_split_b32`: per model, milliseconds per batch of 32 spent in the matrix-multiply layers
  (Linear and Conv1d, float or int8) and in everything else (attention scores and softmax, GELU,
  LayerNorm, residual adds, embeddings), timed with forward hooks in separate interleaved runs (CPU
  models only). It says where a profile's gain comes from: int8 speeds up only the first part, so
  the second bounds its speedup however fast the int8 kernels are.
- `gpu`: for a job trained on a GPU, the same latency comparison once more on that GPU (`device`:
  its name; `baseline` / `optimized`: `latency_ms_b1` / `latency_ms_b32`; `speedup_b1` /
  `speedup_b32`; `timing` as above), each timed call ending with a device synchronize; None for a CPU job and for
  int8 models, which run on the CPU only (a note says so). The top-level figures stay the CPU's, so
  reports of CPU and GPU jobs compare like with like.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mlcore.compress.base import is_quantized_linear
from mlcore.compress.pruned import linear_sparsity
from mlcore.compress.storage import Bf16Model, state_for_storage

LATENCY_RUNS = 20
LATENCY_WARMUP = 5
# Largest relative spread (interquartile range / median) of the last LATENCY_RUNS timings of every
# model and batch size for a latency to count as stable; timing stops there or at the round cap.
STABLE_SPREAD = 0.10
LATENCY_MAX_ROUNDS = 5 * LATENCY_RUNS


@dataclass
class ModelStats:
    """One side of the report (baseline or optimized)."""

    metrics: dict[str, float]
    params: int
    bytes: int
    encoder_weight_bytes: int
    latency_ms_b1: float
    latency_ms_b32: float
    throughput_b32: float
    sparsity: float
    dtype: str


@dataclass
class CompressionReport:
    """What a profile gained and lost against the baseline; `to_dict()` is the report.json content."""

    profile: str
    primary_metric: str
    greater_is_better: bool
    baseline: ModelStats
    optimized: ModelStats
    speedup_b1: float  # baseline latency / optimized latency; > 1 is faster
    speedup_b32: float
    size_ratio: float  # baseline bytes / optimized bytes; > 1 is smaller
    encoder_weight_ratio: float  # baseline / optimized encoder Linear weight bytes
    metric_delta: float  # optimized - baseline primary test metric
    params_ratio: float  # optimized / baseline parameter count
    threads: int
    device: str = "cpu"
    load_average: float | None = None
    runs: int = LATENCY_RUNS
    warmup: int = LATENCY_WARMUP
    budget: float | None = None
    options: dict[str, Any] = field(default_factory=dict)  # the catalog's profile options used (typed)
    config: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    torch_version: str = torch.__version__
    time_split_b32: dict[str, dict[str, float]] = field(default_factory=dict)  # see the module docstring
    timing: dict[str, Any] = field(default_factory=dict)  # conditions and stability of the latencies (module doc)
    gpu: dict[str, Any] | None = None  # the latency comparison on the job's GPU (module docstring)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (the `report.json` layout)."""
        return asdict(self)


# ------------------------------------------------------------------------------------------ measuring


def param_count(model: nn.Module) -> int:
    """Stored parameter values: float parameters plus int8 weight elements of quantized Linears."""
    n = sum(p.numel() for p in model.parameters())
    for m in model.modules():
        if is_quantized_linear(m):
            n += m.weight().numel() + (m.bias().numel() if m.bias() is not None else 0)
    return n


def _linear_names(model: nn.Module) -> list[str]:
    inner = model.model if isinstance(model, Bf16Model) else model
    return [f"encoder.{name}" for name, m in inner.encoder.named_modules()
            if isinstance(m, nn.Linear) or is_quantized_linear(m)]


def encoder_weight_bytes(model: nn.Module, storage: str) -> int:
    """Bytes of the encoder Linear weights as `storage` writes them (biases excluded)."""
    state = state_for_storage(model, storage)
    total = 0
    for name in _linear_names(model):
        for key, value in state.items():
            if key.startswith(f"{name}.") and not key.endswith(".bias"):
                total += value.numel() * value.element_size()
    return total


def sparsity_of(model: nn.Module) -> float:
    """Share of zero encoder Linear weights (see mlcore.compress.pruned.linear_sparsity)."""
    return linear_sparsity(model.model if isinstance(model, Bf16Model) else model)


def timing_batches(examples: Sequence[Any], collate: Callable[[list], dict[str, Tensor]],
                   n_single: int = 8) -> dict[int, list[dict[str, Tensor]]]:
    """Inputs for latency: the first 32 examples as one batch, and the first `n_single` one by one."""
    def strip(batch: dict[str, Tensor]) -> dict[str, Tensor]:
        batch.pop("labels", None)
        return batch

    items = [examples[i] for i in range(min(32, len(examples)))]
    return {1: [strip(collate([e])) for e in items[:n_single]], 32: [strip(collate(items))]}


def machine_load() -> dict[str, Any]:
    """The machine's 1, 5 and 15-minute load averages (None where the OS reports none), its CPUs and
    the cores this process may use, to record beside a timing."""
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return {"load": load, "cpus": os.cpu_count() or 1, "cores": cores}


def relative_spread(times: Sequence[float], inputs: Sequence[int] | None = None) -> float:
    """Interquartile range over median of `times` (0 for fewer than two).

    `inputs` (one per time: which input was timed) makes it the noise alone: each time is first
    divided by the median time of its own input, so one long record among short ones at batch 1
    is not taken for an unsteady machine.
    """
    if len(times) < 2:
        return 0.0
    if inputs is not None:
        groups: dict[int, list[float]] = {}
        for t, k in zip(times, inputs):
            groups.setdefault(k, []).append(t)
        medians = {k: statistics.median(v) for k, v in groups.items()}
        times = [t / medians[k] if medians[k] > 0 else math.inf for t, k in zip(times, inputs)]
    q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return (q3 - q1) / median if median > 0 else math.inf


@torch.inference_mode()
def measure_latency(models: dict[str, nn.Module], batches: dict[int, list[dict[str, Tensor]]], *,
                    runs: int = LATENCY_RUNS, warmup: int = LATENCY_WARMUP,
                    raw: dict[str, dict[int, list[float]]] | None = None,
                    device: str | torch.device = "cpu", max_rounds: int | None = None,
                    threshold: float = STABLE_SPREAD,
                    timing: dict[str, Any] | None = None) -> dict[str, dict[int, float]]:
    """Median milliseconds per record of each model at each batch size, timed interleaved, over the
    last `runs` rounds once they are stable.

    `raw`, when given, receives the timed runs the medians use (seconds per batch, in round order) for
    paired ratios. `device`: where the models already are; the batches are moved there first, and on
    a GPU every timed call is bracketed by synchronizes so that it counts the kernels, not just their
    launch. `timing`, when given, receives the conditions (see the module docstring: rounds, spread,
    max_spread, stable, threshold, load_before, load_after, cpus, cores).

    Each round times every model once per batch size, alternating which model goes first, so slow
    phases of a shared machine hit all models alike. The warm-up rounds matter: fresh allocations
    page-fault (glibc malloc), slowing int8 inference 55-90% (docs/performance.md). After `runs`
    timed rounds, rounds go on until the relative spread of the last `runs` is at most `threshold`
    for every model and batch size, or `max_rounds` (default LATENCY_MAX_ROUNDS, at least `runs`)
    rounds were timed: a load spike then leaves the window instead of staying in the median.
    """
    if runs < 1:
        raise ValueError("runs must be >= 1")
    max_rounds = max(runs, LATENCY_MAX_ROUNDS if max_rounds is None else max_rounds)
    before = machine_load()
    for model in models.values():
        model.eval()
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type != "cpu":
        batches = {bs: [{k: v.to(device) for k, v in b.items()} for b in inputs] for bs, inputs in batches.items()}
    times: dict[str, dict[int, list[float]]] = {name: {bs: [] for bs in batches} for name in models}
    names = list(models)

    def spreads() -> dict[str, dict[int, float]]:
        # The timed round j used input (warmup + j) % len(inputs) of its batch size.
        def spread(t: list[float], bs: int) -> float:
            first = len(t) - runs
            return relative_spread(t[first:], [(warmup + j) % len(batches[bs]) for j in range(first, len(t))])

        return {name: {bs: spread(t, bs) for bs, t in per.items()} for name, per in times.items()}

    r = 0
    while True:
        order = names if r % 2 == 0 else names[::-1]
        for bs, inputs in batches.items():
            batch = inputs[r % len(inputs)]
            for name in order:
                sync()
                t0 = time.perf_counter()
                models[name](**batch)
                sync()
                elapsed = time.perf_counter() - t0
                if r >= warmup:
                    times[name][bs].append(elapsed)
        r += 1
        timed = r - warmup
        if timed >= runs:
            spread = spreads()
            stable = all(v <= threshold for per in spread.values() for v in per.values())
            if stable or timed >= max_rounds:
                break
    # The medians and paired ratios use the last `runs` rounds: the stable window, or the latest one.
    times = {name: {bs: t[-runs:] for bs, t in per.items()} for name, per in times.items()}
    if raw is not None:
        raw.update(times)
    if timing is not None:
        after = machine_load()
        timing.update({
            "rounds": timed, "used": runs, "threshold": threshold, "stable": stable,
            "spread": {name: {str(bs): round(v, 4) for bs, v in per.items()} for name, per in spread.items()},
            "max_spread": round(max(v for per in spread.values() for v in per.values()), 4),
            "load_before": before["load"], "load_after": after["load"], "cpus": after["cpus"], "cores": after["cores"],
        })
    sizes = {bs: next(iter(v.values())).shape[0] for bs, inputs in batches.items() for v in inputs[:1]}
    return {name: {bs: statistics.median(t) * 1e3 / sizes[bs] for bs, t in per.items()} for name, per in times.items()}


def is_matmul_layer(module: nn.Module) -> bool:
    """Linear / Conv1d layers, float or int8."""
    return isinstance(module, (nn.Linear, nn.Conv1d)) or is_quantized_linear(module)


@torch.inference_mode()
def time_split(models: dict[str, nn.Module], batch: dict[str, Tensor], *, runs: int = 10,
               warmup: int = 3) -> dict[str, dict[str, float]]:
    """Median milliseconds per forward of `batch` in matrix-multiply layers and in the rest, per model.

    Forward hooks time every matrix-multiply layer (`is_matmul_layer`; none nests inside another in
    these models); the models are timed alternately, as in `measure_latency`. The hooks add a few
    microseconds per layer, which is why these runs are separate from the latency ones.
    """
    result: dict[str, dict[str, float]] = {}
    spent = [0.0]
    started: dict[int, float] = {}

    def pre(module: nn.Module, args: Any) -> None:
        started[id(module)] = time.perf_counter()

    def post(module: nn.Module, args: Any, output: Any) -> None:
        spent[0] += time.perf_counter() - started.pop(id(module))

    layers = [m for model in models.values() for m in model.modules() if is_matmul_layer(m)]
    handles = [m.register_forward_pre_hook(pre) for m in layers] + [m.register_forward_hook(post) for m in layers]
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
    try:
        names = list(models)
        for r in range(warmup + runs):
            for name in names if r % 2 == 0 else names[::-1]:
                spent[0] = 0.0
                t0 = time.perf_counter()
                models[name](**batch)
                total = time.perf_counter() - t0
                if r >= warmup:
                    samples[name].append((spent[0], total))
    finally:
        for handle in handles:
            handle.remove()
    for name, pairs in samples.items():
        matmul = statistics.median(p[0] for p in pairs) * 1e3
        total = statistics.median(p[1] for p in pairs) * 1e3
        result[name] = {"matmul_ms": round(matmul, 3), "rest_ms": round(max(0.0, total - matmul), 3),
                        "total_ms": round(total, 3)}
    return result


def time_split_note(split: dict[str, dict[str, float]]) -> str:
    """One sentence: how each part's time changed from the baseline to the optimized model."""
    b, o = split["baseline"], split["optimized"]

    def change(key: str) -> str:
        ratio = f"{b[key] / o[key]:.2f}x" if o[key] > 0 else "gone"
        return f"{b[key]:.1f} -> {o[key]:.1f} ms ({ratio})"

    return (f"time per batch of 32: matrix-multiply layers {change('matmul_ms')}, everything else "
            f"(attention softmax, GELU, LayerNorm, residual adds, embeddings) {change('rest_ms')}.")


def paired_speedup(baseline: list[float], optimized: list[float]) -> float:
    """Median over rounds of baseline / optimized time, each pair timed back to back."""
    return statistics.median(b / o for b, o in zip(baseline, optimized))


def load_average() -> float | None:
    """The 1-minute load average (None where the OS does not report one)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def honest_notes(report: CompressionReport) -> list[str]:
    """Plain sentences for what the numbers show: slower profiles, no-gain profiles, noisy conditions."""
    notes = []
    for bs, s in ((1, report.speedup_b1), (32, report.speedup_b32)):
        if s < 0.95:
            notes.append(f"{1 / s:.2f}x slower than the baseline at batch {bs} on this hardware "
                         f"({1 / s:.2f} times the baseline's latency).")
    if report.profile != "baseline" and 0.95 <= report.speedup_b32 <= 1.05:
        notes.append(f"no measurable speedup at batch 32 ({report.speedup_b32:.2f}x).")
    cores = os.cpu_count() or 1
    if report.load_average is not None and report.load_average > cores:
        notes.append(f"timings taken on a busy machine (load average {report.load_average:g} on {cores} cores): "
                     "ratios are more reliable than absolute latencies.")
    if report.timing and not report.timing.get("stable", True):
        notes.append(timing_unstable_note(report.timing, where="the CPU"))
    return notes


def timing_unstable_note(timing: dict[str, Any], *, where: str) -> str:
    """One sentence for latencies that never became stable (see `measure_latency`)."""
    load = timing.get("load_after") or timing.get("load_before")
    on = f" (load average {load[0]:g} on {timing.get('cpus')} CPUs)" if load else ""
    return (f"latencies on {where} are not stable: their spread stayed at {timing['max_spread']:.0%} of the median "
            f"(over {timing['threshold']:.0%}) after {timing['rounds']} timed rounds{on}; treat them as rough.")
