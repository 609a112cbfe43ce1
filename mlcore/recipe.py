"""The end-to-end training recipe: data -> model -> train -> test evaluation -> explanations -> model dir.

Reads as `setup` (read files, split, validate every record, fit featurizer and targets), `build`
(stem + encoder + head), `fit` (mlcore.trainer.train), `evaluate` (test metrics), `write` (metrics,
explanation files, the model directory). The CLI calls `recipe_run`; Celery workers call it too,
passing their own callbacks (metric points, heartbeat, cancellation) and a checkpoint directory.

Output directory:
- `metrics.json`: `{"task", "target_kind", "test": {...}, "val": {...}, "history": [...], ...}`
- `model/`: the model directory (see mlcore.modeldir)
- `explain/`: attention maps, rollout and test embeddings (see mlcore.explain)
- `evaluation.npz`: per-record evaluation arrays of the test split (mlcore.outputs)
- with explanations: `explain/projection.npz` (2-D projections and clusters of the embeddings) and
  `predictions.csv` (the test records' predictions)
- with `RecipeConfig.profile` set: `report.json` (mlcore.compress.CompressionReport) and
  `model-optimized/` (the optimized model directory), written by `mlcore.compress.profile_run`, and
  `evaluation-optimized.npz`
- `manifest.json`, written last and atomically: every file above with its role (mlcore.manifest)
"""

from __future__ import annotations

import logging
import shutil

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlcore import catalog
from mlcore import distributed as dist_utils
from mlcore.columns import ColumnMapping
from mlcore.data import DataError, Record, Table, TargetEncoder, load_records, split_indices
from mlcore.explain import ExplainOutputs, choose_samples, explain_write
from mlcore.kinds import kind_get
from mlcore.manifest import Manifest, manifest_clear
from mlcore.model import EncoderConfig, cpu_name, encoder_base, encoder_small, encoder_tiny
from mlcore.modalities import Featurizer, RecordError
from mlcore.modeldir import json_write, model_load, model_save
from mlcore.outputs import evaluation_record, explanations_record
from mlcore.taskmodel import ExampleSet, TaskModel, collate_fn, evaluate_fn, featurizer_for_task, model_build
from mlcore.threads import threads_describe
from mlcore.trainer import (STOP_CANCELLED, Callback, TrainConfig, TrainResult, predict, resolve_device,
                            resolve_precision, train)

log = logging.getLogger(__name__)

ENCODER_BUILDERS = {"tiny": encoder_tiny, "small": encoder_small, "base": encoder_base}


@dataclass
class RecipeConfig:
    """Everything one training run needs; `hyperparameters` are overrides checked by the catalog."""

    task: str
    data: Path
    out: Path
    test_data: Path | None = None
    split: str = "random"
    preset: str = "tiny"
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    # Which columns play which role (mlcore.columns); empty entries take the defaults: the modality's
    # input column (tabular: every column not mapped elsewhere), the task's target (`label` / `target` / `labels`).
    columns: ColumnMapping = field(default_factory=ColumnMapping)
    device: str = "auto"
    explain_samples: int = 8  # attention maps are written for this many test records
    max_errors_listed: int = 1  # one-line message; the count of further bad records is appended
    # Optimization profile applied after training (a key of mlcore.catalog.PROFILES), or None.
    profile: str | None = None
    # The profile's options (mlcore.catalog.ProfileOption names, e.g. budget, sparsity, temperature),
    # as strings or typed values; checked by mlcore.catalog.profile_options_resolve before training.
    profile_options: dict[str, Any] = field(default_factory=dict)
    # k-fold cross-validation on the non-test records before the final run (None or 0: none);
    # the folds' metrics land in metrics.json under "cv".
    cv_folds: int | None = None

    def __post_init__(self) -> None:
        # A dictionary (launch.json, a caller's JSON) is read as ColumnMapping.from_dict reads any mapping.
        if not isinstance(self.columns, ColumnMapping):
            self.columns = ColumnMapping.from_dict(self.columns)


