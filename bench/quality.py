"""Quality: the `small` Transformer against a classical scikit-learn baseline on every real demo set.

What runs, per real demo dataset (`synthetic=False` in `mlcore.demo_data`):
- The split: `mlcore.data.split_indices` with the catalog's default fractions (val 0.1, test 0.1)
  and the bench seed, stratified for classification and random for regression, written into a copy
  of the demo file as a `bench_split` column (train / val / test). Both sides read that one file
  through `mlcore.data.load_records` with the same column mapping, so they train, select and test on
  exactly the same records; the recipe uses the column as a user-provided split.
- The model: the real recipe (`mlcore.recipe.recipe_run`, `small` preset, CPU) with the overrides in
  `MODEL_SETTINGS`: it trains on train, early-stops on val, keeps the average of the weights of the
  5 best validation epochs (the catalog's `average_best`; `--average-best 1` keeps the single best
  epoch instead), and reports the test metrics. Where `MODEL_CHOICES` lists several settings
  (tabular: two learning rates), each is trained and the one with the better validation metric is
  reported, as the baselines choose their one knob on val. Molecules get the [FP] token beside the SMILES (Morgan count fingerprint plus
  RDKit descriptors: the `fingerprint` hyperparameter, on by default; `--fingerprint off` asks for the
  plain SMILES model); the row says which the trained model really had (read from its featurizer.json).
- The baseline, trained on train with its one hyperparameter chosen on val (the same information
  the model's early stopping sees):
  molecules: random forest on Morgan fingerprints (radius 2, 2048 bits, RDKit);
  sequences: logistic regression (ridge for regression) on amino-acid / base composition plus
  2-mer (dipeptide / dinucleotide) frequencies and the length, regularization strength chosen on val;
  tabular: histogram gradient boosting, learning rate chosen on val.
- Both are scored by `mlcore.metrics.compute_metrics` on the test records with the primary metric of
  the resolved target kind (`mlcore.catalog.TARGET_KINDS`).

Seeded and deterministic on CPU (torch, numpy and scikit-learn all take the bench seed).

Usage: `python bench/quality.py [--datasets a,b] [--max-epochs N] [--seed S] [--threads N]
[--fingerprint on|off] [--average-best K]`. `--threads 1` on a machine other jobs are using: two torch
threads competing with other processes for two cores ran a training step about 7x slower than one. The table is printed
as each dataset finishes; the last line printed is JSON:
{"<dataset>": {"model": x, "baseline": y, "metric": "roc_auc", "task": "...", "greater_is_better": true}, ...}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from mlcore import catalog  # noqa: E402
from mlcore.columns import ColumnMapping  # noqa: E402
from mlcore.data import Record, TargetEncoder, load_records, split_indices  # noqa: E402
from mlcore.demo_data import DEMO_DATASETS, DemoDataset, demo_dataset_write  # noqa: E402
from mlcore.metrics import compute_metrics  # noqa: E402

SPLIT_COL = "bench_split"
PRESET = "small"

# Recipe overrides per modality (the catalog's `small` defaults otherwise: lr 1e-3, batch 32,
# dropout 0.1, patience 5). Epochs are bounded so the whole bench stays within ~15 minutes on two
# CPU cores; early stopping on val restores the best epoch. See bench/README.md for what helped.
MODEL_SETTINGS: dict[str, dict[str, Any]] = {
    "smiles": {"epochs": 30, "patience": 8, "augment": True},
    "protein": {"epochs": 12, "patience": 4},
    "dna": {"epochs": 20, "patience": 5, "augment": True},
    "tabular": {"epochs": 60, "patience": 15, "batch_size": 32, "lr": 5e-4},
}
# The model's one knob chosen on val, as each baseline chooses its own: the small tables (142-455
# training records) overfit within a few epochs at 5e-4 on some splits, so a slower, longer run is
# the alternative. The run with the better validation primary metric is the one reported.
MODEL_CHOICES: dict[str, list[dict[str, Any]]] = {
    "tabular": [{}, {"lr": 1e-4, "epochs": 120, "patience": 30}],
}


@dataclass
class Outcome:
    """One dataset's result: the primary metric of the model and the baseline on the same test records."""

    key: str
    task: str
    kind: str
    metric: str
    greater_is_better: bool
    model: float
    baseline: float
    baseline_desc: str
    n_train: int
    n_val: int
    n_test: int
    best_epoch: int
    epochs_run: int
    model_seconds: float
    baseline_seconds: float
    model_desc: str = ""
    averaged_epochs: list[int] = field(default_factory=list)  # the epochs whose weights were averaged, if any

    @property
    def model_wins(self) -> bool:
        """Matches or beats the baseline (ties count for the model)."""
        return self.model >= self.baseline if self.greater_is_better else self.model <= self.baseline


