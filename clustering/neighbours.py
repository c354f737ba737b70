"""Each sample's nearest neighbours, the graph UMAP embeds.

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

EXACT_MAX = 20_000
NPROBE = 8


def nearest(X, k):
    """``(indices, distances)``: each row's ``k`` nearest rows of ``X``
    (Euclidean), the row itself first at distance 0."""
    import faiss

    X = np.ascontiguousarray(X, dtype=np.float32)
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
    squared, indices = index.search(X, k)
    distances = np.sqrt(np.maximum(squared, 0))
    _self_first(indices, distances)
    return indices, distances


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
