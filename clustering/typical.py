"""One cluster's samples ordered from most typical to least."""

import numpy as np

from . import groups, runs, units
from .params import Param

CLUSTER = Param("cluster", str, None, "A cluster of the run", label="Cluster")
OPENED = Param("cluster", str, None,
               f"A cluster of the run, or a group of its clusters as {groups.PREFIX}<id> "
               f"({groups.PREFIX}0, {groups.PREFIX}1, ...)", label="Cluster or group")
# Sorts after every real distance: samples without one come last.
_LAST = 1e308


def cluster_view(dataset, key, cluster):
    """The samples of ``cluster`` in run ``key`` (the objects, as a patches
    view, for a patch run), most typical first.

    With the run's distance field the whole cluster is sorted by distance to
    its centre (samples without a distance last); without it the recorded
    representatives come first, in order.
    """
    run_info, results = runs.get(dataset, key)
    rows, config = units.of_run(dataset, run_info.config)
    clusters = {c["id"]: c for c in results.clusters}
    if results.noise is not None:
        clusters["-1"] = dict(representatives=[])
    found = {groups.PREFIX + g["id"]: g for g in getattr(results, "groups", None) or []}
    if cluster in found:
        return group_view(rows, config, found[cluster], clusters)
    if cluster not in clusters:
        raise OPENED.error(
            f"names no cluster or group of run '{key}': its clusters are "
            f"{', '.join(clusters)}, its groups {', '.join(found) or 'none'}; "
            f"got {cluster!r}.")
    return select(rows, config, cluster, clusters[cluster]["representatives"])


def group_view(dataset, config, group, clusters):
    """The samples of ``group`` (its record), most typical first: by their
    distance to their own cluster's centre, else each cluster's most
    typical in turn."""
    from fiftyone import ViewField as F

    reps = groups.interleave([clusters[c]["representatives"] for c in group["clusters"]])
    return most_typical_first(dataset.match(F(config.group_field) == group["id"]), config,
                              reps)


def select(view, config, cluster, representatives=()):
    """``view``'s samples of ``cluster``, most typical first: a match on the
    run's cluster field, then the sort of :func:`most_typical_first`."""
    from fiftyone import ViewField as F

    return most_typical_first(view.match(F(config.cluster_field) == cluster), config,
                              representatives)


def selected(stages, cluster_field):
    """``(cluster id, stages before it)`` when the serialized view
    ``stages`` end as :func:`select` on ``cluster_field`` ends them (the
    match on the field, then the sort); else ``(None, stages)``."""
    if len(stages) >= 2 and stages[-2]["_cls"].endswith(".Match") and (
            stages[-1]["_cls"].endswith(".SortBy")):
        match = (dict(stages[-2]["kwargs"]).get("filter") or {}).get("$expr") or {}
        eq = match.get("$eq") if isinstance(match, dict) else None
        if isinstance(eq, list) and len(eq) == 2 and eq[0] == "$" + cluster_field and (
                isinstance(eq[1], str)):
            return eq[1], stages[:-2]
    return None, stages


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


def typicality(ids, config, results, distances=None):
    """A sort key per sample (``ids``, with their values of the run's
    distance field when it has one): lower is more typical, and sorted by
    it then by id each cluster comes in most_typical_first's order."""
    if config.distance_field:
        return np.where(np.isnan(distances), _LAST, distances)
    position = {r: i for c in results.clusters for i, r in enumerate(c["representatives"])}
    return np.array([position.get(i, _LAST) for i in ids], dtype=float)
