"""The catalog: every modality, target kind, task, size preset, optimization profile and hyperparameter.

This module is the single source the portal, the REST API, the dashboards and the CLI build their
choices from. It imports nothing heavier than the standard library (no torch, no numpy), so the web
process can read it cheaply; a test checks that in a fresh interpreter.

Everything is a frozen dataclass or a plain dict of them. Adding a task means adding one `Task(...)`
entry to `TASKS` here and, if its modality is new, one package under `mlcore/modalities/`. A profile's
options (`ProfileOption`) are declared on its `Profile` entry and checked by `profile_options_resolve`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any


# --------------------------------------------------------------------------------------------------
# Modalities: what a record looks like.


@dataclass(frozen=True)
class Modality:
    """One kind of input record and how it is laid out in an uploaded file."""

    key: str
    label: str
    description: str
    # Column holding the record (sequence / SMILES). For set and series modalities stored in long
    # format (one row per particle or observation) this is the object id column grouping the rows;
    # for tabular it is empty: every column that is not a target / id / split column is a feature.
    default_input_col: str
    # "sequence": one string per row; "long": one row per element grouped by an object id column
    # (or Parquet list columns); "table": one row per record, one column per feature.
    input_format: str
    # Per-element fields a long-format file must have (particles, lightcurve); empty otherwise.
    element_fields: tuple[str, ...] = ()
    # Fields used when present but not required.
    optional_fields: tuple[str, ...] = ()
    # Longest record accepted by default (tokens / elements); the `max_len` hyperparameter overrides.
    default_max_len: int = 512
    # Alphabet for sequence modalities (upper case), empty when not applicable.
    alphabet: str = ""


MODALITIES: dict[str, Modality] = {}


def _modality_register(modality: Modality) -> Modality:
    MODALITIES[modality.key] = modality
    return modality


_modality_register(Modality(
    key="dna",
    label="DNA / RNA sequences",
    description=(
        "Nucleotide sequences, one per row. Alphabet ACGT (U read as T); IUPAC ambiguity codes "
        "(N, R, Y, S, W, K, M, B, D, H, V) are accepted and tokenized as ambiguous bases. "
        "Single-base or k-mer tokens; optional reverse-complement augmentation."
    ),
    default_input_col="sequence",
    input_format="sequence",
    default_max_len=1024,
    alphabet="ACGTNRYSWKMBDHV",
))
_modality_register(Modality(
    key="protein",
    label="Protein sequences",
    description=(
        "Amino-acid sequences, one per row: the 20 standard residues plus X (unknown), B (D/N), "
        "Z (E/Q), U (selenocysteine) and O (pyrrolysine). Per-residue labels supported as a string "
        "of the same length (one character per residue)."
    ),
    default_input_col="sequence",
    input_format="sequence",
    default_max_len=1024,
    alphabet="ACDEFGHIKLMNPQRSTVWYXBZUO",
))
_modality_register(Modality(
    key="smiles",
    label="Molecules (SMILES)",
    description=(
        "Molecules as SMILES strings, validated and canonicalized with RDKit and split into atom-level "
        "tokens with the regex tokenizer of Schwaller et al.; optional randomized-SMILES augmentation. "
        "Each token keeps the index of the atom it denotes, so attention can be drawn on atoms."
    ),
    default_input_col="smiles",
    input_format="sequence",
    default_max_len=256,
))
_modality_register(Modality(
    key="particles",
    label="Particle sets (jets / events)",
    description=(
        "A jet or event as an unordered set of particles, in long format: one row per particle with "
        "an object id column, the particle's pT, eta, phi, energy and optionally charge and pid. "
        "No positional encoding (permutation invariant); pairwise physics features (Delta R, kT, z, "
        "m^2) can be added as an attention bias."
    ),
    default_input_col="object_id",
    input_format="long",
    element_fields=("pt", "eta", "phi", "energy"),
    optional_fields=("charge", "pid"),
    default_max_len=128,
))
_modality_register(Modality(
    key="lightcurve",
    label="Light curves (irregular time series)",
    description=(
        "Irregularly sampled photometry in long format: one row per observation with an object id "
        "column, time, flux, flux_err and band. Encoded with a continuous-time sinusoidal encoding of "
        "the real observation time plus a band embedding."
    ),
    default_input_col="object_id",
    input_format="long",
    element_fields=("time", "flux", "flux_err", "band"),
    default_max_len=256,
))
_modality_register(Modality(
    key="tabular",
    label="Tabular measurements",
    description=(
        "One record per row, one token per feature column (FT-Transformer style): numeric features get "
        "a per-feature linear embedding, categorical ones an embedding table. Missing values (empty, "
        "NaN or a declared sentinel such as -999) are embedded with a learned 'missing' vector."
    ),
    default_input_col="",
    input_format="table",
    default_max_len=512,
))


# --------------------------------------------------------------------------------------------------
# Input conventions the modalities' torch-free record rules (mlcore/modalities/<m>/rules.py, which
# validation, the featurizers and prediction all call) build on.

# The SMILES tokenizer, Schwaller et al.'s pattern: bracket atoms, two-letter organic atoms,
# single-letter atoms (aliphatic and aromatic), bonds, branches, ring closures (%nn two-digit), dot,
# charges, chirality, wildcard. A canonical SMILES it cannot tokenize fails at training time.
SMILES_TOKEN_PATTERN = (
    r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|\/|:|~|@|\?|>|\*|\$|%[0-9]{2}|[0-9])"
)
# Tabular: strings meaning "missing" (compared stripped and lower-cased), and the default numeric
# sentinel (a declared sentinel value is missing too).
MISSING_STRINGS = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-"})
DEFAULT_SENTINELS = (-999.0,)
# How records are divided into train / validation / test (mlcore.data.split_indices does it).
SPLIT_METHODS: dict[str, str] = {
    "random": "Records shuffled and cut by the validation and test fractions.",
    "stratified": "Each class divided in the same proportions (classification tasks).",
    "scaffold": "Molecules grouped by Bemis-Murcko scaffold; no scaffold spans two parts (molecules).",
    "group": "Records sharing the dataset's group column stay together (needs a group column).",
    "column": "The dataset's split column says train / val / test for each record (needs a split column).",
}
# A split column's values (compared stripped and lower-cased) -> the part the record goes to.
SPLIT_VALUES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                "dev": "val", "test": "test", "testing": "test"}


def number_or_missing(value: Any) -> float | None:
    """A value as a float, NaN when it denotes a missing value, None when it is not numeric."""
    if value is None:
        return math.nan
    if not isinstance(value, str):  # strings first: they are what CSV files hold
        # numbers.Real covers numpy's integer and floating scalars too; a bool is no measurement.
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
        value = str(value)
    text = value.strip()
    if text.lower() in MISSING_STRINGS:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------------
# Target kinds: what is predicted, and how it is scored.


@dataclass(frozen=True)
class TargetKind:
    """A kind of prediction target: its metrics and everything the torch-free parts (portal,
    dashboards, validation's choices) decide by. The run-time behaviour (head, label encoding, loss,
    metrics, prediction columns, evaluation arrays, label checks) is the `mlcore.kinds` class of the
    same key; the code outside those two places never tests a kind's name.

    - `classification`: predicts classes (stratified splits and class weights apply, labels are text);
    - `resolution`: the kinds a task declared as this one may run as, chosen from the data: for
      `"classes"` (two classes, more) and for `"columns"` (one target column, several), else empty;
    - `several_targets`: several target columns are accepted (the CLI's `--target-col a,b,c`);
    - `default_target_col`: the target column when the user names none;
    - `evaluation_plots`: the evaluation views that apply, among `EVALUATION_PLOTS`;
    - `evaluation_per_target`: the evaluation views are drawn one target column at a time;
    - `embedding_colour`: how the embedding explorer colours records by label / prediction:
      `"class"` (categorical), `"value"` (continuous, the first target) or `"token_class"` (the most
      frequent per-token class), with the error as correct/wrong, absolute error or the wrong-token share.
    """

    key: str
    label: str
    description: str
    primary_metric: str
    greater_is_better: bool
    metrics: tuple[str, ...]
    classification: bool = False
    resolution: tuple[str, str] = ()  # type: ignore[assignment]
    resolve_by: str = ""  # "classes" | "columns" | ""
    several_targets: bool = False
    default_target_col: str = "target"
    evaluation_plots: tuple[str, ...] = ()
    evaluation_per_target: bool = False
    embedding_colour: str = "class"


# Every evaluation view a kind may list; the evaluation dashboard draws the ones its kind lists.
EVALUATION_PLOTS = ("confusion", "roc", "pr", "calibration", "parity", "residuals", "errors", "token_accuracy")
_CLASS_PLOTS = ("confusion", "roc", "pr", "calibration")
_VALUE_PLOTS = ("parity", "residuals", "errors")

TARGET_KINDS: dict[str, TargetKind] = {}


def target_kind_register(kind: TargetKind) -> TargetKind:
    """Add a target kind's metadata (its run-time class lives in `mlcore/kinds/<key>.py`)."""
    TARGET_KINDS[kind.key] = kind
    return kind


for _k in (
    TargetKind(
        "binary", "Binary classification", "Two classes, any labels (mapped to 0/1 in sorted order).",
        "roc_auc", True,
        ("roc_auc", "pr_auc", "accuracy", "balanced_accuracy", "macro_f1", "mcc"),
        classification=True, resolution=("binary", "multiclass"), resolve_by="classes",
        default_target_col="label", evaluation_plots=_CLASS_PLOTS, embedding_colour="class",
    ),
    TargetKind(
        "multiclass", "Multi-class classification", "Three or more classes.",
        "macro_f1", True,
        ("accuracy", "balanced_accuracy", "macro_f1", "mcc", "roc_auc"),
        classification=True, resolution=("binary", "multiclass"), resolve_by="classes",
        default_target_col="label", evaluation_plots=_CLASS_PLOTS, embedding_colour="class",
    ),
    TargetKind(
        "regression", "Regression", "One numeric target (standardized for training).",
        "rmse", False,
        ("rmse", "mae", "r2", "spearman", "pearson"),
        resolution=("regression", "multi_regression"), resolve_by="columns", several_targets=True,
        evaluation_plots=_VALUE_PLOTS, evaluation_per_target=True, embedding_colour="value",
    ),
    TargetKind(
        "multi_regression", "Multi-target regression",
        "Several numeric targets per record; missing values allowed and masked out of the loss.",
        "rmse", False,
        ("rmse", "mae", "r2", "spearman", "pearson"),
        resolution=("regression", "multi_regression"), resolve_by="columns", several_targets=True,
        evaluation_plots=_VALUE_PLOTS, evaluation_per_target=True, embedding_colour="value",
    ),
    TargetKind(
        "token_labels", "Per-token labels",
        "One class per token (e.g. per residue), given as a string of the sequence's length.",
        "token_accuracy", True,
        ("token_accuracy", "token_macro_f1"),
        default_target_col="labels", evaluation_plots=("token_accuracy",), embedding_colour="token_class",
    ),
):
    target_kind_register(_k)
target_kind_register(TargetKind(
    "multi_label", "Multi-label classification",
    "Several yes/no labels per record, one 1/0 column each (e.g. an assay panel, function terms); an empty "
    "cell is a missing label, left out of the loss and the metrics.",
    "macro_roc_auc", True,
    ("macro_roc_auc", "macro_pr_auc", "micro_roc_auc", "label_accuracy"),
    several_targets=True, default_target_col="label", evaluation_plots=("roc", "pr", "calibration"),
    embedding_colour="class",
))


def target_kind_get(key: str) -> TargetKind:
    """Return the target kind `key`; KeyError listing the valid keys otherwise."""
    try:
        return TARGET_KINDS[key]
    except KeyError:
        raise KeyError(f"unknown target kind {key!r}; valid kinds: {', '.join(TARGET_KINDS)}") from None


@dataclass(frozen=True)
class Metric:
    """What a metric's values can be: charts bound their axes and colour scales by `lower` / `upper`
    (None: unbounded on that side), so a chart of ROC AUCs never runs past 1."""

    key: str
    lower: float | None
    upper: float | None
    greater_is_better: bool


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        *(Metric(k, 0.0, 1.0, True) for k in ("roc_auc", "pr_auc", "accuracy", "balanced_accuracy", "f1",
                                               "macro_f1", "token_accuracy", "token_macro_f1", "macro_roc_auc",
                                               "macro_pr_auc", "micro_roc_auc", "label_accuracy")),
        *(Metric(k, -1.0, 1.0, True) for k in ("mcc", "spearman", "pearson")),
        Metric("r2", None, 1.0, True),
        *(Metric(k, 0.0, None, False) for k in ("rmse", "mae", "log_loss", "loss", "epoch_loss")),
    )
}