@dataclass
class RecipeResult:
    """What a run produced."""

    metrics: dict[str, Any]
    model_dir: Path
    explain: ExplainOutputs | None
    train_result: TrainResult
    model: TaskModel
    compression: Any = None  # mlcore.compress.CompressionReport when a profile was applied
    optimized_dir: Path | None = None  # DIR/model-optimized when a profile was applied
    prepared: Prepared | None = None  # the setup stage's data, for `recipe_profile` on this run
    out: Path | None = None  # the output directory, with its manifest.json (None: nothing written)


@dataclass
class Prepared:
    """The setup stage's output: encoded splits, fitted featurizer and targets."""

    task: catalog.Task
    hyper: dict[str, Any]
    featurizer: Featurizer
    targets: TargetEncoder
    train: ExampleSet
    val: ExampleSet | None
    test: ExampleSet
    test_records: list[Record]
    test_source: Table
    columns: ColumnMapping
    split_notes: list[str] = field(default_factory=list)  # what the split did beyond the asked (metrics.json)


# ---------------------------------------------------------------------------------------------
# setup


def _first_error(errors: list[DataError]) -> DataError:
    first = errors[0]
    if len(errors) > 1:
        first = DataError(first.source, f"{first.reason} (and {len(errors) - 1} more invalid records)",
                          line=first.line, column=first.column, unit=first.unit)
    return first


