"""Choosing the number of clusters: fit each k, score by silhouette on a
capped sample (its distances computed once for every k), keep inertia for
the elbow curve, return the best fit."""

import numpy as np

from .quality import pairwise_distances, sample_indices, silhouette


def sweep(method, Z, params, random_state, rng, progress=None):
    """Fits ``method`` for k in [k_min, k_max]; returns ``(best_fit, table)``."""
    k_max = min(params["k_max"], len(Z) - 1)
    ks = list(range(min(params["k_min"], k_max), k_max + 1))
    idx = sample_indices(len(Z), rng)
    distances = pairwise_distances(Z[idx])
    table, best, best_score = [], None, -np.inf
    for i, k in enumerate(ks):
        fit = method.fit(Z, dict(params, n_clusters=k), random_state)
        labels = fit.labels[idx]
        found = len(np.unique(labels))
        score = (
            silhouette(distances, labels)
            if 1 < found < len(idx) else None
        )
        table.append(dict(k=k, silhouette=score, inertia=fit.inertia))
        if score is not None and score > best_score:
            best, best_score = fit, score
            best.params = {**params, **fit.params, "n_clusters": k}
        if progress:
            progress((i + 1) / len(ks), f"k={k}")
    if best is None:
        best = fit
        best.params = {**params, **fit.params, "n_clusters": ks[-1]}
    return best, table