# Kept for callers that list them; decide by `TargetKind.classification` / `resolve_by` instead.
CLASSIFICATION_KINDS = tuple(k for k, v in TARGET_KINDS.items() if v.classification)
REGRESSION_KINDS = tuple(k for k, v in TARGET_KINDS.items() if v.resolve_by == "columns")


# --------------------------------------------------------------------------------------------------
# Tasks: a modality plus a target kind, with a domain and defaults.


@dataclass(frozen=True)
class Task:
    """A domain task a researcher can launch. `target_kind` is the declared kind; a classification
    task whose data has more than two classes runs as `multiclass` (see `task_target_kind`)."""

    key: str
    label: str
    domain: str
    modality: str
    target_kind: str
    primary_metric: str
    greater_is_better: bool
    metrics: tuple[str, ...]
    default_target_col: str
    description: str

    @property
    def kind(self) -> TargetKind:
        """The declared target kind's metadata."""
        return TARGET_KINDS[self.target_kind]

    @property
    def is_classification(self) -> bool:
        return self.kind.classification

    @property
    def is_regression(self) -> bool:
        return self.kind.resolve_by == "columns"


TASKS: dict[str, Task] = {}


def _task(key: str, label: str, domain: str, modality: str, target_kind: str, description: str) -> Task:
    """Build a task whose metrics come from its target kind, and register it."""
    kind = TARGET_KINDS[target_kind]
    target_col = kind.default_target_col
    task = Task(
        key=key, label=label, domain=domain, modality=modality, target_kind=target_kind,
        primary_metric=kind.primary_metric, greater_is_better=kind.greater_is_better,
        metrics=kind.metrics, default_target_col=target_col, description=description,
    )
    TASKS[key] = task
    return task


