"""The run's map: a 2-D layout of the features the run clustered, recorded
as a FiftyOne Brain visualization run (brain key ``<run_key>_map``), so the
App's Embeddings panel shows the run's samples, coloured by its cluster
field, without computing embeddings again.

The layout is of the run's own prepared features (normalised, reduced), so
what the map shows apart is what the method saw apart. ``umap`` embeds at
most FIT_MAX samples with UMAP and places every other sample at the
distance-weighted mean of its nearest embedded samples (in the prepared
space): at 20,000 x 512 that adds about 15% to a default run, where UMAP
of every sample costs more than the run (``bench/clustering.py --cases
map``). In a process that has not loaded UMAP yet, a helper process
(``umap_process``) loads it while the run reads and fits, and embeds
there while this process searches the neighbours. ``pca`` is the two
principal components: free, but clusters overlap. Above MAP_MAX samples
the map shows MAP_MAX of them, drawn at random: saving a million points
costs more than the whole map is worth to a panel that draws them all.
"""

import numpy as np

from .methods import SMALL_TARGET
from .params import Param

MAP = Param("map", str, "umap",
            "A 2-D map of the features the run clustered, recorded as brain run "
            "<run_key>_map for the App's Embeddings panel",
            choices=("none", "pca", "umap"))
# UMAP embeds at most this many samples; the others are placed beside them.
FIT_MAX = 1_500
# The map shows at most this many samples (or objects) of a run.
MAP_MAX = 200_000
# Map UMAP: the library's defaults, with 100 epochs (its default for small
# inputs is 500). Against 200, 100 keeps trustworthiness within 0.004 and
# the true classes as far apart, in about half the time (bench/map.py).
UMAP_SETTINGS = dict(n_neighbors=15, min_dist=0.1, metric="euclidean", set_op_mix_ratio=1.0,
                     n_epochs=100)
# Marks a brain run as a clustering run's map (a config entry FiftyOne keeps).
MARK = "clusterlab_map"


def brain_key(run_key):
    """The brain key of run ``run_key``'s map."""
    return f"{run_key}_map"


def recorded_key(config):
    """The brain key of the map a run's config records, or None."""
    return (getattr(config, "map", None) or {}).get("brain_key")


def is_map(dataset, key):
    """Whether brain run ``key`` is a map this plugin recorded."""
    return key in dataset.list_brain_runs(**{MARK: True})


def check_key(dataset, run_key, overwrite, param=MAP):
    """Raises ParameterError (naming ``param``) unless the map of run
    ``run_key`` may be recorded: its brain key is free, or (with
    ``overwrite``) it holds this key's earlier map."""
    key = brain_key(run_key)
    if key not in dataset.list_runs() + dataset.list_brain_runs() + dataset.list_evaluations():
        return
    ours = is_map(dataset, key)
    if ours and overwrite:
        return
    hint = ("set 'Overwrite' (overwrite) to replace it" if ours and param is MAP
            else "choose another run key")
    off = f", or set '{MAP.title}' (map) to 'none'" if param is MAP else ""
    raise param.error(
        f"needs brain key '{key}' for the run's map, which "
        f"{'an earlier map of this key' if ours else 'another run'} already uses; "
        f"{hint}{off}.")


def shown(n, random_state=None):
    """The rows of a run's ``n`` units its map shows: None for all of them,
    or MAP_MAX drawn at random. Drawn from the rows the run holds, they cost
    no query, and the map stays recorded on the run's own collection, which
    FiftyOne Brain loads without matching every id against a view."""
    if n <= MAP_MAX:
        return None
    return np.sort(np.random.default_rng(random_state).choice(n, MAP_MAX, replace=False))


def compute(Z, method, random_state=None, rows=None, helper=None):
    """``(points, made)``: the 2-D map of the prepared features ``Z`` (of
    its rows ``rows``, when given), one row per row mapped, and how it was
    made (recorded in the run). Features of at most 2 dimensions are their
    own map; UMAP needs SMALL_TARGET samples, fewer get PCA. A ``helper``
    (``umap_process``) runs the UMAP, if given."""
    n, dim = len(Z) if rows is None else len(rows), Z.shape[1]
    if method == "umap" and dim > 2 and n >= SMALL_TARGET:
        return _umap(Z, rows, random_state, helper)
    if rows is not None:
        Z = Z[rows]
    if dim <= 2:
        points = np.zeros((n, 2), dtype=np.float32)
        points[:, :dim] = Z
        return points, dict(method="features")
    if not np.ptp(Z, axis=0).any():  # identical vectors: every point at the origin
        return np.zeros((n, 2), dtype=np.float32), dict(method="pca")
    from sklearn.decomposition import PCA

    points = PCA(2, random_state=random_state).fit_transform(Z)
    return points.astype(np.float32), dict(method="pca")


def _umap(Z, rows, random_state, helper):
    """UMAP of up to FIT_MAX samples of ``Z`` (of its rows ``rows``); the
    others placed beside them, read a batch at a time (no copy of ``Z``)."""
    from .features import embed_umap
    from .neighbours import embed_subset

    fitted = min(len(Z) if rows is None else len(rows), FIT_MAX)
    settings = dict(UMAP_SETTINGS, n_neighbors=min(UMAP_SETTINGS["n_neighbors"], fitted - 1))

    def embed(part):  # FIT_MAX is below UMAP's own subsampling: one UMAP of ``part``
        if helper is None or not helper.is_ready():
            return embed_umap(part, 2, settings, random_state)
        return helper.embed(part, 2, settings, random_state)
    # placed on one thread: a helper may be embedding (more threads would wait
    # on its core), and the map is then the same with a helper or without
    points, fitted = embed_subset(Z, FIT_MAX, embed, random_state, rows, threads=1)
    return points, dict(method="umap", fitted_on=fitted)


def save(collection, key, ids, points, patches_field=None):
    """Records ``points`` (rows in the order of ``ids``: samples, or the
    objects of ``patches_field``) as brain run ``key`` on ``collection``,
    replacing a run of that key."""
    import fiftyone.brain as fob

    fob.compute_visualization(collection, points=dict(zip(map(str, ids), points)),
                              patches_field=patches_field, brain_key=key, progress=False,
                              **{MARK: True})
