"""Assigning new samples to an existing run's clusters without re-clustering.

Each sample goes to the nearest cluster centre in the run's input space
(the normalised embeddings): exact for k-means on unreduced features, a
close approximation otherwise. For runs with noise (HDBSCAN), a sample
farther from its nearest centre than that cluster's recorded radius is noise.
"""

import datetime

import numpy as np

from . import runs, writeback
from .embeddings import read_embeddings
from .features import l2_normalize
from .params import InputError


def assign(collection, key):
    """Assigns the samples of ``collection`` that the run has not clustered."""
    dataset = collection._root_dataset
    run_info, results = runs.get(dataset, key)
    config = run_info.config
    todo = collection.exists(config.embeddings_field).exists(config.cluster_field, False)
    if len(todo) == 0:
        return dict(run_key=key, num_assigned=0, num_noise=0)

    emb = read_embeddings(todo, config.embeddings_field)
    centres = np.array([c.get("input_centroid", c["centroid"]) for c in results.clusters],
                       dtype=np.float32)
    if emb.X.shape[1] != centres.shape[1]:
        raise InputError(
            f"Field '{config.embeddings_field}' of the new samples holds "
            f"{emb.X.shape[1]}-d vectors but run '{key}' clustered "
            f"{centres.shape[1]}-d vectors; compute the same embeddings for them."
        )
    X = l2_normalize(emb.X) if config.prepare["normalize"] else emb.X
    dist = np.sqrt(np.maximum(
        (X ** 2).sum(1)[:, None] - 2 * X @ centres.T + (centres ** 2).sum(1)[None, :], 0))
    nearest = dist.argmin(axis=1)
    labels = nearest.astype(str)
    if results.noise is not None:
        radius = np.array([c["radius"] for c in results.clusters])
        labels[dist[np.arange(len(X)), nearest] > radius[nearest]] = "-1"

    ids = np.array(emb.ids, dtype=object)
    writeback.fill_fields(dataset, ids, {config.cluster_field: labels})
    names = {c["id"]: c["name"] for c in results.clusters if c.get("name")}
    label_field = (getattr(config, "labels", None) or {}).get("label_field")
    named = np.array([label in names for label in labels])
    if label_field and named.any():
        writeback.fill_fields(dataset, ids[named], {
            label_field: np.array([names[label] for label in labels[named]])})

    counts = {c: int(n) for c, n in zip(*np.unique(labels, return_counts=True))}
    entry = dict(
        timestamp=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        num_assigned=int(len(labels)), counts=counts,
        method="nearest centre" + (" within radius" if results.noise is not None else ""),
    )
    stored = runs.results_dict(results)
    stored["assignments"] = (stored.get("assignments") or []) + [entry]
    runs.save_results(dataset, key, stored)
    return dict(run_key=key, num_assigned=entry["num_assigned"],
                num_noise=counts.get("-1", 0), counts=counts)