_task("dna-classification", "DNA sequence classification", "bioinformatics", "dna", "binary",
      "Classify nucleotide sequences (e.g. promoter vs non-promoter, binding site present).")
_task("dna-regression", "DNA sequence regression", "bioinformatics", "dna", "regression",
      "Predict a numeric property of a nucleotide sequence (e.g. expression level).")
_task("protein-classification", "Protein classification", "bioinformatics", "protein", "binary",
      "Classify protein sequences (e.g. localization, family, solubility).")
_task("protein-regression", "Protein property regression", "bioinformatics", "protein", "regression",
      "Predict a numeric protein property (e.g. stability, fluorescence).")
_task("residue-labeling", "Per-residue labeling", "bioinformatics", "protein", "token_labels",
      "Label every residue (e.g. secondary structure H/E/C, binding residues).")
_task("molecule-classification", "Molecular property classification", "chemistry", "smiles", "binary",
      "Classify molecules from SMILES (e.g. active vs inactive, toxic vs non-toxic).")
_task("molecule-regression", "Molecular property regression", "chemistry", "smiles", "multi_regression",
      "Predict one or more numeric molecular properties from SMILES; missing values allowed.")
_task("jet-tagging", "Jet tagging", "physics", "particles", "binary",
      "Classify jets from their constituent particles (e.g. boosted boson vs QCD).")
