"""The embedding explorer's data: PCA / t-SNE projections and k-means clusters chosen by silhouette."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlcore.explain import projection_arrays, projection_write, record_preview


def _blobs(centres: int, per: int, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 20, size=(centres, dim))
    x = np.concatenate([means[c] + rng.normal(0, 0.5, size=(per, dim)) for c in range(centres)])
    return x.astype(np.float32), np.repeat(np.arange(centres), per)


def test_k_is_the_number_of_well_separated_clusters_and_clusters_match_them() -> None:
    x, truth = _blobs(4, 30)
    out = projection_arrays(x, seed=0)
    assert int(out["k"]) == 4
    assert out["silhouette_k"].tolist() == list(range(2, 11))
    assert int(out["silhouette_k"][out["silhouette"].argmax()]) == 4
    # Each true blob is exactly one cluster (labels up to renaming).
    pairs = {(int(t), int(c)) for t, c in zip(truth, out["cluster"])}
    assert len(pairs) == 4 and len({c for _, c in pairs}) == 4
    assert out["pca"].shape == (120, 2) and out["tsne"].shape == (120, 2)
    assert out["tsne_index"].tolist() == list(range(120))


def test_pca_matches_the_hand_computed_projection() -> None:
    # Points on a line along (1, 1, 0): the first component carries all the variance.
    t = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
    x = np.stack([t, t, np.zeros_like(t)], axis=1)
    out = projection_arrays(x, seed=0)
    expected = (t - t.mean()) * np.sqrt(2)
    assert np.allclose(np.abs(out["pca"][:, 0]), np.abs(expected), atol=1e-5)
    assert np.allclose(out["pca"][:, 1], 0, atol=1e-5)
    assert np.isclose(out["pca_variance"][0], 1.0, atol=1e-6)


def test_tsne_is_bounded_to_a_seeded_subsample(tmp_path: Path) -> None:
    x, _ = _blobs(3, 100)
    out = projection_arrays(x, seed=1, tsne_max=120)
    assert out["tsne"].shape == (120, 2) and len(np.unique(out["tsne_index"])) == 120
    assert np.all(np.diff(out["tsne_index"]) > 0) and out["tsne_index"].max() < 300
    again = projection_arrays(x, seed=1, tsne_max=120)
    assert np.array_equal(out["tsne_index"], again["tsne_index"])
    meta = projection_write(tmp_path / "projection.npz", x, seed=1, tsne_max=120)
    assert meta["tsne_subsampled"] is True and meta["tsne_n"] == 120 and meta["n"] == 300 and meta["k"] == 3
    with np.load(tmp_path / "projection.npz") as npz:
        assert npz["pca"].shape == (300, 2) and npz["cluster"].shape == (300,)


def test_tiny_or_degenerate_sets_get_one_cluster_and_no_tsne() -> None:
    out = projection_arrays(np.ones((4, 8)), seed=0)
    assert int(out["k"]) == 1 and out["cluster"].tolist() == [0, 0, 0, 0]
    assert out["tsne"].shape == (0, 2) and len(out["silhouette_k"]) == 0
    one = projection_arrays(np.zeros((1, 8)), seed=0)
    assert one["pca"].shape == (1, 2) and int(one["k"]) == 1


def test_record_previews_for_hover_labels() -> None:
    assert record_preview("ACGT") == "ACGT"
    assert record_preview("A" * 100, limit=10) == "A" * 9 + "…"
    assert record_preview({"x1": "0.5", "site": "b"}) == "x1=0.5, site=b"
    assert record_preview({"pt": np.ones(12), "eta": np.zeros(12)}) == "12 rows (pt, eta)"
