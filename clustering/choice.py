"""Choosing the feature preparation by measuring, where ``auto`` leaves a
choice (see ``features.candidates``).

Each candidate preparation is tried on a subsample with the run's own
method, and scored by how well the clusters it finds keep each sample's
nearest neighbours (in the candidate's input space, normalised or raw) in
the sample's own cluster, adjusted for chance. UMAP that only cuts a
continuum into arbitrary pieces scores low there, and so does a
normalisation that throws away what tells samples apart (the brightness of
photograph patches). A candidate that transforms more (normalising, then
UMAP) must score MARGIN above the simplest candidate within reach of the
best: close scores are within the noise of UMAP's seed, and there the raw
vectors are what the user gave. The scores are recorded in the run's
preparation, with the choice. Vectors already of unit length (as most
embedding models return them) are the same normalised or not: only the
normalised candidates are measured, and the choice says so.
"""

import numpy as np

from . import features

SAMPLE = 5000
NEIGHBOURS = 10
MARGIN = 0.02
# Rows whose squared length is this close to 1 are already normalised.
UNIT_TOLERANCE = 1e-3
UNIT_LENGTH = "the vectors are already of unit length, so normalising them changes nothing"


def choose(settings, method, X, params, random_state):
    """The resolved preparation for ``X``: ``settings`` resolved, or, when
    several candidates are open, the best measured (with ``choice``)."""
    n, dim = X.shape
    options = features.candidates(settings, method, n, dim)
    unit = len({o["normalize"] for o in options}) > 1 and _unit_length(X)
    if unit:
        options = [o for o in options if o["normalize"]]
    if len(options) == 1:
        resolved = features.resolve(options[0], method, n, dim)
        return dict(resolved, choice=dict(why=UNIT_LENGTH)) if unit else resolved
    rng = np.random.default_rng(random_state)
    rows = np.sort(rng.choice(n, SAMPLE, replace=False)) if n > SAMPLE else np.arange(n)
    sample = X[rows]
    neighbours = {}
    measured = []
    for option in options:
        resolved = features.resolve(option, method, len(sample), dim)
        space = option["normalize"]
        if space not in neighbours:
            neighbours[space] = _neighbours(sample, space)
        labels = _labels(method, features.prepare(sample.copy(), resolved, random_state),
                         params, len(sample), random_state)
        measured.append(dict(normalize=option["normalize"], reduce=option["reduce"],
                             neighbour_agreement=round(agreement(labels, neighbours[space]), 4)))
    top = max(m["neighbour_agreement"] for m in measured)
    best = min((m for m in measured if m["neighbour_agreement"] >= top - MARGIN),
               key=lambda m: (m["reduce"] != "none", m["normalize"]))
    chosen = dict(settings, normalize=best["normalize"], reduce=best["reduce"])
    return dict(features.resolve(chosen, method, n, dim), choice=dict(
        candidates=measured, sample=len(sample),
        why=f"the simplest candidate within {MARGIN} of the highest neighbour "
            "agreement (how often a sample's nearest neighbours share its cluster)"
            + (f"; {UNIT_LENGTH}" if unit else "")))


def _unit_length(X):
    """Whether every row of ``X`` is of unit length (within float noise)."""
    return bool(np.abs(np.einsum("ij,ij->i", X, X) - 1).max() <= UNIT_TOLERANCE)


def _neighbours(X, normalize):
    from .neighbours import nearest

    Z = features.l2_normalize(X.copy()) if normalize else X
    return nearest(Z, NEIGHBOURS + 1)[0][:, 1:]


def _labels(method, Z, params, n, random_state):
    """The method's labels for the candidate (k at the sweep's middle when
    the run chooses k itself: any fair k compares the preparations)."""
    params = dict(params)
    if method.needs_k and params.get("n_clusters") is None:
        params["n_clusters"] = int(round(np.sqrt(params["k_min"] * params["k_max"])))
    if method.needs_k:
        params["n_clusters"] = min(params["n_clusters"], n - 1)
    return method.fit(Z, params, random_state).labels


def agreement(labels, neighbours):
    """How often a sample's nearest neighbours share its cluster, adjusted
    for chance (0: no better than random labels of these sizes, 1: always);
    0 for a single cluster. Noise shares no cluster, so all-noise scores 0."""
    labels = np.asarray(labels)
    same = float(((labels[neighbours] == labels[:, None]) & (labels[:, None] >= 0)).mean())
    sizes = np.bincount(labels[labels >= 0]) / len(labels)
    chance = float((sizes ** 2).sum())
    return 0.0 if chance >= 0.999 else (same - chance) / (1 - chance)
