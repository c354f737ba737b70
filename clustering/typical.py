"""One cluster's samples ordered from most typical to least."""

from . import runs
from .params import InputError


def cluster_view(dataset, key, cluster):
    """The samples of ``cluster`` in run ``key``, most typical first.

    With the run's distance field the whole cluster is sorted by distance to
    its centre; without it the recorded representatives come first, in order.
    """
    from fiftyone import ViewField as F
    from fiftyone.core.expressions import ViewExpression

    run_info, results = runs.get(dataset, key)
    config = run_info.config
    clusters = {c["id"]: c for c in results.clusters}
    if cluster not in clusters:
        raise InputError(
            f"Parameter 'cluster': run '{key}' has no cluster {cluster!r}; its "
            f"clusters are {', '.join(clusters)}."
        )
    view = dataset.match(F(config.cluster_field) == cluster)
    if config.distance_field:
        return view.sort_by(config.distance_field)
    reps = clusters[cluster]["representatives"]
    position = ViewExpression({"$indexOfArray": [reps, {"$toString": "$_id"}]})
    return view.sort_by((position >= 0).if_else(position, len(reps)))
