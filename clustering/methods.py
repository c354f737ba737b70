"""The clustering methods: one declaration each (parameters and fit).

Parameter names and defaults follow scikit-learn (HDBSCAN's
``min_cluster_size`` aside: it scales with the data, see its help); each
method's fit receives exactly the validated parameters its declaration
lists, so nothing shown in the App form is ignored.
"""

from dataclasses import dataclass, field

import numpy as np

from .params import Param, ParameterError


@dataclass
class Fit:
    """What a method returns: labels (-1 is noise) and what it knows of centres."""

    labels: np.ndarray
    centers: np.ndarray = None
    medoids: np.ndarray = None
    strengths: np.ndarray = None
    inertia: float = None
    params: dict = field(default_factory=dict)
    info: dict = None


@dataclass(frozen=True)
class Method:
    """A clustering method: its parameters and how to fit it."""

    name: str
    label: str
    help: str
    params: tuple
    fit: object
    max_samples: int = None
    rules: object = None

    @property
    def needs_k(self):
        return any(p.name == "n_clusters" for p in self.params)

    @property
    def noise(self):
        return self.name == "hdbscan"

    def key(self, param_name):
        return f"{self.name}__{param_name}"

    def check_params(self, params):
        """Rules between parameters, as ``{key: ParameterError}``."""
        errors = {}
        if self.needs_k and params["n_clusters"] is None and params["k_min"] > params["k_max"]:
            errors[self.key("k_min")] = self.param("k_min").error(
                f"({params['k_min']}) must not exceed "
                f"'{self.param('k_max').title}' ({self.key('k_max')}, {params['k_max']}).",
                self.key("k_min"))
        for name, message in (self.rules(params) if self.rules else {}).items():
            errors[self.key(name)] = self.param(name).error(message, self.key(name))
        return errors

    def check(self, params, n_samples):
        """Limits that depend on how many samples have a vector."""
        errors = self.check_params(params)
        k = params.get("n_clusters")
        if k is not None and k > n_samples:
            errors[self.key("n_clusters")] = self.param("n_clusters").error(
                f"is {k} but only {n_samples} samples have embeddings; "
                f"choose at most {n_samples} or leave it empty to choose "
                "automatically.", self.key("n_clusters"))
        for name in ("min_samples", "min_cluster_size"):
            value = params.get(name)
            if value is not None and value > n_samples:
                errors[self.key(name)] = self.param(name).error(
                    f"is {value} but only {n_samples} samples have embeddings; "
                    f"choose at most {n_samples} or leave it empty.", self.key(name))
        if self.max_samples and n_samples > self.max_samples:
            errors["method"] = ParameterError(
                "method",
                f"'{self.name}' needs memory quadratic in the number of "
                f"samples and supports at most {self.max_samples:,}; this "
                f"target has {n_samples:,}. Use 'kmeans', 'minibatch_kmeans' "
                "or 'hdbscan', or cluster a smaller view.", label="Method")
        return errors

    def param(self, name):
        return next(p for p in self.params if p.name == name)


def _k_params(default_k_max=20):
    return (
        Param("n_clusters", int, None, "Number of clusters", low=2, high=MAX_CLUSTERS,
              empty="automatic choice by silhouette over k_min..k_max",
              label="N clusters"),
        Param("k_min", int, 2, "Smallest k tried when n_clusters is empty",
              low=2, high=MAX_SWEEP_K, label="Min k (auto)"),
        Param("k_max", int, default_k_max,
              "Largest k tried when n_clusters is empty", low=2, high=MAX_SWEEP_K,
              label="Max k (auto)"),
    )


def _agglomerative_rules(p):
    if p["linkage"] == "ward" and p["metric"] != "euclidean":
        return {"metric": "must be 'euclidean' when linkage is 'ward'; choose "
                          "another linkage to use another metric."}
    return {}


def _hdbscan_rules(p):
    if p["max_cluster_size"] and p["cluster_selection_method"] == "leaf":
        return {"max_cluster_size": "only applies with cluster_selection_method "
                                    "'eom'; leave it empty or choose 'eom'."}
    return {}


_SWEEP = ("k_min", "k_max")