# ---------------------------------------------------------------------------------------------
# data and split


def real_datasets() -> list[DemoDataset]:
    """Every demo dataset built from real data, in registration order."""
    return [d for d in DEMO_DATASETS.values() if not d.synthetic]


def _read(spec: DemoDataset, path: Path, *, split_col: str | None) -> Any:
    task = catalog.task_get(spec.task_keys[0])
    return load_records(path, modality=task.modality, input_col=spec.input_col or None,
                        target_cols=list(spec.target_cols), id_col=spec.id_col, group_col=spec.group_col,
                        split_col=split_col)


def resolved_kind(spec: DemoDataset, records: Sequence[Record]) -> str:
    """The target kind the recipe runs this dataset as (binary / multiclass / regression ...)."""
    task = catalog.task_get(spec.task_keys[0])
    return TargetEncoder.resolve_kind(task.target_kind, list(spec.target_cols), [r.target for r in records])


def dataset_prepare(spec: DemoDataset, directory: Path, *, seed: int) -> Path:
    """Write the demo file, then a copy with a `bench_split` column both sides will read; its path."""
    import pandas as pd

    raw = demo_dataset_write(spec.key, directory / "raw", seed=seed)
    table = _read(spec, raw, split_col=None)
    kind = resolved_kind(spec, table.records)
    hyper = catalog.hyperparameter_defaults(PRESET)
    classification = kind in catalog.CLASSIFICATION_KINDS
    train, val, test = split_indices(
        len(table.records), "stratified" if classification else "random", seed=seed,
        val_frac=hyper["val_frac"], test_frac=hyper["test_frac"],
        labels=[r.target for r in table.records] if classification else None)
    parts = np.empty(len(table.records), dtype=object)
    parts[train], parts[val], parts[test] = "train", "val", "test"
    # Sequence and table formats: one record per data row, in file order (long formats would need
    # the split per object; no real demo set is long-format).
    frame = pd.read_csv(raw, dtype=str, keep_default_na=False)
    if len(frame) != len(table.records):
        raise RuntimeError(f"{spec.key}: {len(frame)} rows but {len(table.records)} records")
    frame[SPLIT_COL] = parts
    out = directory / f"{spec.key}.csv"
    frame.to_csv(out, index=False)
    return out


# ---------------------------------------------------------------------------------------------
# the model: the real recipe