def setup(config: RecipeConfig) -> Prepared:
    """Read, split and validate the data; fit featurizer and targets on the training split only."""
    task = catalog.task_get(config.task)
    hyper = catalog.hyperparameters_validate(config.hyperparameters, preset=config.preset)
    modality = catalog.MODALITIES[task.modality]
    cols, is_table = config.columns, modality.input_format == "table"
    target_cols = list(cols.target_cols) or [task.default_target_col]
    if len(target_cols) > 1 and not task.kind.several_targets:
        raise DataError(Path(str(config.data)).name,
                        f"task {task.key} ({task.kind.label.lower()}) takes one target column, "
                        f"got {len(target_cols)}: {', '.join(target_cols)}", column=",".join(target_cols))
    table = load_records(config.data, modality=task.modality, input_col=cols.input_col(table=is_table),
                         target_cols=target_cols, id_col=cols.id_col, group_col=cols.group_col,
                         split_col=cols.split_col, feature_cols=cols.feature_cols(table=is_table))
    test_table = None
    if config.test_data is not None:
        test_table = load_records(config.test_data, modality=task.modality, input_col=cols.input_col(table=is_table),
                                  target_cols=target_cols, id_col=cols.id_col,
                                  feature_cols=table.feature_cols or cols.feature_cols(table=is_table))
    input_col = table.input_col or None

    # Targets first: a missing or non-numeric target is reported with its line before anything runs.
    errors: list[DataError] = []
    values = [r.target for r in table.records]
    # Only what the columns decide is checked here (missing labels, numbers); the kind the data resolves
    # to (the class count) is checked once the targets are known good.
    probe = TargetEncoder(kind=kind_get(task.target_kind).for_columns(target_cols), target_cols=target_cols)
    target_col_name = ",".join(target_cols)
    for t in [table, *([test_table] if test_table else [])]:
        for r in t.records:
            try:
                probe.check(r.target)
            except ValueError as exc:
                errors.append(t.error(r, str(exc), target_col_name))
    if errors:
        raise _first_error(errors)
    try:
        kind = TargetEncoder.resolve_kind(task.target_kind, target_cols, values)
    except ValueError as exc:
        raise DataError(table.source, str(exc), column=target_col_name) from None

    # Split the training file (train / val, plus test unless a test file was given).
    val_frac = hyper["val_frac"]
    test_frac = 0.0 if test_table is not None else hyper["test_frac"]
    # A split column given with the default split means: use it (the user said where each record goes).
    method = "column" if cols.split_col and config.split == "random" else config.split
    split_notes: list[str] = []
    try:
        train_idx, val_idx, test_idx = split_indices(
            len(table.records), method, seed=hyper["seed"], val_frac=val_frac, test_frac=test_frac,
            labels=kind_get(kind).split_labels(values),
            smiles=[str(r.input) for r in table.records] if task.modality == "smiles" else None,
            groups=[r.group for r in table.records] if cols.group_col else None,
            split_values=[r.split for r in table.records] if cols.split_col else None,
            notes=split_notes,
        )
    except ValueError as exc:
        raise DataError(table.source, f"cannot split ({method}): {exc}") from None
    for note in split_notes:
        log.warning("%s: %s", table.source, note)
    train_records = [table.records[i] for i in train_idx]
    val_records = [table.records[i] for i in val_idx]
    if test_table is not None:
        test_records, test_source = test_table.records, test_table
    else:
        test_records, test_source = [table.records[i] for i in test_idx], table
    if not test_records:
        raise DataError(table.source, "no test records: give --test FILE or a larger test_frac")

    extra: dict[str, Any] = {}
    if task.modality == "tabular":
        extra["columns"] = table.feature_cols
    # max_len only when asked for: each modality has its own sensible default (catalog).
    max_len = hyper["max_len"] if "max_len" in config.hyperparameters else None
    # Molecules: the [FP] token beside the SMILES (catalog `fingerprint`; the task's default is on).
    fingerprint = hyper.get("fingerprint") if task.modality == "smiles" else None
    featurizer = featurizer_for_task(task.key, max_len=max_len, kmer=hyper["kmer"], fingerprint=fingerprint, **extra)
    try:
        featurizer.fit([r.input for r in train_records])
    except ValueError as exc:
        raise DataError(table.source, f"cannot fit the {modality.key} featurizer: {exc}") from None

    targets = TargetEncoder.fit(kind, target_cols, [r.target for r in train_records])

    def encode_all(records: list[Record], source: Table) -> tuple[list[dict], list[Any]]:
        examples, labels = [], []
        for r in records:
            try:
                example = featurizer.encode(r.input)
            except RecordError as exc:
                if modality.input_format == "long":  # the line is the object's first row: name the object too
                    errors.append(source.error(r, f"{exc} (object {r.id!r})"))
                else:
                    errors.append(source.error(r, str(exc), input_col if modality.input_format == "sequence" else None))
                continue
            try:
                if targets.kind_obj.token_level:  # per-token labels: as many as the record has tokens
                    probe.check(r.target, n_tokens=featurizer.length(example))
                labels.append(targets.encode(r.target))
            except ValueError as exc:
                errors.append(source.error(r, str(exc), target_col_name))
                continue
            examples.append(example)
        return examples, labels

    train_ex, train_y = encode_all(train_records, table)
    val_ex, val_y = encode_all(val_records, table)
    test_ex, test_y = encode_all(test_records, test_source)
    if errors:
        errors.sort(key=lambda e: (e.source != table.source, e.line or 0))
        raise _first_error(errors)

    seed = hyper["seed"]
    train_set = ExampleSet(featurizer, [r.input for r in train_records], train_ex, train_y,
                           augment=hyper["augment"], seed=seed)
    # The raw val inputs ride along (unused without augmentation) so cross-validation can re-pool them.
    val_set = ExampleSet(featurizer, [r.input for r in val_records], val_ex, val_y) if val_ex else None
    test_set = ExampleSet(featurizer, [], test_ex, test_y)
    # The mapping as read (defaults resolved): the model directory keeps it to read prediction files.
    columns = ColumnMapping(input_cols=[input_col] if input_col else table.feature_cols or (),
                            target_cols=target_cols, id_col=cols.id_col, group_col=cols.group_col,
                            split_col=cols.split_col)
    return Prepared(task, hyper, featurizer, targets, train_set, val_set, test_set, test_records, test_source, columns,
                    split_notes)


# ---------------------------------------------------------------------------------------------
# build, fit, evaluate, write


def encoder_config_for(preset: str, featurizer: Featurizer, dropout: float) -> EncoderConfig:
    """The preset's encoder shape, sized for the featurizer's longest input."""
    if preset not in ENCODER_BUILDERS:
        raise KeyError(f"unknown preset {preset!r}; valid presets: {', '.join(ENCODER_BUILDERS)}")
    max_len = featurizer.max_len
    if hasattr(featurizer, "feature_order"):  # tabular: one token per feature
        max_len = max(1, len(featurizer.feature_order))
    return ENCODER_BUILDERS[preset](dropout=dropout, attn_dropout=dropout, max_len=max_len)


