"""Optimization profiles side by side: metric, size, latency (batch 1 and 32) and speedup vs the baseline.

    .venv/bin/python bench/compression.py [--epochs 8] [--runs 30] [--threads 1] [--profiles int8,slim,...]

Trains one `small` model (d_model 128, 4 layers, 4 heads, FFN 512) on the `amp-vs-uniprot` demo
dataset (5,200 real peptide sequences, protein-classification; the only demo set with at least
2,000 records), then applies every registered profile to that same trained baseline through
`mlcore.recipe.recipe_profile`, exactly as a job does. Each profile's report times the baseline and
the optimized model interleaved (median of `--runs` timed forward passes after warm-up, the same 32
test records). Then torch.ao and torchao dynamic int8 are timed against each other on the baseline
(interleaved, three models), which is what the int8 module's choice of backend rests on.

Memory allocation: fresh allocations page-fault in glibc malloc and skew timings (docs/performance.md:
int8 55-90% slower with cold memory). Unless `--no-malloc-tuning` is given, the bench re-executes itself
with MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ / MALLOC_TOP_PAD_ set, so freed activation
buffers stay in the heap and are reused instead of being returned to the OS and faulted in again.
Every model is timed under the same setting; the values are printed and stored in the JSON line.

Training epochs: 4 by default (the ranking of the profiles, not the last point of ROC-AUC, is what is
measured; 8 epochs took 464 s on the contended machine). mixed-precision is applied without its
retraining unless `--retrain-mixed` is given (its inference speed is the target; retraining is a second
full training run).

Threads: 1 by default. This machine's 2 cores are shared; a second intra-op thread mostly waits on
the other sessions' work, which makes timings swing far more than the ratios under study.

`--device cuda`: the baseline and every profile's fine-tuning train on the GPU, as in a GPU job, and
each report then also times both models on that GPU (`report.gpu`); the table gets GPU columns and
each profile's JSON entry `gpu_speedup_b1` / `gpu_speedup_b32` (null for int8 and compact, which
run on the CPU only). The CPU columns stay as they are.

Last line is JSON: {"int8": {"speedup_b32", "speedup_b1", "size_ratio", "encoder_weight_ratio",
"metric_delta"}, "slim": {...}, ..., "int8_backends": {...}, "threads", "epochs", ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

MALLOC_ENV = {
    # Keep big activation buffers on the heap (no mmap/munmap per forward) and never trim it back.
    "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 32),
    "MALLOC_TOP_PAD_": str(1 << 28),
}
ROOT = Path(__file__).resolve().parents[1]


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=4, help="baseline training epochs (early stopping may end sooner)")
    p.add_argument("--retrain-mixed", action="store_true",
                   help="mixed-precision: retrain under bf16 autocast as a job does (one more full training)")
    p.add_argument("--runs", type=int, default=30, help="timed forward passes per model and batch size (>= 20)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--profiles", default="int8,slim,compact,mixed-precision,pruned,distilled,baseline")
    p.add_argument("--no-malloc-tuning", action="store_true")
    p.add_argument("--keep", type=Path, help="write the run here instead of a temporary directory")
    p.add_argument("--device", default="cpu", help="cpu | cuda: where the baseline and fine-tuning train")
    return p.parse_args()


def _reexec_with_malloc_env() -> None:
    # glibc reads MALLOC_* once at process start, so the settings need a fresh process.
    if all(os.environ.get(k) == v for k, v in MALLOC_ENV.items()):
        return
    env = {**os.environ, **MALLOC_ENV}
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def _backends(run, threads: int, runs: int) -> dict:
    """torch.ao (engine auto, fbgemm alone, oneDNN alone) vs torchao dynamic int8 on the trained baseline,
    timed interleaved with it."""
    import copy

    from mlcore.compress.int8 import quantize_model
    from mlcore.compress.report import measure_latency, timing_batches
    from mlcore.taskmodel import collate_fn

    prep = run.prepared
    models = {"fp32": copy.deepcopy(run.model).eval(),
              "torch.ao": quantize_model(copy.deepcopy(run.model), backend="torch.ao"),  # engine "auto"
              "torch.ao-fbgemm": quantize_model(copy.deepcopy(run.model), backend="torch.ao", engine="fbgemm"),
              "torch.ao-onednn": quantize_model(copy.deepcopy(run.model), backend="torch.ao", engine="onednn")}
    try:
        models["torchao"] = quantize_model(copy.deepcopy(run.model), backend="torchao")
    except ImportError as exc:
        print(f"torchao not installed ({exc}); only torch.ao measured")
    batches = timing_batches(prep.test, collate_fn(prep.featurizer, prep.targets.kind))
    lat = measure_latency(models, batches, runs=runs)
    return {name: {"latency_ms_b32": round(v[32], 4), "latency_ms_b1": round(v[1], 4),
                   "speedup_b32": round(lat["fp32"][32] / v[32], 3), "speedup_b1": round(lat["fp32"][1] / v[1], 3)}
            for name, v in lat.items()}


def main() -> None:
    args = _args()
    if not args.no_malloc_tuning:
        _reexec_with_malloc_env()
    sys.path.insert(0, str(ROOT))
    import warnings

    import torch

    warnings.filterwarnings("ignore")  # torch.ao deprecation chatter, once per quantized model
    torch.set_num_threads(args.threads)

    from mlcore.demo_data import demo_dataset_write
    from mlcore.columns import ColumnMapping
    from mlcore.recipe import RecipeConfig, recipe_profile, recipe_run

    t_start = time.perf_counter()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-compression-"))
    data = demo_dataset_write("amp-vs-uniprot", work / "data")
    config = RecipeConfig(task="protein-classification", data=data, out=work / "run", preset="small", columns=ColumnMapping(id_col="id"),
                          hyperparameters={"epochs": args.epochs, "seed": 0}, explain_samples=0, device=args.device)
    run = recipe_run(config)
    train_s = time.perf_counter() - t_start
    primary = run.metrics["primary_metric"]
    print(f"baseline: small preset, {run.metrics['n_train']} train / {run.metrics['n_test']} test records, "
          f"{len(run.metrics['history'])} epochs in {train_s:.0f} s, test {primary} {run.metrics['test'][primary]:.4f}; "
          f"threads {torch.get_num_threads()}, malloc tuning {'off' if args.no_malloc_tuning else 'on'}", flush=True)

    results, reports = {}, {}
    for profile in [p.strip() for p in args.profiles.split(",") if p.strip()]:
        t0 = time.perf_counter()
        options = {"retrain": False} if profile == "mixed-precision" and not args.retrain_mixed else None
        report, _ = recipe_profile(config, run, profile=profile, out=work / profile, latency_runs=args.runs,
                                   options=options)
        reports[profile] = report
        results[profile] = {"speedup_b32": report.speedup_b32, "speedup_b1": report.speedup_b1,
                            "size_ratio": report.size_ratio, "encoder_weight_ratio": report.encoder_weight_ratio,
                            "metric_delta": report.metric_delta, "params_ratio": report.params_ratio,
                            "load_average": report.load_average}
        if args.device != "cpu":
            gpu = report.gpu or {}
            results[profile].update(gpu_speedup_b1=gpu.get("speedup_b1"), gpu_speedup_b32=gpu.get("speedup_b32"))
        print(f"{profile}: {report.speedup_b32:.2f}x at batch 32, {report.speedup_b1:.2f}x at batch 1, "
              f"{report.size_ratio:.2f}x smaller, {primary} {report.metric_delta:+.4f}, "
              f"{time.perf_counter() - t0:.0f} s; " + " ".join(report.notes), flush=True)

    backends = _backends(run, args.threads, args.runs)

    header = ["profile", primary, "delta", "params", "MB", "size x", "enc. w x", "ms/rec b1", "ms/rec b32",
              "speedup b1", "speedup b32"]
    gpu_columns = args.device != "cpu"
    if gpu_columns:
        header += ["GPU ms/rec b1", "GPU ms/rec b32", "GPU speedup b1", "GPU speedup b32"]

    def gpu_cells(report: object, side: str) -> list[str]:
        gpu = getattr(report, "gpu", None)
        if not gpu_columns:
            return []
        if not gpu:
            return ["CPU only"] * 4
        one = "1.00" if side == "baseline" else None
        return [f"{gpu[side]['latency_ms_b1']:.4f}", f"{gpu[side]['latency_ms_b32']:.4f}",
                one or f"{gpu['speedup_b1']:.2f}", one or f"{gpu['speedup_b32']:.2f}"]
    rows = []
    base = next(iter(reports.values())).baseline if reports else None
    if base is not None:
        rows.append(["baseline (fp32)", f"{base.metrics[primary]:.4f}", "", f"{base.params:,}", f"{base.bytes / 1e6:.2f}",
                     "1.00", "1.00", f"{base.latency_ms_b1:.3f}", f"{base.latency_ms_b32:.3f}", "1.00", "1.00",
                     *gpu_cells(next((r for r in reports.values() if r.gpu), None), "baseline")])
    for profile, r in reports.items():
        o = r.optimized
        rows.append([profile, f"{o.metrics[primary]:.4f}", f"{r.metric_delta:+.4f}", f"{o.params:,}",
                     f"{o.bytes / 1e6:.2f}", f"{r.size_ratio:.2f}", f"{r.encoder_weight_ratio:.2f}",
                     f"{o.latency_ms_b1:.3f}", f"{o.latency_ms_b32:.3f}", f"{r.speedup_b1:.2f}", f"{r.speedup_b32:.2f}",
                     *gpu_cells(r, "optimized")])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("int8 backends (batch 32 speedup vs fp32, interleaved): " +
          ", ".join(f"{k} {v['speedup_b32']:.2f}x" for k, v in backends.items() if k != "fp32"))
    results.update({"int8_backends": backends, "threads": torch.get_num_threads(), "epochs": len(run.metrics["history"]),
                    "primary_metric": primary, "baseline_metric": run.metrics["test"][primary],
                    "malloc_tuning": not args.no_malloc_tuning, "device": args.device,
                    "seconds": round(time.perf_counter() - t_start, 1)})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