def _sklearn(name):
    """A fit for ``sklearn.cluster.<name>``, which receives every declared
    parameter by its own name (the declaration uses scikit-learn's names)."""

    def fit(X, p, random_state):
        import inspect

        import sklearn.cluster

        estimator = getattr(sklearn.cluster, name)
        kwargs = {k: v for k, v in p.items() if k not in _SWEEP}
        if "n_init" in kwargs and kwargs["n_init"] is None:
            kwargs["n_init"] = "auto"
        accepted = inspect.signature(estimator).parameters
        if "random_state" in accepted:
            kwargs["random_state"] = random_state
        if "copy_x" in accepted:  # X is the run's own array: centre it in place, not a copy
            kwargs["copy_x"] = False
        model = estimator(**kwargs).fit(X)
        inertia = getattr(model, "inertia_", None)
        return Fit(model.labels_, centers=getattr(model, "cluster_centers_", None),
                   inertia=None if inertia is None else float(inertia))

    return fit


def default_min_cluster_size(n_samples):
    """2.5% of the samples within [15, 50] and at most a fifth of them; a
    tenth of them (at least 2) below SMALL_TARGET samples."""
    if n_samples < SMALL_TARGET:
        return max(2, n_samples // 10)
    return min(int(np.clip(round(0.025 * n_samples), 15, 50)), n_samples // 5)


def _fit_kmeans(X, p, random_state):
    """K-means: this plugin's Lloyd (clustering/lloyd.py) for 'lloyd',
    scikit-learn's for 'elkan'. ``info`` records the work done, in Lloyd
    iterations over all samples."""
    if p["algorithm"] == "elkan":
        return _sklearn("KMeans")(X, p, random_state)
    from .lloyd import kmeans

    labels, centres, inertia, n_iter = kmeans(
        X, p["n_clusters"], init=p["init"], n_init=p["n_init"], max_iter=p["max_iter"],
        tol=p["tol"], random_state=random_state)
    return Fit(labels, centers=centres, inertia=inertia,
               info=dict(lloyd_iterations=round(n_iter, 2)))


def _fit_hdbscan(X, p, random_state):
    import hdbscan

    min_cluster_size = p["min_cluster_size"] or default_min_cluster_size(len(X))
    # below SMALL_TARGET samples, densities estimated from min_cluster_size
    # neighbours are all alike and every point is noise; one neighbour is not
    min_samples = p["min_samples"] or (min_cluster_size if len(X) >= SMALL_TARGET else 1)
    model = hdbscan.HDBSCAN(
        min_cluster_size=min_cluster_size, min_samples=min_samples,
        max_cluster_size=p["max_cluster_size"] or 0,
        cluster_selection_epsilon=p["cluster_selection_epsilon"],
        cluster_selection_method=p["cluster_selection_method"],
        alpha=p["alpha"], allow_single_cluster=p["allow_single_cluster"],
        core_dist_n_jobs=-1,
    ).fit(X)
    return Fit(model.labels_, strengths=model.probabilities_,
               params={"min_cluster_size": min_cluster_size, "min_samples": min_samples})


def _fit_kmedoids(X, p, random_state):
    from .kmedoids import kmedoids

    labels, medoids, inertia = kmedoids(
        X, p["n_clusters"], metric=p["metric"], max_iter=p["max_iter"],
        random_state=random_state,
    )
    return Fit(labels, medoids=medoids, inertia=inertia)


# Bounds on what multiplies work: each is far beyond useful values, and
# keeps a typo from running for hours.
MAX_CLUSTERS = 10_000
# Targets this small get defaults of their own: HDBSCAN's min_samples, and
# no UMAP in the default preparation (see features.resolve).
SMALL_TARGET = 100
MAX_SWEEP_K = 100
MAX_ITER = 10_000

_INIT = Param("init", str, "k-means++", "Initialisation of the centres",
              choices=("k-means++", "random"))
_N_INIT = Param("n_init", int, None, "Number of full runs from new starts; the best is kept",
                low=1, high=100,
                empty="'auto': k-means with 'lloyd' tries 5 starts on a subsample and "
                "escapes local optima by swaps; elsewhere scikit-learn's 'auto'")

METHODS = {m.name: m for m in (
    Method(
        "kmeans", "K-means",
        "Spherical clusters of similar size; fast; needs the number of clusters.",
        _k_params() + (
            _INIT, _N_INIT,
            Param("max_iter", int, 300, "Maximum iterations per run", low=1,
                  high=MAX_ITER),
            Param("tol", float, 1e-4, "Convergence tolerance", low=0),
            Param("algorithm", str, "lloyd",
                  "'lloyd': Lloyd at matrix-product speed with exact bounds "
                  "(Hamerly's); 'elkan': scikit-learn's Elkan",
                  choices=("lloyd", "elkan")),
        ),
        _fit_kmeans,
    ),
    Method(
        "minibatch_kmeans", "Mini-batch k-means",
        "K-means on mini-batches: the choice for hundreds of thousands of samples.",
        _k_params() + (
            _INIT, _N_INIT,
            Param("batch_size", int, 1024, "Samples per mini-batch", low=1,
                  high=1_000_000),
            Param("max_iter", int, 100, "Maximum passes over the data", low=1,
                  high=MAX_ITER),
            Param("max_no_improvement", int, 10,
                  "Stop after this many mini-batches without improvement", low=1,
                  high=MAX_ITER),
            Param("reassignment_ratio", float, 0.01,
                  "Share of small clusters reassigned each step", low=0, high=1),
        ),
        _sklearn("MiniBatchKMeans"),
    ),
    Method(
        "kmedoids", "K-medoids",
        "Clusters around real samples (medoids), which become each cluster's "
        "representative; cosine or euclidean distance.",
        _k_params() + (
            Param("metric", str, "cosine", "Distance between embeddings",
                  choices=("cosine", "euclidean")),
            Param("max_iter", int, 300, "Maximum iterations", low=1, high=MAX_ITER),
        ),
        _fit_kmedoids,
    ),
    Method(
        "birch", "BIRCH",
        "Builds a compact tree of subclusters, then groups them into n_clusters.",
        _k_params() + (
            Param("threshold", float, 0.5,
                  "Radius below which a sample joins a subcluster", low=1e-9),
            Param("branching_factor", int, 50,
                  "Maximum subclusters per tree node", low=2, high=1000),
        ),
        _sklearn("Birch"),
    ),
    Method(
        "agglomerative", "Agglomerative",
        "Hierarchical merging of the closest groups; quadratic memory.",
        _k_params() + (
            Param("linkage", str, "ward", "Which distance between groups to merge on",
                  choices=("ward", "complete", "average", "single")),
            Param("metric", str, "euclidean", "Distance between embeddings",
                  choices=("euclidean", "cosine", "manhattan")),
        ),
        _sklearn("AgglomerativeClustering"),
        max_samples=30_000,
        rules=_agglomerative_rules,
    ),
    Method(
        "hdbscan", "HDBSCAN",
        "Density-based: finds the number of clusters itself and marks "
        "outliers as noise (-1).",
        (
            Param("min_cluster_size", int, None, "Smallest group counted as a cluster",
                  low=2, empty="2.5% of the samples, at least 15 and at most 50 "
                  f"(a tenth of them below {SMALL_TARGET} samples)"),
            Param("min_samples", int, None,
                  "Neighbours that make a point a core point; higher is more "
                  "conservative", low=1, high=1000,
                  empty=f"min_cluster_size (1 below {SMALL_TARGET} samples)"),
            Param("max_cluster_size", int, None, "Largest cluster allowed",
                  low=2, empty="no limit"),
            Param("cluster_selection_epsilon", float, 0.0,
                  "Clusters closer than this are merged", low=0),
            Param("cluster_selection_method", str, "eom",
                  "'eom' favours large stable clusters, 'leaf' small homogeneous ones",
                  choices=("eom", "leaf")),
            Param("alpha", float, 1.0, "Distance scaling for robust single linkage",
                  low=1e-9),
            Param("allow_single_cluster", bool, False,
                  "Allow the result to be a single cluster"),
        ),
        _fit_hdbscan,
        rules=_hdbscan_rules,
    ),
)}


def get_method(name):
    """The declared method ``name``, or a ParameterError listing the choices."""
    if name not in METHODS:
        raise ParameterError(
            "method", f"must be one of {', '.join(METHODS)}; got {name!r}.", label="Method")
    return METHODS[name]
