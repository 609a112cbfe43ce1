"""Dynamic int8 through PT2E + inductor against the int8 profile's eager torch.ao path (an experiment).

    .venv/bin/pip install torchao==0.18.0    # not a project dependency (bench/README.md says why)
    .venv/bin/python bench/int8_pt2e.py [--epochs 4] [--runs 60] [--threads 1]

Trains the same model as bench/compression.py (`small` preset on the amp-vs-uniprot demo set,
protein classification), then times, interleaved on the same 32 test records as the compression
report (`mlcore.compress.report.timing_batches`), the median forward of:
- `fp32`: the trained float32 model, eager (the reference every ratio is against);
- `int8-eager`: the int8 profile's model (`mlcore.compress.int8.quantize_model`, torch.ao dynamic int8);
- `int8-pt2e-inductor`: `torch.export` of the model, torchao's `X86InductorQuantizer` with its dynamic
  config through `prepare_pt2e` / `convert_pt2e`, then `torch.compile` with inductor freezing, which
  fuses the activation quantization and the GEMM epilogues (dequantize, bias, GELU) around oneDNN's
  int8 kernels;
- `fp32-inductor`: the float32 model under the same compiler, to separate the compiler's share.

Compile time (per input shape: the export is static) and the largest logit difference from float32
are printed too. The glibc malloc settings of bench/compression.py apply (same re-exec). Last line is
JSON: {"fp32_ms": x, "int8-eager": {"speedup_b32": ..}, "int8-pt2e-inductor": {...}, ...}. Exits 2 with
a message when torchao is not installed.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compression import MALLOC_ENV, ROOT, _reexec_with_malloc_env  # noqa: E402


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--runs", type=int, default=60, help="timed forwards per model (after 10 warm-up rounds)")
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args()


def main() -> int:
    args = _args()
    _reexec_with_malloc_env()
    sys.path.insert(0, str(ROOT))
    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq
    except ImportError as exc:
        print(f"torchao is not installed ({exc}): .venv/bin/pip install torchao==0.18.0", file=sys.stderr)
        return 2
    import torch
    import torch._inductor.config as inductor_config

    from mlcore.compress.int8 import quantize_model
    from mlcore.compress.report import paired_speedup, timing_batches
    from mlcore.demo_data import demo_dataset_write
    from mlcore.columns import ColumnMapping
    from mlcore.recipe import RecipeConfig, recipe_run
    from mlcore.taskmodel import collate_fn

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    inductor_config.freezing = True  # constant weights: lets inductor prepack the int8 GEMMs
    work = Path(tempfile.mkdtemp(prefix="bench-int8-pt2e-"))
    data = demo_dataset_write("amp-vs-uniprot", work / "data")
    config = RecipeConfig(task="protein-classification", data=data, out=work / "run", preset="small", columns=ColumnMapping(id_col="id"),
                          hyperparameters={"epochs": args.epochs, "seed": 0}, explain_samples=0, device="cpu")
    run = recipe_run(config)
    prep = run.prepared
    batch = timing_batches(prep.test, collate_fn(prep.featurizer, prep.targets.kind))[32][0]
    fp32 = copy.deepcopy(run.model).eval()
    models = {"fp32": fp32, "int8-eager": quantize_model(copy.deepcopy(run.model))}
    compile_s = {}
    with torch.no_grad():
        t0 = time.perf_counter()
        exported = torch.export.export(copy.deepcopy(run.model).eval(), (), batch).module()
        quantizer = xiq.X86InductorQuantizer()
        quantizer.set_global(xiq.get_default_x86_inductor_quantization_config(is_dynamic=True))
        prepared = prepare_pt2e(exported, quantizer)
        prepared(**batch)
        models["int8-pt2e-inductor"] = torch.compile(convert_pt2e(prepared))
        models["int8-pt2e-inductor"](**batch)
        compile_s["int8-pt2e-inductor"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        models["fp32-inductor"] = torch.compile(torch.export.export(copy.deepcopy(run.model).eval(), (), batch).module())
        models["fp32-inductor"](**batch)
        compile_s["fp32-inductor"] = round(time.perf_counter() - t0, 1)
        reference = fp32(**batch).logits
        diff = {name: round(float((m(**batch).logits - reference).abs().max()), 5) for name, m in models.items()}
        times: dict[str, list[float]] = {name: [] for name in models}
        names = list(models)
        for r in range(10 + args.runs):
            for name in names if r % 2 == 0 else names[::-1]:
                t0 = time.perf_counter()
                models[name](**batch)
                if r >= 10:
                    times[name].append(time.perf_counter() - t0)
    base = times["fp32"]
    result = {"fp32_ms": round(statistics.median(base) * 1e3, 3), "threads": torch.get_num_threads(),
              "batch": list(batch["tokens"].shape), "malloc_env": MALLOC_ENV}
    for name in names:
        speedup = paired_speedup(base, times[name])
        result[name] = {"ms": round(statistics.median(times[name]) * 1e3, 3), "speedup_b32": round(speedup, 3),
                        "max_logit_diff": diff[name], "compile_s": compile_s.get(name)}
        print(f"{name:20s} {result[name]['ms']:8.2f} ms  {speedup:5.2f}x  max |logit diff| {diff[name]:.4f}"
              + (f"  compiled in {compile_s[name]} s" if name in compile_s else ""), flush=True)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