def build(prep: Prepared, preset: str) -> TaskModel:
    """A freshly initialized model, deterministic in the seed."""
    torch.manual_seed(prep.hyper["seed"])
    encoder_config = encoder_config_for(preset, prep.featurizer, prep.hyper["dropout"])
    weights = None
    if prep.hyper["class_weights"]:
        weights = prep.targets.kind_obj.class_weights(prep.train.labels, prep.targets.n_outputs)
    return model_build(prep.featurizer, encoder_config, prep.targets.kind, prep.targets.n_outputs, weights)


def train_config(hyper: dict[str, Any], device: str) -> TrainConfig:
    """The trainer's config from resolved catalog hyperparameters."""
    return TrainConfig(
        epochs=hyper["epochs"], batch_size=hyper["batch_size"], lr=hyper["lr"],
        weight_decay=hyper["weight_decay"], warmup_frac=hyper["warmup_frac"], grad_clip=hyper["grad_clip"],
        patience=hyper["patience"] or None, precision=hyper["precision"], seed=hyper["seed"], device=device,
        average_best=hyper["average_best"],
    )


def environment(device: torch.device, precision: str, world_size: int = 1) -> dict[str, Any]:
    """Where a model was trained, as metrics.json records it: the device and its name, the precision
    as resolved there (`auto` becomes bf16 or fp32), torch's version and CUDA's, CPU threads (mlcore.threads)
    and ranks."""
    dtype, _ = resolve_precision(precision, device)
    return {
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "precision": {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32"),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        **threads_describe(),  # threads, interop_threads, cores, omp_wait_policy (and why, when chosen)
        "world_size": world_size,
    }


def recipe_run(config: RecipeConfig, *, callbacks: Sequence[Callback] = (), checkpoint_dir: Path | None = None,
               resume_from: Path | None = None) -> RecipeResult:
    """Run the whole recipe and write `config.out` (metrics.json, model/, explain/, ...; see the module's
    doc), listing every file with its role in `config.out/manifest.json`, written last (mlcore.manifest).

    `callbacks` see every training step and epoch; one whose `should_stop()` turns true cancels the
    run, which then returns at once with `train_result.stopped_reason == "cancelled"` and writes
    nothing. `checkpoint_dir` / `resume_from` are passed to the trainer (a checkpoint every epoch,
    exact resume). Raises `DataError` (one line: file, line, reason) for bad input.
    """
    t_start = time.perf_counter()
    if config.profile:  # a bad profile option is refused before training, not after it
        catalog.profile_options_resolve(config.profile, {
            k: v for k, v in config.profile_options.items() if catalog.profile_get(config.profile).option(k)})
    # The phases this run goes through, announced to the callbacks as each begins (a job's page shows them).
    phases = ["preparing", "training", *(["cross-validating"] if config.cv_folds else []), "evaluating",
              *(["explaining"] if config.explain_samples > 0 else []), *(["optimizing"] if config.profile else [])]

    def phase(name: str) -> None:
        log.info("phase %d of %d: %s", phases.index(name) + 1, len(phases), name)
        for cb in callbacks:
            cb.on_phase(name, phases.index(name) + 1, len(phases))

    phase("preparing")
    prep = setup(config)
    if dist_utils.launched_rank()[0] == 0:
        manifest_clear(config.out)  # what an earlier run into this directory listed: this run replaces it
    model = build(prep, config.preset)
    kind, targets, featurizer = prep.targets.kind, prep.targets, prep.featurizer
    collate = collate_fn(featurizer, kind)
    tconfig = train_config(prep.hyper, config.device)
    meta = {"task": prep.task.key, "preset": config.preset, "encoder": model.encoder.config.to_dict()}
    log.info("task %s (%s) on %s: %d train / %d val / %d test records, preset %s, %d parameters, device %s",
             prep.task.key, prep.targets.kind, Path(str(config.data)).name, len(prep.train),
             len(prep.val) if prep.val else 0, len(prep.test), config.preset,
             sum(p.numel() for p in model.parameters()), config.device)
    # The resolved kind's metric: a classification task run on 5 classes selects on macro-F1, not ROC-AUC.
    kind_meta = catalog.TARGET_KINDS[kind]
    phase("training")
    result = train(
        model=model, train_set=prep.train, val_set=prep.val, collate=collate, length=featurizer.length,
        evaluate=evaluate_fn(targets), primary_metric=kind_meta.primary_metric,
        greater_is_better=kind_meta.greater_is_better, config=tconfig,
        callbacks=callbacks, checkpoint_dir=checkpoint_dir, resume_from=resume_from,
        model_meta=meta,
    )
    train_seconds = time.perf_counter() - t_start
    model = result.model
    cv = None
    if config.cv_folds and result.stopped_reason != "cancelled":
        phase("cross-validating")
        cv = cross_validate_prepared(prep, config, config.cv_folds, callbacks=callbacks)
    out = Path(config.out)
    # Under DDP only rank 0 goes on (test pass, explanations, model directory, the profile, which may
    # fine-tune); every rank leaves the process group here and the other ranks just return.
    ctx = dist_utils.setup(resolve_device(config.device))
    if ctx.enabled:
        dist_utils.leave()
    if result.stopped_reason == "cancelled" or not ctx.is_main:
        # A cancelled job wants no test pass, explanations or model directory: return what is known.
        metrics = {"task": prep.task.key, "target_kind": kind, "test": {}, "val": result.best_metrics,
                   "history": result.history, "stopped_reason": result.stopped_reason}
        return RecipeResult(metrics=metrics, model_dir=out / "model", explain=None, train_result=result, model=model)
    device = resolve_device(config.device)

    # Test evaluation with the best-validation weights.
    phase("evaluating")
    test_logits = predict(model=model, dataset=prep.test, collate=collate, length=featurizer.length,
                          batch_size=prep.hyper["batch_size"], device=device)
    test_metrics = evaluate_fn(targets)(test_logits, list(prep.test.labels))
    log.info("trained in %.1f s (best epoch %s, %s); test %s", train_seconds, result.best_epoch,
             result.stopped_reason or "all epochs",
             " ".join(f"{k}={v:.4g}" for k, v in test_metrics.items() if isinstance(v, float)))

    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out)
    manifest.add(out / "metrics.json", "metrics")  # written last: it takes in what the profile adds
    metrics = {
        "task": prep.task.key,
        "target_kind": kind,
        "primary_metric": catalog.TARGET_KINDS[kind].primary_metric,
        "test": test_metrics,
        "val": result.best_metrics,
        "history": result.history,
        "best_epoch": result.best_epoch,
        "averaged_epochs": result.averaged_epochs,
        "stopped_reason": result.stopped_reason,
        "n_train": len(prep.train), "n_val": len(prep.val) if prep.val else 0, "n_test": len(prep.test),
        "preset": config.preset,
        "hyperparameters": prep.hyper,
        "train_seconds": round(train_seconds, 3),
        "params": sum(p.numel() for p in model.parameters()),
        "environment": environment(device, prep.hyper["precision"], world_size=ctx.world_size),
    }
    if cv is not None:
        metrics["cv"] = cv
    if prep.split_notes:
        metrics["split_notes"] = prep.split_notes
    if ctx.world_size > 1:
        metrics["world_size"] = ctx.world_size

    model.eval()
    model_dir = model_save(out / "model", model=model.cpu(), featurizer=featurizer, targets=targets,
                           task=prep.task.key, columns=prep.columns, hyperparameters=prep.hyper,
                           preset=config.preset, metrics=metrics)
    manifest.add_dir(model_dir, "model")
    evaluation_record(manifest, model=model, prep=prep)
    explain = None
    if config.explain_samples > 0:
        phase("explaining")
        loaded = model_load(model_dir)  # decode() lives on the loaded model; same weights
        predictions = [p["prediction"] for p in loaded.decode(test_logits)]
        true_labels = _true_labels(targets, prep.test_records, prep.test.labels)
        inputs_only = [dict(e) for e in prep.test.examples]
        classes = targets.kind_obj.stratify(prep.test.labels)  # class ids: take classes in turn
        if classes is not None:
            sample_idx = choose_samples(classes, config.explain_samples, seed=prep.hyper["seed"])
        else:
            sample_idx = list(range(min(config.explain_samples, len(prep.test))))
        explain = explain_write(out / "explain", model=model, featurizer=featurizer, collate=collate_fn(featurizer, kind),
                                examples=inputs_only, ids=[r.id for r in prep.test_records],
                                lines=[r.line for r in prep.test_records], true_labels=true_labels,
                                predictions=predictions, sample_indices=sample_idx)
        explanations_record(manifest, explain.directory, inputs=[r.input for r in prep.test_records],
                            seed=int(prep.hyper.get("seed", 0)))
    run = RecipeResult(metrics=metrics, model_dir=model_dir, explain=explain, train_result=result, model=model,
                       prepared=prep, out=out)
    if config.profile:
        from mlcore.compress.base import CompressionCancelled

        metrics["profile"] = config.profile
        phase("optimizing")
        log.info("applying the %s profile", config.profile)
        try:
            run.compression, run.optimized_dir = recipe_profile(config, run, callbacks=callbacks)
        except CompressionCancelled:
            # The trained model is kept (it is complete); the profile's outputs are not written.
            metrics["stopped_reason"] = STOP_CANCELLED
        else:
            manifest.add(out / "report.json", "report", meta={"profile": config.profile})
            if run.compression.info.get("unchanged"):
                # `baseline`: the optimized model is the trained model itself; the report is all it adds.
                shutil.rmtree(run.optimized_dir, ignore_errors=True)
                run.optimized_dir = model_dir
            else:
                manifest.add_dir(run.optimized_dir, "optimized_model", meta={"variant": "optimized",
                                                                             "profile": config.profile})
                evaluation_record(manifest, model=model_load(run.optimized_dir).model, prep=prep,
                                  variant="optimized", profile=config.profile)
    json_write(out / "metrics.json", metrics)
    if checkpoint_dir is not None and Path(checkpoint_dir).resolve().is_relative_to(out.resolve()) \
            and Path(checkpoint_dir).is_dir():
        manifest.add_dir(checkpoint_dir, "checkpoint")
    manifest.write()
    return run


