"""mlcore/metrics.py against scikit-learn and scipy on random data (ties included) and edge cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit, softmax
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from mlcore import metrics as M
from mlcore.metrics import compute_metrics

SEEDS = range(5)


def _tied(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # Scores on a coarse grid so many of them tie.
    return np.round(rng.normal(size=shape), 1)


@pytest.mark.parametrize("seed", SEEDS)
def test_binary_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    logit = _tied(rng, (200,)) + 0.8 * y
    got = compute_metrics("binary", y, logit)
    prob = expit(logit)
    pred = (prob >= 0.5).astype(int)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert got["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert got["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, logit))
    assert got["pr_auc"] == pytest.approx(skm.average_precision_score(y, logit))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, prob))
    # The same numbers from two-column class logits.
    two = compute_metrics("binary", y, np.stack([np.zeros_like(logit), logit], axis=1))
    assert two == pytest.approx(got)


@pytest.mark.parametrize("seed", SEEDS)
def test_multiclass_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_classes = 4
    y = rng.integers(0, n_classes, 300)
    logits = _tied(rng, (300, n_classes))
    logits[np.arange(300), y] += 0.7
    # Scores on a grid, normalized: ties within a class column, identical input to both sides.
    proba = softmax(logits, axis=1)
    got = compute_metrics("multiclass", y, proba, from_logits=False)
    pred = proba.argmax(1)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert got["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert got["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    assert got["pr_auc"] == pytest.approx(
        skm.average_precision_score(label_binarize(y, classes=range(n_classes)), proba, average="macro"))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=range(n_classes)))
    assert M.confusion_matrix(y, pred, n_classes) == skm.confusion_matrix(y, pred, labels=range(n_classes)).tolist()
    # From logits: the argmax of the logits themselves (first class wins a tie, as numpy does).
    from_logits = compute_metrics("multiclass", y, logits)
    assert from_logits["accuracy"] == pytest.approx(skm.accuracy_score(y, logits.argmax(1)))
    assert from_logits["mcc"] == pytest.approx(skm.matthews_corrcoef(y, logits.argmax(1)))
    assert from_logits["log_loss"] == pytest.approx(got["log_loss"])
    # Softmax can split mathematically equal probabilities by an ulp; AUCs agree up to such ties.
    assert from_logits["roc_auc"] == pytest.approx(got["roc_auc"], abs=1e-3)


def test_classification_edge_cases() -> None:
    y = np.ones(10, dtype=int)
    got = compute_metrics("binary", y, np.linspace(-1, 1, 10))
    assert np.isnan(got["roc_auc"]) and got["accuracy"] == 0.5 and got["mcc"] == 0.0
    assert compute_metrics("binary", np.zeros(6, int), np.zeros(6))["pr_auc"] != compute_metrics(
        "binary", np.zeros(6, int), np.zeros(6))["pr_auc"]  # NaN: no positive
    # Constant predictions: MCC undefined → 0 like sklearn, AUC 0.5 (all tied).
    y = np.array([0, 1, 0, 1, 1])
    got = compute_metrics("binary", y, np.full(5, 2.0))
    assert got["mcc"] == skm.matthews_corrcoef(y, np.ones(5, int)) == 0.0 and got["roc_auc"] == 0.5
    # A class absent from y_true is skipped by one-vs-rest AUC (class 0: 1.0, class 1: 0.75), not a crash.
    y3 = np.array([0, 1, 0, 1])
    logits = np.array([[2.0, 0, 0], [0, 2, 0], [1, 0, 0], [0, 1, 3]])
    got = compute_metrics("multiclass", y3, logits)
    assert got["roc_auc"] == pytest.approx(0.875) and got["accuracy"] == 0.75
    assert np.isfinite(compute_metrics("binary", np.array([0, 1]), np.array([-800.0, 800.0]))["log_loss"])


@pytest.mark.parametrize("seed", SEEDS)
def test_regression_matches_sklearn_and_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = np.round(rng.normal(size=150), 1)  # ties in both sides for Spearman
    pred = np.round(y + rng.normal(scale=0.5, size=150), 1)
    got = compute_metrics("regression", y[:, None], pred[:, None])
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert got["spearman"] == pytest.approx(stats.spearmanr(y, pred).statistic)
    assert got["pearson"] == pytest.approx(stats.pearsonr(y, pred).statistic)
    np.testing.assert_allclose(M.rankdata(y), stats.rankdata(y))


def test_multi_regression_ignores_missing_targets() -> None:
    rng = np.random.default_rng(7)
    y = rng.normal(size=(80, 3))
    pred = y + rng.normal(scale=0.3, size=(80, 3))
    y[rng.random((80, 3)) < 0.25] = np.nan
    got = compute_metrics("multi_regression", list(y), list(pred))  # lists, as the trainer passes them
    for k in range(3):
        keep = ~np.isnan(y[:, k])
        assert got[f"rmse_t{k}"] == pytest.approx(np.sqrt(skm.mean_squared_error(y[keep, k], pred[keep, k])))
        assert got[f"r2_t{k}"] == pytest.approx(skm.r2_score(y[keep, k], pred[keep, k]))
        assert got[f"spearman_t{k}"] == pytest.approx(stats.spearmanr(y[keep, k], pred[keep, k]).statistic)
    for name in ("rmse", "mae", "r2", "spearman", "pearson"):
        assert got[name] == pytest.approx(np.mean([got[f"{name}_t{k}"] for k in range(3)]))


def test_regression_edge_cases() -> None:
    got = compute_metrics("regression", np.arange(5.0), np.full(5, 3.0))  # constant predictions
    assert np.isnan(got["pearson"]) and np.isnan(got["spearman"]) and got["mae"] == pytest.approx(1.4)
    got = compute_metrics("regression", np.full(4, 2.0), np.arange(4.0))  # constant targets
    assert np.isnan(got["r2"]) and np.isnan(got["pearson"])
    # A target never measured: its metrics are NaN, the means come from the others.
    y = np.array([[1.0, np.nan], [2.0, np.nan], [3.0, np.nan]])
    got = compute_metrics("multi_regression", y, np.array([[1.0, 0], [2.0, 0], [3.5, 0]]))
    assert np.isnan(got["rmse_t1"]) and got["rmse"] == got["rmse_t0"] and got["r2"] == got["r2_t0"]


def test_token_accuracy_ignores_padding() -> None:
    rng = np.random.default_rng(3)
    labels = [rng.integers(0, 3, n) for n in (5, 9, 2)]
    labels[1][:3] = -100
    logits = [rng.normal(size=(len(lab), 3)) for lab in labels]
    got = compute_metrics("token_labels", labels, logits)
    flat_y, flat_p = np.concatenate(labels), np.concatenate([lo.argmax(1) for lo in logits])
    keep = flat_y != -100
    assert got["token_accuracy"] == pytest.approx(skm.accuracy_score(flat_y[keep], flat_p[keep]))
    assert got["token_macro_f1"] == pytest.approx(skm.f1_score(flat_y[keep], flat_p[keep], average="macro"))
    # Padded arrays give the same result as ragged lists.
    padded_y = np.full((3, 9), -100)
    padded_lo = np.zeros((3, 9, 3))
    for i, (lab, lo) in enumerate(zip(labels, logits)):
        padded_y[i, : len(lab)], padded_lo[i, : len(lab)] = lab, lo
    assert compute_metrics("token_labels", padded_y, padded_lo) == pytest.approx(got)
    assert np.isnan(M.token_accuracy(np.full(4, -100), np.zeros(4)))


def test_no_warnings_and_unknown_kind() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy divide/invalid warnings would leak into job logs
        compute_metrics("regression", np.full(3, 1.0), np.full(3, 1.0))
        compute_metrics("binary", np.ones(3, int), np.zeros(3))
    with pytest.raises(ValueError, match="unknown target kind"):
        compute_metrics("ranking", [1], [1])


def test_metrics_import_neither_sklearn_nor_scipy_nor_torch() -> None:
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, mlcore.metrics; print(sorted({'sklearn', 'scipy', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"