def model_run(spec: DemoDataset, path: Path, out: Path, *, seed: int, max_epochs: int | None = None,
              verbose: bool = False, fingerprint: bool | None = None,
              average_best: int | None = None) -> tuple[dict[str, Any], str]:
    """Train the `small` preset through `recipe_run` on the bench split; the recipe's metrics dict and
    what the model was (molecules: with or without the [FP] token, read from the saved featurizer).

    `fingerprint` (molecules; None = the catalog default) is passed as the hyperparameter; a run whose
    saved featurizer disagrees raises, so a figure is never labelled with an option the run ignored.
    """
    from mlcore.recipe import RecipeConfig, recipe_run
    from mlcore.trainer import Callback

    class EpochLog(Callback):
        def on_epoch_end(self, state: Any, metrics: dict[str, float]) -> None:
            shown = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
            print(f"  {spec.key} {shown}", file=sys.stderr, flush=True)

    task = catalog.task_get(spec.task_keys[0])
    result, best, chosen = None, float("nan"), ""
    choices = MODEL_CHOICES.get(task.modality, [{}])
    for n, choice in enumerate(choices):
        hyper = dict(MODEL_SETTINGS[task.modality], seed=seed, **choice)
        if max_epochs is not None:
            hyper["epochs"] = min(hyper["epochs"], max_epochs)
        if fingerprint is not None and task.modality == "smiles":
            hyper["fingerprint"] = fingerprint
        if average_best is not None:
            hyper["average_best"] = average_best
        config = RecipeConfig(task=task.key, data=path, out=out / str(n), preset=PRESET, hyperparameters=hyper,
                              columns=ColumnMapping(input_cols=[spec.input_col] if spec.input_col else [],
                                                    target_cols=spec.target_cols, id_col=spec.id_col,
                                                    split_col=SPLIT_COL),
                              device="cpu", explain_samples=0)
        run = recipe_run(config, callbacks=[EpochLog()] if verbose else ())
        meta = catalog.TARGET_KINDS[run.metrics["target_kind"]]
        val = run.metrics["val"].get(meta.primary_metric, float("nan"))
        if result is None or (val > best if meta.greater_is_better else val < best):
            result, best = run, val
            if len(choices) > 1:
                chosen = f"lr {hyper['lr']:g}, {hyper['epochs']} epochs (of {len(choices)} settings, chosen on val)"
    desc = chosen
    if task.modality == "smiles":
        state = json.loads((result.model_dir / "featurizer.json").read_text())
        used = bool(state.get("fingerprint"))
        if fingerprint is not None and used != fingerprint:
            raise RuntimeError(f"asked for fingerprint={fingerprint} but the model was built with {used}: "
                               "the recipe does not pass the `fingerprint` hyperparameter to the featurizer")
        desc = ("SMILES + [FP]" + (" + descriptors" if state.get("descriptors") else "")) if used else "SMILES only"
    return result.metrics, desc


# ---------------------------------------------------------------------------------------------
# the baselines


def morgan_matrix(smiles: Sequence[str], *, radius: int = 2, n_bits: int = 2048) -> np.ndarray:
    """Morgan (ECFP4-like) bit fingerprints, one row per molecule."""
    from rdkit import Chem, DataStructs, rdBase
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    out = np.zeros((len(smiles), n_bits), dtype=np.uint8)
    with rdBase.BlockLogs():
        for i, s in enumerate(smiles):
            mol = Chem.MolFromSmiles(str(s).strip())
            if mol is None:
                raise ValueError(f"unparsable SMILES {s!r}")  # the recipe would have refused it too
            DataStructs.ConvertToNumpyArray(generator.GetFingerprint(mol), out[i])
    return out


def composition_matrix(sequences: Sequence[str], alphabet: str) -> np.ndarray:
    """Per sequence: residue (1-mer) and 2-mer frequencies over `alphabet`, plus log length."""
    index = {c: i for i, c in enumerate(alphabet)}
    a = len(alphabet)
    out = np.zeros((len(sequences), a + a * a + 1), dtype=np.float64)
    for row, raw in enumerate(sequences):
        seq = [index[c] for c in str(raw).strip().upper().rstrip("*") if c in index]
        if seq:
            np.add.at(out[row], seq, 1.0 / len(seq))
        if len(seq) > 1:
            pairs = a + np.asarray(seq[:-1]) * a + np.asarray(seq[1:])
            np.add.at(out[row], pairs, 1.0 / (len(seq) - 1))
        out[row, -1] = np.log1p(len(seq))
    return out


