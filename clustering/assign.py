"""Assigning new samples to an existing run's clusters without re-clustering.

Each sample goes to the nearest cluster centre in the run's input space
(the normalised embeddings): exact for k-means on unreduced features, a
close approximation otherwise. For runs with noise (HDBSCAN), a sample
farther from its nearest centre than that cluster's recorded radius is noise.
Assigned samples get a distance too when the run has a distance field: in
the run's own space when the run did not reduce its features, otherwise
just beyond the farthest clustered member (so they sort after the samples
the run clustered, as less typical).
"""

import datetime

import numpy as np

from . import internals, runs, transactions, units
from .actions import group_steps, name_steps, stage_text
from .embeddings import read_vectors
from .features import l2_normalize
from .params import InputError, Param
from .progress import PROGRESS

EXECUTION_PARAMS = (
    Param("delegate", bool, False, "Queue the assignment for `fiftyone delegated launch`"),
    PROGRESS,
)


def assign(collection, key, operation=None):
    """Assigns the samples of ``collection`` that the run has not clustered."""
    dataset = internals.root_dataset(collection)
    with transactions.transaction(dataset, [key], "assignment", operation) as tx:
        dataset.reload()
        run_info, results = runs.get(dataset, key)
        config = run_info.config
        on = units.for_run(collection, config)
        todo = on.rows().exists(on.row(config.embeddings_field)).exists(
            on.row(config.cluster_field), False)
        if len(todo) == 0:
            return dict(run_key=key, num_assigned=0, num_noise=0, counts={})
        emb = read_vectors(todo, on.row(config.embeddings_field))
        labels, distances = nearest(emb, results, config, key)
        return _commit(dataset, tx, key, config, results, emb.ids, labels, distances)


def nearest(emb, results, config, key, limit=1.0):
    """Each vector's cluster id and its distance to that cluster's centre;
    for runs with noise, noise ("-1") beyond ``limit`` times the cluster's
    radius (None: no limit)."""
    centres = np.array([c.get("input_centroid", c["centroid"]) for c in results.clusters],
                       dtype=np.float32)
    if emb.X.shape[1] != centres.shape[1]:
        raise InputError(
            f"Field '{config.embeddings_field}' of the new samples holds "
            f"{emb.X.shape[1]}-d vectors but run '{key}' clustered "
            f"{centres.shape[1]}-d vectors; compute the same embeddings for them.")
    X = l2_normalize(emb.X) if config.prepare["normalize"] else emb.X
    dist = np.sqrt(np.maximum(
        (X ** 2).sum(1)[:, None] - 2 * X @ centres.T + (centres ** 2).sum(1)[None, :], 0))
    closest = dist.argmin(axis=1)
    own = dist[np.arange(len(X)), closest]
    labels = closest.astype(str)
    if results.noise is not None and limit is not None:
        radius = np.array([c["radius"] for c in results.clusters])
        labels[own > limit * radius[closest]] = "-1"
    return labels, own


def recorded_distances(members, config, labels, own):
    """Distances to record: comparable with the clustered samples' when the
    run measured them in the same space, else past the farthest of
    ``members`` (the samples the run placed itself)."""
    if config.prepare["reduce"] == "none":
        return np.where(labels == "-1", np.nan, own).astype(np.float32)
    farthest = members.bounds(config.distance_field)[1] or 0.0
    return np.where(labels == "-1", np.nan, farthest + 1.0 + own).astype(np.float32)


def _commit(dataset, tx, key, config, results, ids, labels, own):
    """Stages the samples' clusters, groups, distances and names with the
    run's record, commits them and applies them."""
    tx.stage_ids("ids", ids)
    steps = [stage_text(tx, "codes", config.cluster_field, "ids", labels, key)]
    steps += group_steps(tx, config, results, ids, labels, key)
    if config.distance_field:
        tx.stage_array("distances", recorded_distances(dataset, config, labels, own))
        steps.append(dict(op="write_field", field=config.distance_field, kind="float",
                          ids="ids", values="distances", replace=False, owner=key))
    label_field = (getattr(config, "labels", None) or {}).get("label_field")
    if label_field:
        names = {c["id"]: c.get("name") for c in results.clusters}
        steps += name_steps(tx, "", label_field, ids, labels, names, key)

    counts = {str(c): int(n) for c, n in zip(*np.unique(labels, return_counts=True))}
    entry = dict(
        timestamp=datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S UTC"),
        num_assigned=int(len(labels)), counts=counts,
        method="nearest centre" + (" within radius" if results.noise is not None else ""),
    )
    stored = runs.results_dict(results)
    stored["assignments"] = (stored.get("assignments") or []) + [entry]
    tx.stage_json("results", stored)
    steps.append(dict(op="update_run", key=key, results="results"))
    tx.commit(steps)
    return dict(run_key=key, num_assigned=entry["num_assigned"],
                num_noise=counts.get("-1", 0), counts=counts)