def cross_validate_prepared(prep: Prepared, config: RecipeConfig, k: int, *,
                            callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """k-fold cross-validation of the recipe's model on the non-test records (train + val pooled).

    The test records stay out of every fold, so the CV estimate and the final test score are
    independent. Folds are seeded and stratified for classification; each fold trains a fresh model
    (same preset and hyperparameters as the final run) and early-stops on an inner validation split
    of its training folds, never on the held-out fold (`mlcore.trainer.cross_validate`). The
    featurizer and target scaling are the ones fitted on the run's training split.
    Returns `{"k", "n_records", "metrics": {name: {"mean", "std"}}, "folds": [...], "best_epochs": [...]}`.
    """
    from mlcore.trainer import cross_validate

    pool_examples = list(prep.train.examples) + (list(prep.val.examples) if prep.val else [])
    pool_inputs = list(prep.train.inputs) + (list(prep.val.inputs) if prep.val else [])
    pool_labels = list(prep.train.labels) + (list(prep.val.labels) if prep.val else [])
    if not 2 <= k <= len(pool_examples):
        raise ValueError(f"cross-validation needs 2 <= folds <= {len(pool_examples)} (non-test records), got {k}")
    pool = ExampleSet(prep.featurizer, pool_inputs, pool_examples, pool_labels, augment=prep.hyper["augment"],
                      seed=prep.hyper["seed"])
    kind = prep.targets.kind
    kind_meta = catalog.TARGET_KINDS[kind]
    stratify = kind_get(kind).stratify(pool_labels)
    if stratify is not None:
        smallest = min(np.bincount(stratify))
        if smallest < k:
            log.warning("cross-validation: the rarest class has %d records, fewer than %d folds", smallest, k)
    log.info("cross-validation: %d folds over %d records", k, len(pool))
    result = cross_validate(
        k=k, model_factory=lambda: build(prep, config.preset), dataset=pool,
        collate=collate_fn(prep.featurizer, kind), length=prep.featurizer.length, evaluate=evaluate_fn(prep.targets),
        primary_metric=kind_meta.primary_metric, greater_is_better=kind_meta.greater_is_better,
        config=train_config(prep.hyper, config.device), stratify=stratify, inner_val_frac=prep.hyper["val_frac"],
        callbacks=callbacks,
    )
    for i, fold in enumerate(result.folds):
        log.info("fold %d/%d: %s", i + 1, k, " ".join(f"{m}={v:.4g}" for m, v in fold.items()))
    return {
        "k": k, "n_records": len(pool), "primary_metric": kind_meta.primary_metric,
        "metrics": {m: {"mean": result.mean[m], "std": result.std[m]} for m in result.mean},
        "folds": result.folds, "best_epochs": result.best_epochs,
    }


def recipe_profile(config: RecipeConfig, run: RecipeResult, *, profile: str | None = None,
                   budget: float | None = None, options: dict[str, Any] | None = None, out: Path | None = None,
                   callbacks: Sequence[Callback] = (), latency_runs: int = 20) -> tuple[Any, Path]:
    """Apply an optimization profile to a finished run; writes OUT/report.json and OUT/model-optimized/.

    `profile` and `options` default to the config's (`budget`, when given, is the `budget` option);
    `out` to `config.out`. Returns the
    `mlcore.compress.CompressionReport` and the optimized model directory. Lets a caller try several
    profiles on one trained baseline (bench/compression.py does).
    """
    from mlcore.compress import CompressContext, profile_run  # torch-heavy profiles load only when asked

    prep, model, metrics, model_dir = run.prepared, run.model, run.metrics, run.model_dir
    if prep is None:
        raise ValueError("this RecipeResult carries no prepared data (a cancelled run?)")
    profile = profile or config.profile
    options = dict(config.profile_options if options is None else options)
    if budget is not None:
        options["budget"] = budget
    out = Path(out or config.out)
    tconfig = train_config(prep.hyper, config.device)

    kind, featurizer = prep.targets.kind, prep.featurizer
    kind_meta = catalog.TARGET_KINDS[kind]
    collate, evaluate = collate_fn(featurizer, kind), evaluate_fn(prep.targets)

    def build_model(preset: str | None = None, **overrides: Any) -> TaskModel:
        # Same seed and class weights as the job's model; only the shape may differ (students).
        torch.manual_seed(prep.hyper["seed"])
        shape = replace(encoder_config_for(preset or config.preset, featurizer, prep.hyper["dropout"]), **overrides)
        weights = None
        if prep.hyper["class_weights"]:
            weights = prep.targets.kind_obj.class_weights(prep.train.labels, prep.targets.n_outputs)
        return model_build(featurizer, shape, kind, prep.targets.n_outputs, weights)

    ctx = CompressContext(
        train_set=prep.train, val_set=prep.val, collate=collate, length=featurizer.length, evaluate=evaluate,
        primary_metric=kind_meta.primary_metric, greater_is_better=kind_meta.greater_is_better,
        train_config=tconfig, kind=kind,
        baseline_val=metrics["val"].get(kind_meta.primary_metric) if metrics.get("val") else None,
        build_model=build_model, preset=config.preset, callbacks=callbacks,
    )

    def save(directory: Path, optimized: Any, state: Any, compression: Any, opt_metrics: dict[str, Any]) -> Path:
        return model_save(directory, model=optimized, featurizer=featurizer, targets=prep.targets, task=prep.task.key,
                          columns=prep.columns, hyperparameters=prep.hyper, preset=config.preset,
                          metrics=opt_metrics, state=state, compression=compression)

    return profile_run(profile=profile, model=model, ctx=ctx, test_set=prep.test,
                       test_labels=list(prep.test.labels), baseline_dir=model_dir,
                       baseline_metrics=metrics["test"], out=out, save=save, options=options, runs=latency_runs)


def _true_labels(targets: TargetEncoder, records: list[Record], encoded: Sequence[Any]) -> list[Any]:
    return targets.true_labels(records, encoded)
