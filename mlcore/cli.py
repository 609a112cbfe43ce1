"""`python -m mlcore`: train and predict from the command line (a contract scripts rely on).

    python -m mlcore train --task T --data FILE [--test FILE] [--split random|stratified|scaffold|group|column]
        [--preset tiny|small|base] [--epochs N] [--seed S] [--input-col C] [--target-col C] [--device D]
        [--profile baseline|mixed-precision|pruned|slim|int8|distilled|compact [--budget X]]
        [--set NAME=VALUE ...] [--folds K] --out DIR
    python -m mlcore predict --model DIR/model --data FILE --out preds.csv
    python -m mlcore tasks        # the catalog's tasks, one per line

`train` shows a progress bar on stderr, prints a metrics table, and writes DIR/metrics.json,
DIR/model/, DIR/evaluation.npz, DIR/explain/ (with the embeddings' projection.npz) and DIR/predictions.csv;
with --profile also DIR/report.json, DIR/model-optimized/ and DIR/evaluation-optimized.npz (`baseline`:
the report only); and last DIR/manifest.json, every file of the run with its role (mlcore.manifest).
`--set NAME=VALUE` (repeatable) sets a hyperparameter or an option of the chosen profile (the
catalog's `ProfileOption`s, e.g. `--profile pruned --set sparsity=0.7`); a bad name or value is a
usage error (exit 2). `--budget X` is `--set budget=X`;
with --folds K also a K-fold cross-validation of the same recipe on the non-test records (metrics.json "cv"). Bad input exits with status 2 and one line naming the file, the line
and the reason; no traceback reaches the user (exit 1 for other failures, with the error's message).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from mlcore import catalog


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlcore", description="Labformer's Transformer trainer.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on a data file")
    t.add_argument("--task", required=True, help=f"one of: {', '.join(catalog.TASKS)}")
    t.add_argument("--data", required=True, type=Path, help="CSV / TSV (.gz), FASTA or Parquet file")
    t.add_argument("--test", type=Path, help="separate test file (otherwise test_frac of --data is held out)")
    t.add_argument("--split", default="random", choices=["random", "stratified", "scaffold", "group", "column"])
    t.add_argument("--preset", default="tiny", choices=list(catalog.PRESETS))
    t.add_argument("--epochs", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--input-col", help="column holding the record (default: the modality's, e.g. 'sequence'); "
                                      "tabular: the feature columns, comma-separated (default: every other column)")
    t.add_argument("--target-col", help="target column(s), comma-separated (default: 'label' / 'target')")
    t.add_argument("--id-col", help="column with record ids (copied into predictions)")
    t.add_argument("--group-col", help="column for --split group")
    t.add_argument("--split-col", help="column with train / val / test per record (implies --split column)")
    option_names = sorted({o.name for p in catalog.PROFILES.values() for o in p.options})
    t.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help=f"any hyperparameter ({', '.join(catalog.HYPERPARAMETERS)}) or an option of the "
                        f"--profile ({', '.join(option_names)}); repeatable")
    t.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    t.add_argument("--threads", type=int,
                   help="CPU threads for torch (default: by model width and free cores, see mlcore.threads)")
    t.add_argument("--explain-samples", type=int, default=8, help="test records to write attention maps for")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--profile", choices=list(catalog.PROFILES),
                   help="optimization profile applied after training (writes DIR/report.json, DIR/model-optimized/)")
    t.add_argument("--budget", type=float,
                   help="accuracy budget (the profile option `budget`): stop pruning/slimming before the "
                        "validation metric falls more than this")
    t.add_argument("--folds", type=int, metavar="K",
                   help="also run K-fold cross-validation on the non-test records (mean and std per metric "
                        "in metrics.json under 'cv'); the final model is still trained on the train split")
    t.add_argument("--out", required=True, type=Path, help="output directory")

    p = sub.add_parser("predict", help="predict with a trained model directory")
    p.add_argument("--model", required=True, type=Path, help="a model directory (DIR/model)")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="CSV of predictions")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")

    sub.add_parser("tasks", help="list the tasks")
    parser.set_defaults(train_parser=t)
    sub.add_parser("validate", help="check a data file record by record (see `python -m mlcore validate -h`)")
    return parser


class UsageError(ValueError):
    """A command line that cannot run: printed after the subcommand's usage, exit status 2."""