_task("lightcurve-classification", "Light-curve classification", "astronomy", "lightcurve", "multiclass",
      "Classify astronomical sources from irregular multi-band light curves.")
_task("tabular-classification", "Tabular classification", "tabular", "tabular", "binary",
      "Classify records of numeric and categorical measurements.")
_task("tabular-regression", "Tabular regression", "tabular", "tabular", "regression",
      "Predict a numeric target from numeric and categorical measurements.")
_task("tabular-multilabel", "Tabular multi-label classification", "tabular", "tabular", "multi_label",
      "Predict several yes/no labels per record (one 1/0 column each; empty = unknown) from measurements.")
_task("molecule-multilabel", "Molecular multi-label classification", "chemistry", "smiles", "multi_label",
      "Predict a panel of yes/no properties per molecule (e.g. Tox21-style assays); missing results allowed.")
_task("protein-multilabel", "Protein multi-label classification", "bioinformatics", "protein", "multi_label",
      "Predict several yes/no annotations per protein (e.g. function terms, motifs); missing labels allowed.")


def task_get(key: str) -> Task:
    """Return the task `key`; KeyError listing the valid keys otherwise."""
    try:
        return TASKS[key]
    except KeyError:
        raise KeyError(f"unknown task {key!r}; valid tasks: {', '.join(sorted(TASKS))}") from None


