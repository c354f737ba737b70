"""Each sample's nearest neighbours: the graph UMAP embeds, and where a
sample left out of an embedding is placed.

faiss computes them: exactly (one matrix product per block) up to
EXACT_MAX samples, and above it with an inverted file (the samples split
into about sqrt(N) cells by k-means, each query searching the NPROBE cells
nearest it), which finds 99.8% of the exact 50 neighbours of 100k blobs in
a few seconds and a million in under a minute. UMAP's own search
(pynndescent) is compiled by numba anew in every process, about 30 s that
no cache can keep: a notebook kernel restart or a delegated launch paid it
each time.
"""

import numpy as np
from threadpoolctl import threadpool_limits

from .cores import rows_per_block

EXACT_MAX = 20_000
NPROBE = 8
# Placement: the embedded neighbours a row is placed among, and the
# dimension placement searches in (wider rows go through PCA).
PLACE_NEIGHBOURS = 5
PLACE_DIM = 50


def nearest(X, k):
    """``(indices, distances)``: each row's ``k`` nearest rows of ``X``
    (Euclidean), the row itself first at distance 0."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    squared, indices = _index(X).search(X, k)
    distances = np.sqrt(np.maximum(squared, 0))
    _self_first(indices, distances)
    return indices, distances


def _index(X):
    """A faiss index holding the rows of ``X``: exact up to EXACT_MAX rows,
    an inverted file of about sqrt(N) cells above."""
    import faiss

    n, d = X.shape
    if n <= EXACT_MAX:
        index = faiss.IndexFlatL2(d)
    else:
        cells = int(np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, cells)
        train = np.random.default_rng(0).choice(n, min(n, 50 * cells), replace=False)
        index.train(X[np.sort(train)])
        index.nprobe = NPROBE
    index.add(X)
    return index


def embed_subset(X, limit, embed, random_state=None, rows=None, threads=None):
    """``(points, rows embedded)``: ``embed(rows)`` of at most ``limit``
    rows of ``X`` (of its rows ``rows``, when given) drawn at random, and
    every other row placed at the inverse-distance weighted mean of the
    points of its PLACE_NEIGHBOURS nearest embedded rows (searched in at
    most PLACE_DIM principal components). An embedding's cost grows with
    the rows it embeds; placing costs one neighbour search (of every row:
    the embedded ones then take their own points). ``rows`` spares a copy
    of a part of ``X``: the rows are read a batch at a time.
    ``embed`` may return a pending result (with ``result()``), computed
    elsewhere while the search runs here; ``threads`` limits the search's
    threads (the library's default when None)."""
    whole = rows is None
    rows = np.arange(len(X)) if whole else np.asarray(rows)
    n, dim = len(rows), X.shape[1]
    if n <= limit:
        return _resolved(embed(X if n == len(X) else X[rows])), n
    picked = np.sort(np.random.default_rng(random_state).choice(n, limit, replace=False))
    embedding = embed(X[rows[picked]])
    batch = rows_per_block(dim, X.itemsize)  # queries per search
    with threadpool_limits(threads):
        project = _projection(X[rows[picked]], dim, random_state)
        index = _index(project(X[rows[picked]]))
        searched = [index.search(project(X[start:start + batch] if whole else
                                         X[rows[start:start + batch]]),
                                 min(PLACE_NEIGHBOURS, limit))
                    for start in range(0, n, batch)]
    embedded = _resolved(embedding)
    points = np.empty((n, embedded.shape[1]), dtype=np.float32)
    for start, (squared, found) in zip(range(0, n, batch), searched):
        weights = 1.0 / (np.sqrt(np.maximum(squared, 0)) + 1e-6)
        placed = np.einsum("qk,qkd->qd", weights, embedded[found])
        points[start:start + batch] = placed / weights.sum(axis=1, keepdims=True)
    points[picked] = embedded
    return points, limit


def _resolved(embedding):
    """An embedding, waited for if it is pending."""
    return embedding.result() if hasattr(embedding, "result") else embedding


def _projection(fitted, dim, random_state):
    """Rows to the space placement searches in: their PLACE_DIM principal
    components (of the rows ``fitted``) when wider, as contiguous float32."""
    pca = None
    if dim > PLACE_DIM:
        from sklearn.decomposition import PCA

        pca = PCA(PLACE_DIM, random_state=random_state).fit(fitted)

    def project(part):
        return np.ascontiguousarray(part if pca is None else pca.transform(part),
                                    dtype=np.float32)
    return project


def _self_first(indices, distances):
    """Puts each row itself first at distance 0, as UMAP expects: a search
    may list an identical sample first, or (approximate) miss the row."""
    rows = np.arange(len(indices))
    own = indices == rows[:, None]
    at = np.where(own.any(axis=1), own.argmax(axis=1), indices.shape[1] - 1)
    indices[rows, at] = indices[:, 0]
    distances[rows, at] = distances[:, 0]
    indices[:, 0] = rows
    distances[:, 0] = 0.0
