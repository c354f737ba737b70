"""One cluster's samples ordered from most typical to least."""

from . import runs
from .params import Param

CLUSTER = Param("cluster", str, None, "A cluster of the run", label="Cluster")
# Sorts after every real distance: samples without one come last.
_LAST = 1e308


def cluster_view(dataset, key, cluster):
    """The samples of ``cluster`` in run ``key``, most typical first.

    With the run's distance field the whole cluster is sorted by distance to
    its centre (samples without a distance last); without it the recorded
    representatives come first, in order.
    """
    from fiftyone import ViewField as F

    run_info, results = runs.get(dataset, key)
    config = run_info.config
    clusters = {c["id"]: c for c in results.clusters}
    if results.noise is not None:
        clusters["-1"] = dict(representatives=[])
    if cluster not in clusters:
        raise CLUSTER.error(
            f"names no cluster of run '{key}': its clusters are "
            f"{', '.join(clusters)}; got {cluster!r}.")
    view = dataset.match(F(config.cluster_field) == cluster)
    return most_typical_first(view, config, clusters[cluster]["representatives"])


def most_typical_first(view, config, representatives=()):
    """``view`` sorted by the run's distance field (samples without one
    last), else with ``representatives`` first; ties in id order."""
    from fiftyone import ViewField as F
    from fiftyone.core.expressions import ViewExpression

    if config.distance_field:
        distance = F(config.distance_field)
        key = (distance != None).if_else(distance, _LAST)  # noqa: E711
    else:
        reps = list(representatives)
        position = ViewExpression({"$indexOfArray": [reps, {"$toString": "$_id"}]})
        key = (position >= 0).if_else(position, len(reps))
    return view.sort_by([(key, 1), ("_id", 1)])