def modality_get(key: str) -> Modality:
    """Return the modality `key`; KeyError listing the valid keys otherwise."""
    try:
        return MODALITIES[key]
    except KeyError:
        raise KeyError(f"unknown modality {key!r}; valid modalities: {', '.join(sorted(MODALITIES))}") from None


def tasks_for_modality(modality: str) -> list[Task]:
    """Every task whose input is `modality`, in catalog order (KeyError for an unknown modality)."""
    modality_get(modality)
    return [t for t in TASKS.values() if t.modality == modality]


def task_target_kind(task: Task | str, *, n_classes: int | None = None, n_targets: int | None = None) -> str:
    """The target kind a task actually runs as, given its data: a classification task with more than
    two classes is `multiclass`, with two `binary`; a regression task with several targets is
    `multi_regression`, with one `regression`."""
    t = task_get(task) if isinstance(task, str) else task
    return kind_resolve(t.target_kind, n_classes=n_classes, n_targets=n_targets, task_key=t.key)


def kind_resolve(kind: str, *, n_classes: int | None = None, n_targets: int | None = None,
                 task_key: str | None = None) -> str:
    """The kind a declared `kind` runs as, given the number of classes or target columns (its
    `resolution`); the declared kind when that number is not known or the kind has no resolution."""
    meta = target_kind_get(kind)
    if meta.resolve_by == "classes" and n_classes is not None:
        if n_classes < 2:
            who = f"task {task_key!r}" if task_key else f"kind {kind!r}"
            raise ValueError(f"{who} needs at least 2 classes, the data has {n_classes}")
        return meta.resolution[0] if n_classes == 2 else meta.resolution[1]
    if meta.resolve_by == "columns" and n_targets is not None:
        return meta.resolution[0] if n_targets == 1 else meta.resolution[1]
    return kind


# --------------------------------------------------------------------------------------------------
# Size presets. PRESETS holds only encoder shapes (mlcore.model builds EncoderConfig from them);
# PRESET_TRAINING holds the training defaults that suit each size.

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 128, "dropout": 0.1},
    "small": {"d_model": 128, "n_layers": 4, "n_heads": 4, "d_ff": 512, "dropout": 0.1},
    # The BERT-shaped size the throughput benchmark compares against HF at (hidden 256, 4 layers).
    "base": {"d_model": 256, "n_layers": 4, "n_heads": 4, "d_ff": 1024, "dropout": 0.1},
}

PRESET_TRAINING: dict[str, dict[str, Any]] = {
    # Small models tolerate (and need, to converge within a few epochs) a higher learning rate.
    "tiny": {"batch_size": 32, "lr": 2e-3, "epochs": 20},
    "small": {"batch_size": 32, "lr": 1e-3, "epochs": 30},
    "base": {"batch_size": 32, "lr": 5e-4, "epochs": 40},
}


# --------------------------------------------------------------------------------------------------
# Optimization profiles (implemented in mlcore/compress/, one module per profile) and their options.


@dataclass(frozen=True)
class ProfileOption:
    """One typed setting of an optimization profile, settable from the launch form, the API and the
    CLI (`--set NAME=VALUE`). `default` None means "not set": the profile decides (its help says how).
    `min` / `max` bound numbers (inclusive); `choices` lists a choice option's values."""

    name: str
    type: str  # "int" | "float" | "bool" | "choice"
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = field(default=())
    unit: str = ""

    def valid_range(self) -> str:
        """The values this option accepts, in words (for error messages and forms)."""
        if self.type == "bool":
            text = "true or false"
        elif self.type == "choice":
            text = "one of " + ", ".join(self.choices)
        else:
            low = "-inf" if self.min is None else f"{self.min:g}"
            high = "inf" if self.max is None else f"{self.max:g}"
            text = f"{'an integer' if self.type == 'int' else 'a number'} from {low} to {high}"
            if self.unit:
                text += f" ({self.unit})"
        return text + (", or empty for the profile's choice" if self.default is None else "")


@dataclass(frozen=True)
class Profile:
    """An optimization profile applied after training, with its trade-off in words and its options."""

    key: str
    label: str
    description: str
    options: tuple[ProfileOption, ...] = ()

    def option(self, name: str) -> ProfileOption | None:
        return next((o for o in self.options if o.name == name), None)


