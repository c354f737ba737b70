"""Choosing the number of clusters: fit each k on a part of the samples,
score it by silhouette on a capped sample of that part (its distances
computed once for every k), keep inertia for the elbow curve, then fit the
chosen k on every sample. Which k separates the data best shows on a part
as well as on all: above SAMPLE samples, the sweep costs one fit, not one
per k."""

import numpy as np

from .quality import pairwise_distances, sample_indices, silhouette

# The sweep fits each k on at most this many samples (200 per cluster at
# the largest k a sweep may try).
SAMPLE = 20_000


def sweep(method, Z, params, random_state, rng, progress=None):
    """Fits ``method`` for k in [k_min, k_max]; returns ``(best_fit, table)``:
    the chosen k's fit of every row of ``Z``, and per k its silhouette and
    inertia (of the part, scaled to all rows)."""
    k_max = min(params["k_max"], len(Z) - 1)
    ks = list(range(min(params["k_min"], k_max), k_max + 1))
    part = sample_indices(len(Z), rng, SAMPLE)
    whole = len(part) == len(Z)
    Zp = Z if whole else Z[part]
    idx = sample_indices(len(Zp), rng)
    distances = pairwise_distances(Zp[idx])
    steps = len(ks) + (0 if whole else 1)
    table, best, best_score = [], None, -np.inf
    for i, k in enumerate(ks):
        fit = method.fit(Zp, dict(params, n_clusters=k), random_state)
        labels = fit.labels[idx]
        found = len(np.unique(labels))
        score = silhouette(distances, labels) if 1 < found < len(idx) else None
        inertia = None if fit.inertia is None else fit.inertia * len(Z) / len(Zp)
        table.append(dict(k=k, silhouette=score, inertia=inertia))
        if score is not None and score > best_score:
            best, best_score = _recorded(fit, params, k), score
        if progress:
            progress((i + 1) / steps, f"k={k}")
    if best is None:
        best = _recorded(fit, params, ks[-1])
    if not whole:
        k = best.params["n_clusters"]
        best = _recorded(method.fit(Z, best.params, random_state), best.params, k)
        if progress:
            progress(1.0, f"k={k} on every sample")
    return best, table


def _recorded(fit, params, k):
    """``fit`` with the parameters that made it: the request's, the
    method's own resolutions, and k."""
    fit.params = {**params, **fit.params, "n_clusters": k}
    return fit
