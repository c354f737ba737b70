"""Feature preparation: the stage between raw embeddings and the method.

L2 normalisation makes Euclidean methods follow cosine similarity; reduction
(PCA or UMAP) gives density methods the low-dimensional space they need,
the recipe BERTopic uses. ``auto`` resolves to concrete choices that are
recorded in the run.

Our UMAP differs from the library default in one way that matters: it
embeds the *mutual* k-nearest-neighbour graph (``set_op_mix_ratio=0``) with
50 neighbours. Normalised embeddings have hubs, points that are everyone's
neighbour without having them as neighbours; their one-sided edges bridge
clusters (on the digits, 289 edges link 1s and 8s, 25 of them mutual).
Keeping only mutual edges (Maier, Hein & von Luxburg, 2009) removes those
bridges. Points with no mutual neighbour are placed at the mean of their
input-space neighbours. Vectors longer than 50 dimensions are first reduced
to 50 with PCA, which keeps the neighbourhoods and makes the neighbour
search several times faster.
"""

import numpy as np

from .methods import SMALL_TARGET
from .params import Param

# UMAP costs seconds up to this size and markedly improves centroid methods;
# beyond it they cluster the normalised vectors directly, which is fast.
UMAP_AUTO_MAX_SAMPLES = 20_000
# Vectors at most this long are treated as already low-dimensional (e.g. a
# 2-D UMAP field) and are not reduced.
LOW_DIM = 10

UMAP_SETTINGS = dict(n_neighbors=50, min_dist=0.0, metric="euclidean",
                     set_op_mix_ratio=0.0)
PRE_PCA = 50
# Up to this size UMAP gets exact neighbours from a brute-force search (6 s
# at 50k x 50-d) instead of pynndescent, whose approximate search must be
# compiled anew in every process (~12 s: its functions take the distance
# function as an argument, which numba cannot cache).
EXACT_NEIGHBOURS_MAX_SAMPLES = 50_000

PREPARE_PARAMS = (
    Param("normalize", bool, None,
          "L2-normalise vectors so Euclidean methods follow cosine similarity",
          empty="on for vectors of more than 3 dimensions"),
    Param("reduce", str, "auto", "Dimensionality reduction before clustering",
          choices=("auto", "none", "pca", "umap")),
    Param("n_components", int, None, "Dimensions kept by the reduction", low=1,
          empty="10 for UMAP, 50 for PCA"),
)


def resolve(settings, method, n_samples, dim):
    """Turns ``auto`` choices into the concrete preparation for this data.

    Components are bounded by the samples (PCA and UMAP need fewer
    components than samples), and UMAP is left out below SMALL_TARGET
    samples: a graph of 50 neighbours says little about so few points.
    """
    normalize = settings["normalize"]
    if normalize is None:
        normalize = dim > 3
    reduce = settings["reduce"]
    if reduce == "auto":
        wants_umap = method.noise or n_samples <= UMAP_AUTO_MAX_SAMPLES
        reduce = "umap" if (dim > LOW_DIM and wants_umap
                            and n_samples >= SMALL_TARGET) else "none"
    n_components = settings["n_components"]
    if reduce == "none":
        n_components = None
    elif n_components is None:
        n_components = 10 if reduce == "umap" else 50
    if reduce != "none":
        n_components = max(1, min(n_components, dim, n_samples - 2))
        if reduce == "umap" and n_components >= dim:
            reduce, n_components = "none", None
    effective = dict(normalize=bool(normalize), reduce=reduce,
                     n_components=n_components)
    if reduce == "umap":
        pca_first = min(PRE_PCA, n_samples - 1)
        effective["umap"] = dict(
            UMAP_SETTINGS, n_neighbors=min(UMAP_SETTINGS["n_neighbors"], n_samples - 1),
            pca_first=pca_first if dim > pca_first > n_components else None)
    return effective


def prepare(X, effective, random_state=None):
    """Applies the resolved preparation; returns a float32 matrix.

    Normalisation happens in place: at a million 512-d vectors a copy is 2 GB.
    """
    if effective["normalize"]:
        X = l2_normalize(X)
    if effective["reduce"] == "pca":
        X = _pca(X, effective["n_components"], random_state)
    elif effective["reduce"] == "umap":
        settings = effective["umap"]
        if settings["pca_first"]:
            X = _pca(X, settings["pca_first"], random_state)
        X = _umap(X, effective["n_components"], settings, random_state)
    return np.ascontiguousarray(X, dtype=np.float32)


def _pca(X, n_components, random_state):
    from sklearn.decomposition import PCA

    return PCA(n_components, random_state=random_state).fit_transform(X)


def _umap(X, n_components, settings, random_state):
    import warnings

    import umap

    from .jit import cache_compiled

    cache_compiled("umap", "pynndescent")
    neighbours = None
    if len(X) <= EXACT_NEIGHBOURS_MAX_SAMPLES:
        from sklearn.neighbors import NearestNeighbors

        search = NearestNeighbors(n_neighbors=settings["n_neighbors"], algorithm="brute")
        distances, indices = search.fit(X).kneighbors(X)
        # a point is its own nearest neighbour at distance exactly 0, as UMAP
        # expects; rounding leaves ~1e-8, which UMAP would take for a neighbour
        distances[indices == np.arange(len(X))[:, None]] = 0.0
        neighbours = (indices, distances, None)
    model = umap.UMAP(
        n_components=n_components,
        n_neighbors=settings["n_neighbors"],
        min_dist=settings["min_dist"],
        metric=settings["metric"],
        set_op_mix_ratio=settings["set_op_mix_ratio"],
        precomputed_knn=neighbours or (None, None, None),
        random_state=random_state,
        n_jobs=1 if random_state is not None else -1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        embedded = model.fit_transform(X)
    return _place_unconnected(X, embedded, settings["n_neighbors"])


def _place_unconnected(X, embedded, n_neighbors):
    """Rows UMAP could not embed (no mutual neighbour) go to the mean
    embedding of their nearest embedded neighbours in the input space."""
    from sklearn.neighbors import NearestNeighbors

    lost = ~np.isfinite(embedded).all(axis=1)
    if not lost.any():
        return embedded
    kept = np.flatnonzero(~lost)
    if len(kept) == 0:
        return np.zeros_like(embedded)
    k = min(n_neighbors, len(kept))
    index = NearestNeighbors(n_neighbors=k).fit(X[kept])
    neighbours = index.kneighbors(X[lost], return_distance=False)
    embedded[lost] = embedded[kept][neighbours].mean(axis=1)
    return embedded


def l2_normalize(X):
    """Scales each row to unit length, in place (zero rows stay zero)."""
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))[:, None]
    norms[norms == 0] = 1.0
    return np.divide(X, norms, out=X)