# Shared options (the same meaning wherever a profile declares them).
_BUDGET = ProfileOption(
    "budget", "float", None,
    "Accuracy budget: the largest fall of the validation primary metric below the baseline accepted "
    "(absolute). Pruned, slim and compact stop before crossing it; the other profiles record it in the "
    "report. Empty: no limit.", 0.0, 1.0, unit="metric points")


def _steps(default: int) -> ProfileOption:
    return ProfileOption("steps", "int", default, "Gradual stages; the accuracy budget is checked after each.", 1, 10)


_FINETUNE = ProfileOption("finetune_epochs", "int", 1, "Fine-tuning epochs after each stage; 0: none.", 0, 50,
                          unit="epochs")
_FFN = ProfileOption("ffn_fraction", "float", 0.5, "Share of each layer's FFN neurons removed.", 0.0, 0.95,
                     unit="fraction")
_HEADS = ProfileOption("head_fraction", "float", 0.25, "Share of each layer's attention heads removed.", 0.0, 0.95,
                       unit="fraction")
_ENGINE = ProfileOption(
    "engine", "choice", "auto",
    "int8 kernel library the weights are packed for: auto picks fbgemm, plus oneDNN for large batches "
    "where the CPU has AMX-INT8.", choices=("auto", "x86", "fbgemm", "onednn", "qnnpack"))

PROFILES: dict[str, Profile] = {
    p.key: p
    for p in (
        Profile("baseline", "Baseline (fp32)", "Full-precision training and inference; the reference."),
        Profile("mixed-precision", "Mixed precision",
                "Training under bf16/fp16 autocast and bf16 inference: faster where the hardware has "
                "fast half-precision matmuls, usually at no measurable metric cost.",
                (_BUDGET,
                 ProfileOption("retrain", "bool", True, "Retrain a copy under autocast from the same "
                               "initialization; false: only cast the trained weights to bfloat16."))),
        Profile("pruned", "Magnitude pruning",
                "Unstructured magnitude pruning to a target sparsity with fine-tuning: smaller file on "
                "disk, but dense kernels run no faster.",
                (_BUDGET,
                 ProfileOption("sparsity", "float", 0.5, "Target share of zero encoder Linear weights.",
                               0.0, 0.99, unit="fraction"),
                 _steps(3), _FINETUNE)),
        Profile("slim", "Structured slimming",
                "Removes whole attention heads and FFN neurons, then fine-tunes: a physically smaller "
                "model that is faster on any hardware, at some metric cost.",
                (_BUDGET, _FFN, _HEADS, _steps(2), _FINETUNE)),
        Profile("int8", "Dynamic int8",
                "Post-training dynamic int8 quantization of Linear layers: about 4x smaller encoder "
                "weights and faster CPU inference at large batches; can be slower at batch 1.",
                (_BUDGET, _ENGINE)),
        Profile("distilled", "Distilled student",
                "A student one preset smaller trained on the teacher's soft targets: fewer parameters "
                "and faster inference; usually loses a little accuracy.",
                (_BUDGET,
                 ProfileOption("temperature", "float", 2.0, "Softmax temperature of the soft targets.",
                               0.5, 20.0),
                 ProfileOption("alpha", "float", 0.5, "Weight of the soft-target term; the rest goes to the "
                               "task loss.", 0.0, 1.0),
                 ProfileOption("student_preset", "choice", None, "The student's size preset. Empty: one "
                               "preset below the teacher's (a tiny teacher gets half its layers).",
                               choices=tuple(PRESETS)))),
        Profile("compact", "Compact (slim + int8)",
                "Structured slimming followed by int8 quantization: the smallest and fastest CPU model, "
                "with the metric cost of both.",
                (_BUDGET, _FFN, _HEADS, _steps(2), _FINETUNE, _ENGINE)),
    )
}


class ProfileOptionError(ValueError):
    """A profile option that cannot be used: `option` (None when the profile itself is unknown), the
    `value` given, `reason` and the `valid` values in words. str() is one sentence saying all four."""

    def __init__(self, profile: str, option: str | None, value: Any, reason: str, valid: str,
                 message: str | None = None) -> None:
        self.profile, self.option, self.value, self.reason, self.valid = profile, option, value, reason, valid
        where = f"profile {profile!r}" + (f" option {option!r}" if option else "")
        super().__init__(message or f"{where}: {value!r} {reason}; valid: {valid}")


