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
# UMAP starts from its spectral layout up to this size, from PCA above.
SPECTRAL_MAX = 20_000
# UMAP embeds at most this many samples and places the others: its epochs
# cost in proportion to the samples, and at a million they took most of an
# HDBSCAN run.
UMAP_FIT_MAX = 200_000

PREPARE_PARAMS = (
    Param("normalize", bool, None,
          "L2-normalise vectors so Euclidean methods follow cosine similarity",
          empty="on for vectors of more than 3 dimensions"),
    Param("reduce", str, "auto", "Dimensionality reduction before clustering",
          choices=("auto", "none", "pca", "umap")),
    Param("n_components", int, None, "Dimensions kept by the reduction", low=1,
          empty="10 for UMAP, 50 for PCA"),
)


def candidates(settings, method, n_samples, dim):
    """The concrete settings ``auto`` leaves open for this data, as
    settings dicts: normalised or raw vectors (above 3 dimensions), with
    UMAP or without (where the default would use it). HDBSCAN keeps its
    default, normalised vectors through UMAP: on raw vectors density found
    almost nothing in every feature set measured (bench/defaults.py)."""
    if method.noise:
        return [settings]
    normalize = [settings["normalize"]] if settings["normalize"] is not None or dim <= 3 else [
        True, False]
    reduce = [settings["reduce"]]
    if settings["reduce"] == "auto":
        reduce = ["umap", "none"] if resolve(settings, method, n_samples, dim)[
            "reduce"] == "umap" else ["none"]
    return [dict(settings, normalize=n, reduce=r) for n in normalize for r in reduce]


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
        X = embed_umap(X, effective["n_components"], settings, random_state)
    return np.ascontiguousarray(X, dtype=np.float32)


def _pca(X, n_components, random_state):
    from sklearn.decomposition import PCA

    return PCA(n_components, random_state=random_state).fit_transform(X)


def embed_umap(X, n_components, settings, random_state):
    """UMAP of ``X`` on the neighbour graph of clustering/neighbours.py, of
    at most UMAP_FIT_MAX samples, the others placed beside their nearest
    embedded ones; spectral initialisation up to SPECTRAL_MAX samples,
    PCA's above (the spectral layout of 100k samples in 50 groups took 35
    of UMAP's 45 s). ``settings`` may fix ``n_epochs`` (UMAP's default
    otherwise)."""
    from .neighbours import embed_subset

    return embed_subset(X, UMAP_FIT_MAX, lambda rows: _embed_umap(
        rows, n_components, settings, random_state), random_state)[0]


def _embed_umap(X, n_components, settings, random_state):
    import warnings

    import umap

    from .jit import cache_compiled
    from .neighbours import nearest

    cache_compiled("umap")
    indices, distances = nearest(X, settings["n_neighbors"])
    model = umap.UMAP(
        n_components=n_components,
        n_neighbors=settings["n_neighbors"],
        min_dist=settings["min_dist"],
        metric=settings["metric"],
        set_op_mix_ratio=settings["set_op_mix_ratio"],
        precomputed_knn=(indices, distances, None),
        init="spectral" if len(X) <= SPECTRAL_MAX else "pca",
        n_epochs=settings.get("n_epochs"),
        random_state=random_state,
        n_jobs=1 if random_state is not None else -1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        embedded = model.fit_transform(X)
    return _place_unconnected(embedded, indices)


def _place_unconnected(embedded, indices):
    """Rows UMAP could not embed (no mutual neighbour) go to the mean
    embedding of their embedded nearest neighbours in the input space."""
    lost = ~np.isfinite(embedded).all(axis=1)
    if not lost.any():
        return embedded
    if lost.all():
        return np.zeros_like(embedded)
    rows = np.flatnonzero(lost)
    for start in range(0, len(rows), 10_000):
        part = rows[start:start + 10_000]
        neighbours = indices[part]
        usable = ~lost[neighbours]
        placed = np.where(usable[..., None], embedded[neighbours], 0).sum(axis=1)
        embedded[part] = placed / np.maximum(usable.sum(axis=1), 1)[:, None]
    return embedded


def l2_normalize(X):
    """Scales each row to unit length, in place (zero rows stay zero)."""
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))[:, None]
    norms[norms == 0] = 1.0
    return np.divide(X, norms, out=X)
