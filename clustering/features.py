"""Feature preparation: the stage between raw embeddings and the method.

L2 normalisation makes Euclidean methods follow cosine similarity; reduction
(PCA or UMAP) gives density methods the low-dimensional space they need,
the recipe BERTopic uses. ``auto`` resolves to concrete choices that are
recorded in the run.
"""

import numpy as np

from .params import Param

# UMAP costs seconds up to this size and markedly improves centroid methods;
# beyond it they cluster the normalised vectors directly, which is fast.
UMAP_AUTO_MAX_SAMPLES = 20_000
# Vectors at most this long are treated as already low-dimensional (e.g. a
# 2-D UMAP field) and are not reduced.
LOW_DIM = 10

UMAP_SETTINGS = dict(n_neighbors=15, min_dist=0.0, metric="euclidean")

PREPARE_PARAMS = (
    Param("normalize", bool, None,
          "L2-normalise vectors so Euclidean methods follow cosine similarity",
          empty="on for vectors of more than 3 dimensions"),
    Param("reduce", str, "auto", "Dimensionality reduction before clustering",
          choices=("auto", "none", "pca", "umap")),
    Param("n_components", int, None, "Dimensions kept by the reduction", low=1,
          empty="5 for UMAP, 50 for PCA"),
)


def resolve(settings, method, n_samples, dim):
    """Turns ``auto`` choices into the concrete preparation for this data."""
    normalize = settings["normalize"]
    if normalize is None:
        normalize = dim > 3
    reduce = settings["reduce"]
    if reduce == "auto":
        wants_umap = method.noise or n_samples <= UMAP_AUTO_MAX_SAMPLES
        reduce = "umap" if dim > LOW_DIM and wants_umap else "none"
    n_components = settings["n_components"]
    if reduce == "none":
        n_components = None
    elif n_components is None:
        n_components = 5 if reduce == "umap" else 50
    if reduce != "none":
        n_components = min(n_components, dim, n_samples - 1)
        if reduce == "umap" and n_components >= dim:
            reduce, n_components = "none", None
    effective = dict(normalize=bool(normalize), reduce=reduce,
                     n_components=n_components)
    if reduce == "umap":
        effective["umap"] = dict(UMAP_SETTINGS)
    return effective


def prepare(X, effective, random_state=None):
    """Applies the resolved preparation; returns a float32 matrix.

    Normalisation happens in place: at a million 512-d vectors a copy is 2 GB.
    """
    if effective["normalize"]:
        X = l2_normalize(X)
    if effective["reduce"] == "pca":
        from sklearn.decomposition import PCA

        X = PCA(effective["n_components"], random_state=random_state).fit_transform(X)
    elif effective["reduce"] == "umap":
        X = _umap(X, effective["n_components"], random_state)
    return np.ascontiguousarray(X, dtype=np.float32)


def l2_normalize(X):
    """Scales each row to unit length, in place (zero rows stay zero)."""
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))[:, None]
    norms[norms == 0] = 1.0
    return np.divide(X, norms, out=X)


def _umap(X, n_components, random_state):
    import warnings

    import umap

    from .jit import cache_compiled

    cache_compiled("umap", "pynndescent")
    n_neighbors = min(UMAP_SETTINGS["n_neighbors"], len(X) - 1)
    model = umap.UMAP(
        n_components=n_components,
        n_neighbors=n_neighbors,
        min_dist=UMAP_SETTINGS["min_dist"],
        metric=UMAP_SETTINGS["metric"],
        random_state=random_state,
        n_jobs=1 if random_state is not None else -1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return model.fit_transform(X)