def profile_get(key: str) -> Profile:
    """Return the profile `key`; KeyError listing the valid keys otherwise."""
    try:
        return PROFILES[key]
    except KeyError:
        raise KeyError(f"unknown profile {key!r}; valid profiles: {', '.join(PROFILES)}") from None


def profile_option_defaults(profile: str) -> dict[str, Any]:
    """Every option of `profile` with its default (None: the profile decides)."""
    return {o.name: o.default for o in profile_get(profile).options}


def profiles_with_option(name: str) -> list[str]:
    """The keys of the profiles that declare option `name`, in catalog order."""
    return [p.key for p in PROFILES.values() if p.option(name) is not None]


def _option_coerce(profile: str, o: ProfileOption, value: Any) -> Any:
    """`value` (a form / CLI string or a JSON value) as the option's type; ProfileOptionError otherwise."""
    def fail(reason: str) -> ProfileOptionError:
        return ProfileOptionError(profile, o.name, value, reason, o.valid_range())

    if value is None or (isinstance(value, str) and value.strip() == ""):
        if o.default is None:
            return None
        raise fail("is empty")
    if o.type == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.strip().lower() in ("true", "1", "yes")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise fail("is not true or false")
    if o.type == "choice":
        text = value.strip() if isinstance(value, str) else value
        if text not in o.choices:
            raise fail("is not one of the choices")
        return text
    if isinstance(value, bool) or not isinstance(value, (str, numbers.Real)):
        raise fail("is not a number")
    try:
        number = float(value)
    except ValueError:
        raise fail("is not a number") from None
    if not math.isfinite(number):
        raise fail("is not finite")
    if o.type == "int":
        if number != int(number):
            raise fail("is not an integer")
        number = int(number)
    if o.min is not None and number < o.min:
        raise fail(f"is below the minimum {o.min:g}")
    if o.max is not None and number > o.max:
        raise fail(f"is above the maximum {o.max:g}")
    return number


