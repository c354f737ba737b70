"""The plugin's k-means (clustering/lloyd.py) against scikit-learn: the same
objective, at least as low, from any seed; labels that are exactly the
nearest centres; scikit-learn's meaning of n_init and init."""

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from conftest import REPO, plugin_module

lloyd = plugin_module("clustering.lloyd")


def blobs(n, d, k, seed):
    import sys

    sys.path.insert(0, REPO)
    from bench.data import blobs as make

    return make(n, d, k, seed=seed)


@pytest.fixture(scope="module")
def data():
    return blobs(12_000, 64, 30, seed=4)


@pytest.mark.parametrize("refined", [False, True], ids=["whole", "refined-on-subsample"])
@pytest.mark.parametrize("seed", range(5))
def test_every_seed_finds_the_blobs(data, seed, refined, monkeypatch):
    X, y = data
    if refined:  # the path of large data: the start refined on a subsample first
        monkeypatch.setattr(lloyd, "REFINE_PER_CLUSTER", 100)
    labels, centres, inertia, n_iter = lloyd.kmeans(X, 30, random_state=seed)
    assert adjusted_rand_score(y, labels) >= 0.97
    best = KMeans(30, n_init=10, random_state=seed).fit(X)
    assert inertia <= best.inertia_ * 1.001  # as low as scikit-learn's best of 10 runs
    assert 0 < n_iter < 300


def test_labels_are_the_nearest_centres_and_inertia_is_theirs(data):
    X, _ = data
    from sklearn.metrics import pairwise_distances_argmin_min

    labels, centres, inertia, _ = lloyd.kmeans(X, 30, random_state=0)
    nearest, dist = pairwise_distances_argmin_min(X, centres)
    assert (nearest == labels).mean() > 0.9999  # float32 ties aside
    assert inertia == pytest.approx(float((dist.astype(np.float64) ** 2).sum()), rel=1e-4)
    # each centre is its members' mean (the fixed point Lloyd reaches)
    for c in range(30):
        np.testing.assert_allclose(centres[c], X[labels == c].mean(axis=0), atol=2e-4)


def test_lloyd_and_swaps_on_rows_of_x_are_those_on_their_copy(data):
    """The subsample a start is refined on stays rows of X (no copy): the
    iterations, an emptied cluster's relocation and the swaps must pick the
    same rows as on a copy of them."""
    X, _ = data
    x_sq = np.einsum("ij,ij->i", X, X)
    lloyd._work.products = 0  # the count kmeans() keeps
    rows = np.sort(np.random.default_rng(0).choice(len(X), 3000, replace=False))
    # the last centre is nearest to no sample: emptied, then given a sample
    start = np.vstack([X[rows[:29]], np.full((1, X.shape[1]), 100, np.float32)])
    copy = lloyd._lloyd(X[rows], x_sq[rows], start, 300, 0.0)
    kept = lloyd._lloyd(X, x_sq, start, 300, 0.0, rows)
    np.testing.assert_array_equal(kept[0], copy[0])
    np.testing.assert_allclose(kept[1], copy[1], rtol=1e-6)
    assert np.abs(kept[1]).max() < 10  # the far centre was relocated onto the data
    swapped = lloyd._swaps(X[rows], x_sq[rows], copy, 300, 0.0, np.random.default_rng(1))
    kept = lloyd._swaps(X, x_sq, kept, 300, 0.0, np.random.default_rng(1), rows)
    np.testing.assert_array_equal(kept[0], swapped[0])
    assert kept[2] == pytest.approx(swapped[2], rel=1e-9)


def test_integer_n_init_keeps_the_best_of_full_runs_and_random_init_works(data):
    X, y = data
    one = lloyd.kmeans(X, 30, n_init=1, random_state=1)
    three = lloyd.kmeans(X, 30, n_init=3, random_state=1)
    assert three[2] <= one[2]
    rand = lloyd.kmeans(X, 30, init="random", n_init=2, random_state=1)
    assert adjusted_rand_score(y, rand[0]) > 0.8


def test_more_clusters_than_groups_and_duplicates():
    X = np.repeat(np.eye(4, 16, dtype=np.float32), 50, axis=0)  # 4 distinct rows
    labels, centres, inertia, _ = lloyd.kmeans(X, 6, random_state=0)
    assert inertia == pytest.approx(0.0, abs=1e-6)
    assert len(np.unique(labels)) == 4  # the data has 4 distinct vectors
    small = np.random.default_rng(0).normal(size=(12, 5)).astype(np.float32)
    labels, _, _, _ = lloyd.kmeans(small, 3, random_state=0)
    assert len(labels) == 12 and set(labels) <= {0, 1, 2}