def tabular_matrix(records: Sequence[Record], columns: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
    """Feature rows as floats (NaN = missing); non-numeric columns as category codes, flagged."""
    from mlcore.modalities.tabular.featurizer import DEFAULT_SENTINELS, _as_number

    matrix = np.full((len(records), len(columns)), np.nan)
    categorical: list[bool] = []
    for j, col in enumerate(columns):
        values = [r.input.get(col) for r in records]
        numbers = [_as_number(v) for v in values]
        if all(n is not None for n in numbers):
            matrix[:, j] = [np.nan if n in DEFAULT_SENTINELS else n for n in numbers]
            categorical.append(False)
        else:
            cats = sorted({str(v).strip() for v in values})
            codes = {c: k for k, c in enumerate(cats)}
            matrix[:, j] = [codes[str(v).strip()] for v in values]
            categorical.append(True)
    return matrix, categorical


def _score(kind: str, metric: str, y: np.ndarray, pred: np.ndarray) -> float:
    return float(compute_metrics(kind, y, pred, from_logits=False)[metric])


def baseline_run(spec: DemoDataset, path: Path, *, seed: int) -> tuple[dict[str, float], str]:
    """Fit the modality's classical baseline on train, pick its one knob on val, score test."""
    from sklearn.ensemble import (HistGradientBoostingClassifier, HistGradientBoostingRegressor,
                                  RandomForestClassifier, RandomForestRegressor)
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    task = catalog.task_get(spec.task_keys[0])
    table = _read(spec, path, split_col=SPLIT_COL)
    records = table.records
    kind = resolved_kind(spec, records)
    meta = catalog.TARGET_KINDS[kind]
    parts = {p: [i for i, r in enumerate(records) if str(r.split).strip().lower() == p] for p in ("train", "val", "test")}
    classification = kind in catalog.CLASSIFICATION_KINDS
    targets = TargetEncoder.fit(kind, list(spec.target_cols), [records[i].target for i in parts["train"]])
    if classification:
        y = np.asarray([int(np.asarray(targets.encode(r.target)).reshape(-1)[0]) for r in records])
    else:
        y = np.asarray([float(np.asarray(r.target, dtype=np.float64).reshape(-1)[0]) for r in records])

    categorical: list[bool] = []
    if task.modality == "smiles":
        x = morgan_matrix([r.input for r in records])
        desc = "random forest, 500 trees, Morgan r=2 2048 bits (min_samples_leaf on val)"
        grid = [{"min_samples_leaf": v} for v in (1, 3)]

        def make(p: dict[str, Any]) -> Any:
            cls = RandomForestClassifier if classification else RandomForestRegressor
            extra = {"max_features": "sqrt"} if classification else {"max_features": 0.33}
            return cls(n_estimators=500, random_state=seed, n_jobs=2, **extra, **p)
    elif task.modality in ("protein", "dna"):
        alphabet = "ACDEFGHIKLMNPQRSTVWY" if task.modality == "protein" else "ACGT"
        x = composition_matrix([r.input for r in records], alphabet)
        name = "logistic regression" if classification else "ridge"
        desc = f"{name} on 1-mer + 2-mer composition and log length (C / alpha on val)"
        grid = [{"c": c} for c in (0.01, 0.1, 1.0, 10.0)]

        def make(p: dict[str, Any]) -> Any:
            model = (LogisticRegression(C=p["c"], max_iter=5000) if classification
                     else Ridge(alpha=1.0 / p["c"]))
            return make_pipeline(StandardScaler(), model)
    elif task.modality == "tabular":
        x, categorical = tabular_matrix(records, table.feature_cols)
        desc = "histogram gradient boosting (learning rate on val)"
        grid = [{"learning_rate": lr} for lr in (0.03, 0.1)]

        def make(p: dict[str, Any]) -> Any:
            cls = HistGradientBoostingClassifier if classification else HistGradientBoostingRegressor
            return cls(random_state=seed, categorical_features=np.asarray(categorical, dtype=bool)
                       if any(categorical) else None, **p)
    else:
        raise ValueError(f"no baseline for modality {task.modality!r}")

    def predict(fitted: Any, idx: list[int]) -> np.ndarray:
        return fitted.predict_proba(x[idx]) if classification else fitted.predict(x[idx])

    tr, va, te = parts["train"], parts["val"], parts["test"]
    best, best_params = None, grid[0]
    for params in grid:
        fitted = make(params).fit(x[tr], y[tr])
        value = _score(kind, meta.primary_metric, y[va], predict(fitted, va)) if va else 0.0
        if best is None or (value > best if meta.greater_is_better else value < best):
            best, best_params = value, params
    fitted = make(best_params).fit(x[tr], y[tr])
    metrics = compute_metrics(kind, y[te], predict(fitted, te), from_logits=False)
    return metrics, f"{desc}; chose {best_params}"


# ---------------------------------------------------------------------------------------------
# the comparison


def dataset_compare(spec: DemoDataset, directory: Path, *, seed: int, max_epochs: int | None = None,
                    verbose: bool = False, fingerprint: bool | None = None,
                    average_best: int | None = None) -> Outcome:
    """Model and baseline on one dataset's bench split."""
    path = dataset_prepare(spec, directory, seed=seed)
    t0 = time.perf_counter()
    metrics, model_desc = model_run(spec, path, directory / f"{spec.key}-run", seed=seed, max_epochs=max_epochs,
                                    verbose=verbose, fingerprint=fingerprint, average_best=average_best)
    t1 = time.perf_counter()
    base, desc = baseline_run(spec, path, seed=seed)
    t2 = time.perf_counter()
    kind = metrics["target_kind"]
    meta = catalog.TARGET_KINDS[kind]
    return Outcome(key=spec.key, task=metrics["task"], kind=kind, metric=meta.primary_metric,
                   greater_is_better=meta.greater_is_better, model=float(metrics["test"][meta.primary_metric]),
                   baseline=float(base[meta.primary_metric]), baseline_desc=desc, n_train=metrics["n_train"],
                   n_val=metrics["n_val"], n_test=metrics["n_test"], best_epoch=metrics["best_epoch"],
                   epochs_run=len(metrics["history"]), model_seconds=t1 - t0, baseline_seconds=t2 - t1,
                   model_desc=model_desc, averaged_epochs=list(metrics.get("averaged_epochs") or []))


def summary_json(outcomes: Sequence[Outcome]) -> dict[str, dict[str, Any]]:
    """The last line: per dataset the model's and the baseline's primary metric."""
    return {o.key: {"model": round(o.model, 4), "baseline": round(o.baseline, 4), "metric": o.metric,
                    "task": o.task, "greater_is_better": o.greater_is_better} for o in outcomes}


def _row(o: Outcome) -> str:
    verdict = "model" if o.model_wins else "BASELINE"
    arrow = "higher" if o.greater_is_better else "lower"
    return (f"{o.key:26s} {o.metric:9s} ({arrow:6s}) model {o.model:8.4f}  baseline {o.baseline:8.4f}  "
            f"better: {verdict:8s} n={o.n_train}/{o.n_val}/{o.n_test} best epoch {o.best_epoch}/{o.epochs_run} "
            + (f"(weights: mean of epochs {','.join(map(str, o.averaged_epochs))}) " if o.averaged_epochs else "")
            + f"[{o.model_seconds:.0f}s + {o.baseline_seconds:.0f}s]"
            + (f" model: {o.model_desc}" if o.model_desc else ""))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="", help="comma-separated demo keys (default: every real one)")
    parser.add_argument("--max-epochs", type=int, default=None, help="cap every dataset's epochs (smoke runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="print every epoch's metrics to stderr")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--average-best", type=int, default=None,
                        help="average the weights of this many best epochs (default: the catalog default; 1 = off)")
    parser.add_argument("--fingerprint", choices=("on", "off"), default=None,
                        help="molecules: the [FP] token on or off (default: the catalog default)")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    fingerprint = None if args.fingerprint is None else args.fingerprint == "on"
    torch.manual_seed(args.seed)
    specs = real_datasets()
    if args.datasets:
        wanted = [k.strip() for k in args.datasets.split(",") if k.strip()]
        unknown = [k for k in wanted if k not in {s.key for s in specs}]
        if unknown:
            parser.error(f"not a real demo dataset: {', '.join(unknown)}")
        specs = [s for s in specs if s.key in wanted]
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
    print(f"quality: {PRESET} preset vs scikit-learn baselines, seed {args.seed}, "
          f"torch threads {torch.get_num_threads()}, load average {load}", flush=True)
    outcomes: list[Outcome] = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="labformer-quality-") as tmp:
        for spec in specs:
            outcome = dataset_compare(spec, Path(tmp), seed=args.seed, max_epochs=args.max_epochs,
                                      verbose=args.verbose, fingerprint=fingerprint,
                                      average_best=args.average_best)
            outcomes.append(outcome)
            print(_row(outcome), flush=True)
            print(f"{'':26s} baseline: {outcome.baseline_desc}", flush=True)
    wins = sum(o.model_wins for o in outcomes)
    print(f"model matches or beats the baseline on {wins}/{len(outcomes)} real datasets "
          f"in {time.perf_counter() - t_start:.0f}s", flush=True)
    print(json.dumps(summary_json(outcomes)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