def profile_options_resolve(profile: str, raw: dict[str, Any] | None) -> dict[str, Any]:
    """Validate `raw` (strings from a form or the CLI, or JSON values from the API) against the
    options `profile` declares; return every option typed, defaults filled in.

    Raises ProfileOptionError naming the option, the value, why and the valid values: for an unknown
    profile, an option the profile does not declare (saying which profiles do), a wrong type or a
    value out of bounds.
    """
    if profile not in PROFILES:
        raise ProfileOptionError(profile, None, profile, "is not a profile", ", ".join(PROFILES),
                                 message=f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    declared = PROFILES[profile].options
    values = {o.name: o.default for o in declared}
    for name, value in (raw or {}).items():
        o = PROFILES[profile].option(name)
        if o is None:
            others = profiles_with_option(name)
            valid = ", ".join(o.name for o in declared) or "none"
            reason = "is not an option of this profile" + (f" (profiles with it: {', '.join(others)})" if others else "")
            raise ProfileOptionError(profile, name, value, reason, valid,
                                     message=f"profile {profile!r} has no option {name!r}"
                                             + (f" (profiles with it: {', '.join(others)})" if others else "")
                                             + f"; its options: {valid}")
        values[name] = _option_coerce(profile, o, value)
    return values


# --------------------------------------------------------------------------------------------------
# Hyperparameters a job or the CLI may override.


@dataclass(frozen=True)
class HyperParameter:
    """One tunable setting: its type, default, bounds and help text."""

    name: str
    type: str  # "int" | "float" | "bool" | "str"
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = field(default=())


HYPERPARAMETERS: dict[str, HyperParameter] = {
    h.name: h
    for h in (
        HyperParameter("epochs", "int", 20, "Maximum number of passes over the training set.", 1, 1000),
        HyperParameter("batch_size", "int", 32, "Records per optimization step.", 1, 4096),
        HyperParameter("lr", "float", 1e-3, "Peak AdamW learning rate (after warmup).", 1e-7, 1.0),
        HyperParameter("weight_decay", "float", 0.01, "AdamW decoupled weight decay.", 0.0, 1.0),
        HyperParameter("warmup_frac", "float", 0.1, "Fraction of steps with linear warmup before cosine decay.", 0.0, 0.5),
        HyperParameter("dropout", "float", 0.1, "Dropout in the encoder and head.", 0.0, 0.9),
        HyperParameter("patience", "int", 5, "Epochs without validation improvement before stopping; 0 disables early stopping.", 0, 1000),
        # The average of the k best epochs' weights (mlcore/trainer.py); measured against the single
        # best epoch on every real demo set in bench/README.md, "Quality".
        HyperParameter("average_best", "int", 5, "Final weights: the average of this many best validation epochs' weights; 1 = the single best epoch.", 1, 50),
        HyperParameter("seed", "int", 0, "Random seed for initialization, splits and batching.", 0, 2**31 - 1),
        HyperParameter("max_len", "int", 512, "Longest record in tokens or elements; longer ones are rejected.", 4, 16384),
        HyperParameter("grad_clip", "float", 1.0, "Gradient norm clipping threshold; 0 disables.", 0.0, 1000.0),
        HyperParameter("precision", "str", "fp32", "Training precision.", choices=("fp32", "bf16", "fp16", "auto")),
        HyperParameter("val_frac", "float", 0.1, "Fraction of the data held out for validation.", 0.0, 0.5),
        HyperParameter("test_frac", "float", 0.1, "Fraction held out for testing when no test file or split column is given.", 0.0, 0.5),
        HyperParameter("augment", "bool", False, "Augmentation: reverse complements (DNA) or randomized SMILES (molecules).", None, None),
        # k-mer ids let a small model see motifs at once: on a planted 8-mer task a tiny model reaches
        # test ROC-AUC 1.0 in 8 epochs with k=4, about 0.6 with single bases only.
        HyperParameter("kmer", "int", 4, "DNA: also embed the overlapping k-mer starting at each base; 1 = single bases only.", 1, 6),
        # The [FP] token beside the SMILES (mlcore/modalities/smiles.py); measured against a fingerprint
        # random forest in bench/README.md, "Quality".
        HyperParameter("fingerprint", "bool", True, "Molecules: add one [FP] token beside the SMILES tokens, built from the Morgan count fingerprint (radius 2, 2048 bits) and ten standardized RDKit descriptors.", None, None),
        HyperParameter("class_weights", "bool", False, "Weight the classification loss by inverse class frequency.", None, None),
    )
}


def hyperparameter_defaults(preset: str | None = None) -> dict[str, Any]:
    """Every hyperparameter's default, with the preset's training defaults and dropout applied."""
    values = {name: h.default for name, h in HYPERPARAMETERS.items()}
    if preset is not None:
        if preset not in PRESETS:
            raise KeyError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
        values.update(PRESET_TRAINING[preset])
        values["dropout"] = PRESETS[preset]["dropout"]
    return values


def _coerce(h: HyperParameter, value: Any) -> Any:
    """Convert `value` to the parameter's type; ValueError naming the field when impossible."""
    if h.type == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.strip().lower() in ("true", "1", "yes")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError(f"hyperparameter {h.name!r}: expected true/false, got {value!r}")
    if h.type == "str":
        if not isinstance(value, str) or (h.choices and value not in h.choices):
            raise ValueError(f"hyperparameter {h.name!r}: expected one of {', '.join(h.choices)}, got {value!r}")
        return value
    # Numbers: bools are ints in Python but never a sensible epoch count or learning rate.
    if isinstance(value, bool):
        raise ValueError(f"hyperparameter {h.name!r}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"hyperparameter {h.name!r}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"hyperparameter {h.name!r}: must be finite, got {value!r}")
    if h.type == "int":
        if number != int(number):
            raise ValueError(f"hyperparameter {h.name!r}: expected an integer, got {value!r}")
        number = int(number)
    if h.min is not None and number < h.min:
        raise ValueError(f"hyperparameter {h.name!r}: {value!r} is below the minimum {h.min:g}")
    if h.max is not None and number > h.max:
        raise ValueError(f"hyperparameter {h.name!r}: {value!r} is above the maximum {h.max:g}")
    return number


def hyperparameters_validate(overrides: dict[str, Any], *, preset: str | None = None) -> dict[str, Any]:
    """Validate `overrides` and return the complete resolved set (defaults for `preset` + overrides).

    Raises ValueError naming the offending field for an unknown name, a wrong type or a value out of
    bounds. The result is what a job freezes into its config snapshot.
    """
    values = hyperparameter_defaults(preset)
    for name, value in overrides.items():
        if name not in HYPERPARAMETERS:
            raise ValueError(f"unknown hyperparameter {name!r}; valid: {', '.join(HYPERPARAMETERS)}")
        values[name] = _coerce(HYPERPARAMETERS[name], value)
    return values