def _sets(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(hyperparameter overrides, profile options) from --epochs/--seed/--batch-size/--lr, --budget
    and every --set NAME=VALUE; the options checked against the catalog (UsageError otherwise)."""
    values: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for name in ("epochs", "seed", "batch_size", "lr"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    profile = catalog.PROFILES[args.profile] if args.profile else None
    for item in args.set:
        if "=" not in item:
            raise UsageError(f"--set expects NAME=VALUE, got {item!r}")
        name, value = (part.strip() for part in item.split("=", 1))
        if name in catalog.HYPERPARAMETERS:
            values[name] = value
        elif profile is not None and profile.option(name) is not None:
            options[name] = value
        elif catalog.profiles_with_option(name):
            where = f"profile {profile.key!r} has no option {name!r}" if profile else f"{name!r} is a profile option"
            raise UsageError(f"--set {item}: {where}; it is an option of the profile(s) "
                             f"{', '.join(catalog.profiles_with_option(name))} (--profile)")
        else:
            known = ", ".join(o.name for o in profile.options) if profile else "none without --profile"
            raise UsageError(f"--set {item}: unknown name {name!r}; hyperparameters: "
                             f"{', '.join(catalog.HYPERPARAMETERS)}; options of the profile: {known}")
    if args.budget is not None and profile is not None:
        options["budget"] = args.budget
    if profile is not None:
        try:
            catalog.profile_options_resolve(profile.key, options)
        except catalog.ProfileOptionError as exc:
            raise UsageError(str(exc)) from None
    return values, options


def _table(metrics: dict[str, Any], keys: list[str]) -> str:
    """A plain-text table: one row per metric, columns val and test."""
    rows = [("metric", "val", "test")]
    for key in keys:
        cells = []
        for part in ("val", "test"):
            value = metrics.get(part, {}).get(key)
            cells.append("-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}")
        rows.append((key, *cells))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, width)) for r in rows)


def _progress_callback(enabled: bool) -> Any:
    from tqdm import tqdm

    from mlcore.trainer import Callback, TrainState

    class Progress(Callback):
        """A tqdm bar over all optimizer steps, on stderr; epoch results as postfix."""

        def __init__(self) -> None:
            self.bar: tqdm | None = None

        def on_train_start(self, state: TrainState) -> None:
            self.close()  # cross-validation trains again: one bar per training run
            self.bar = tqdm(total=state.total_steps, initial=state.step, file=sys.stderr, unit="step",
                            disable=not enabled, dynamic_ncols=True, desc="train")

        def on_step_end(self, state: TrainState) -> None:
            if self.bar is not None:
                self.bar.update(state.step - self.bar.n)
                self.bar.set_postfix(epoch=state.epoch, loss=f"{state.loss:.4f}", refresh=False)

        def on_epoch_end(self, state: TrainState, metrics: dict[str, float]) -> None:
            if self.bar is not None:
                shown = {k: f"{v:.4f}" for k, v in metrics.items()
                         if k in ("val_loss", "val_roc_auc", "val_macro_f1", "val_rmse", "val_token_accuracy")}
                self.bar.set_postfix(epoch=state.epoch, loss=f"{metrics['train_loss']:.4f}", **shown)

        def close(self) -> None:
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return Progress()


def cmd_train(args: argparse.Namespace) -> int:
    """Run the training recipe and print the metrics table."""
    from mlcore.columns import ColumnMapping
    from mlcore.recipe import RecipeConfig, recipe_run

    task = catalog.task_get(args.task)
    config = RecipeConfig(
        task=task.key, data=args.data, out=args.out, test_data=args.test, split=args.split, preset=args.preset,
        hyperparameters=args.hyperparameters,
        columns=ColumnMapping(input_cols=args.input_col or (), target_cols=args.target_col or (), id_col=args.id_col,
                              group_col=args.group_col, split_col=args.split_col),
        device=args.device,
        explain_samples=args.explain_samples, profile=args.profile, profile_options=args.profile_options,
        cv_folds=args.folds,
    )
    if args.folds is not None and args.folds < 2:
        raise ValueError(f"--folds must be at least 2, got {args.folds}")
    if args.budget is not None and args.profile is None:
        raise ValueError("--budget needs --profile")
    progress = _progress_callback(not args.no_progress)
    try:
        result = recipe_run(config, callbacks=[progress])
    finally:
        progress.close()
    from mlcore.distributed import launched_rank

    if launched_rank()[0] > 0:
        return 0  # another rank under torchrun: it only trained; rank 0 tests, prints and writes DIR/
    metrics = result.metrics
    kind = catalog.TARGET_KINDS[metrics["target_kind"]]
    print(f"task {task.key} ({metrics['target_kind']}), {metrics['n_train']} train / {metrics['n_val']} val / "
          f"{metrics['n_test']} test records, best epoch {metrics['best_epoch']} ({metrics['stopped_reason']}), "
          f"{metrics['train_seconds']:.1f} s")
    print(_table(metrics, list(kind.metrics)))
    if "cv" in metrics:
        cv = metrics["cv"]
        print(f"{cv['k']}-fold cross-validation on {cv['n_records']} non-test records (mean ± std over folds):")
        for key in kind.metrics:
            if key in cv["metrics"]:
                m = cv["metrics"][key]
                print(f"  {key:18s} {m['mean']:.4f} ± {m['std']:.4f}")
    print(f"wrote {args.out / 'metrics.json'}, {result.model_dir} (every output listed in "
          f"{args.out / 'manifest.json'})")
    if result.compression is not None:
        r = result.compression
        b, o = r.baseline, r.optimized
        print(f"profile {r.profile}: {r.primary_metric} {b.metrics.get(r.primary_metric, float('nan')):.4f} -> "
              f"{o.metrics.get(r.primary_metric, float('nan')):.4f}, size {b.bytes / 1e6:.2f} -> {o.bytes / 1e6:.2f} MB "
              f"({r.size_ratio:.2f}x smaller), batch-32 latency {b.latency_ms_b32:.3f} -> {o.latency_ms_b32:.3f} ms/record "
              f"({r.speedup_b32:.2f}x), batch-1 {r.speedup_b1:.2f}x, {r.threads} thread(s)")
        if r.options:
            print("  options: " + ", ".join(f"{k}={'-' if v is None else v}" for k, v in r.options.items()))
        for note in r.notes:
            print(f"  note: {note}")
        print(f"wrote {args.out / 'report.json'}, {result.optimized_dir}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict a data file with a saved model directory."""
    from mlcore.modeldir import model_load

    loaded = model_load(args.model, device=args.device)
    n = loaded.predict_file(args.data, args.out, batch_size=args.batch_size, device=args.device)
    print(f"wrote {n} predictions to {args.out}")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    """Print the catalog's tasks."""
    for task in catalog.TASKS.values():
        print(f"{task.key:28s} {task.modality:11s} {task.target_kind:17s} {task.label}")
    return 0


def _set_threads(args: argparse.Namespace) -> None:
    """Pick torch's CPU threads with the rule the workers use (mlcore.threads): by the model's width
    and this process's cores, --threads, LABFORMER_TORCH_THREADS or OMP_NUM_THREADS overriding it."""
    from mlcore.threads import preset_width, spin_off, threads_apply, threads_choose

    if args.command not in ("train", "predict"):
        return  # `tasks` needs no torch
    spin_off()  # before torch loads: its OpenMP reads the wait policy once
    from mlcore.distributed import launched_rank

    d_model = preset_width(args.preset) if args.command == "train" else None
    # Ranks under torchrun share this machine's cores (torchrun also sets OMP_NUM_THREADS=1).
    threads_apply(threads_choose(d_model=d_model, sharing=launched_rank()[1], requested=getattr(args, "threads", None)))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (0 ok, 2 bad input, 1 other failure)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["validate"]:
        # The validator has its own parser and exit codes (0 valid, 1 invalid, 2 unreadable).
        from mlcore.validate_cli import main as validate_main

        return validate_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "train":
        try:
            args.hyperparameters, args.profile_options = _sets(args)
        except UsageError as exc:
            args.train_parser.print_usage(sys.stderr)
            print(f"{args.train_parser.prog}: error: {exc}", file=sys.stderr)
            return 2
    _set_threads(args)
    from mlcore.data import DataError

    try:
        return {"train": cmd_train, "predict": cmd_predict, "tasks": cmd_tasks}[args.command](args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (KeyError, ValueError, FileNotFoundError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2
    except Exception as exc:  # never a traceback for the user; the type helps a bug report
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
