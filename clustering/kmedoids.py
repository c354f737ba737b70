"""K-medoids by alternation (Park and Jun, 2009) in memory linear in N.

Library k-medoids (scikit-learn-extra, kmedoids) builds the full N x N
distance matrix; this keeps only N x k distances, so it scales with the rest
of the plugin. Each cluster's medoid is the member with the smallest summed
distance to the others. With cosine distance on unit vectors that is exactly the member
nearest the mean; with euclidean distance, for large clusters, the
candidates are the members nearest the mean and the sum is taken over a
random subset.
"""

import numpy as np

_ALL_CANDIDATES = 500
_CANDIDATES = 64
_EVAL_SAMPLE = 5000


def kmedoids(X, n_clusters, metric="cosine", max_iter=300, random_state=None):
    """Returns ``(labels, medoid_indices, inertia)`` for ``X``."""
    from sklearn.metrics import pairwise_distances_argmin_min
    from sklearn.preprocessing import normalize

    rng = np.random.default_rng(random_state)
    if metric == "cosine":
        X = normalize(X)
    medoids = _seed(X, n_clusters, rng)

    def assign(medoids):
        labels, dists = pairwise_distances_argmin_min(X, X[medoids])
        if metric == "cosine":
            dists = dists ** 2 / 2
        return labels, dists

    labels, dists = assign(medoids)
    for _ in range(max_iter):
        updated = medoids.copy()
        for c in range(n_clusters):
            members = np.flatnonzero(labels == c)
            if len(members):
                updated[c] = (
                    _nearest_mean(X, members) if metric == "cosine"
                    else _medoid(X, members, medoids[c], rng)
                )
        if np.array_equal(updated, medoids):
            break
        medoids = updated
        labels, dists = assign(medoids)
    return labels, medoids, float(dists.sum())


def _seed(X, k, rng):
    """k-medoids++: each next medoid drawn with probability ~ squared distance."""
    medoids = [int(rng.integers(len(X)))]
    closest = ((X - X[medoids[0]]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:
            pick = int(rng.choice(np.setdiff1d(np.arange(len(X)), medoids)))
        else:
            pick = int(rng.choice(len(X), p=closest / total))
        medoids.append(pick)
        closest = np.minimum(closest, ((X - X[pick]) ** 2).sum(axis=1))
    return np.array(medoids)


def _nearest_mean(X, members):
    points = X[members]
    return int(members[np.argmin(((points - points.mean(axis=0)) ** 2).sum(axis=1))])


def _medoid(X, members, current, rng):
    from sklearn.metrics import pairwise_distances

    points = X[members]
    if len(members) <= _ALL_CANDIDATES:
        candidates = members
    else:
        near_mean = np.argsort(((points - points.mean(axis=0)) ** 2).sum(axis=1))
        candidates = np.union1d(members[near_mean[:_CANDIDATES]], [current])
    if len(members) > _EVAL_SAMPLE:
        points = X[rng.choice(members, _EVAL_SAMPLE, replace=False)]
    cost = pairwise_distances(X[candidates], points).sum(axis=1)
    return int(candidates[np.argmin(cost)])
