"""Which samples show a cluster to the model.

Candidates are the cluster's representatives stored by the run (its most
typical members, nearest the centre first). They are put in *spread order*:
the most typical first, then each next one the candidate that is farthest
from those already taken, minus its distance from the candidates' mean, in
the run's embedding space. Near-duplicates thus come last, outliers do not
come first, and the order is the same every time for a given run. When
files are unreadable, further members follow (nearest the centre first when
the run has a distance field).
"""

from dataclasses import dataclass

import numpy as np

MAX_CANDIDATES = 100
NOISE_POOL = 25


@dataclass
class Candidate:
    sample_id: str
    filepath: str


def spread_order(X, limit=None):
    """Indices of the rows of ``X`` (most typical first) in spread order;
    the first ``limit`` of them only, when given."""
    n = len(X)
    limit = n if limit is None else min(limit, n)
    if n <= 2:
        return list(range(limit))
    X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    from_mean = np.linalg.norm(X - X.mean(axis=0), axis=1)
    nearest = np.linalg.norm(X - X[0], axis=1)
    order, left = [0], np.ones(n, dtype=bool)
    left[0] = False
    while len(order) < limit:
        score = np.where(left, nearest - from_mean, -np.inf)
        pick = int(np.argmax(score))
        order.append(pick)
        left[pick] = False
        nearest = np.minimum(nearest, np.linalg.norm(X - X[pick], axis=1))
    return order


def pools(dataset, config, targets):
    """``{cluster id: [Candidate, ...]}`` in spread order, one query for all.

    ``targets`` are cluster dicts from the run results; the noise target
    (id ``"-1"``) has no representatives and draws a fixed set of noise
    samples instead.
    """
    from fiftyone import ViewField as F

    ids = {}
    for target in targets:
        if target["id"] == "-1":
            noise = dataset.match(F(config.cluster_field) == "-1").sort_by("_id")
            ids["-1"] = noise.limit(NOISE_POOL).values("id")
        else:
            ids[target["id"]] = list(target["representatives"])
    every = [i for members in ids.values() for i in members]
    fields = ["id", "filepath"]
    has_vectors = dataset.has_sample_field(config.embeddings_field)
    if has_vectors:
        fields.append(config.embeddings_field)
    rows = {row[0]: row[1:] for row in zip(*dataset.select(every).values(fields))}

    out = {}
    for cluster_id, members in ids.items():
        members = [m for m in members if m in rows]
        vectors = [rows[m][1] for m in members] if has_vectors else []
        if has_vectors and members and all(v is not None for v in vectors):
            members = [members[i] for i in spread_order(np.asarray(vectors, dtype=float))]
        out[cluster_id] = [Candidate(m, rows[m][0]) for m in members]
    return out


def more_candidates(dataset, config, cluster_id, tried):
    """Further members of cluster ``cluster_id`` not in ``tried``, for when
    files are unreadable: the most typical first (see ``typical``)."""
    from fiftyone import ViewField as F

    from ..clustering.typical import most_typical_first

    view = dataset.match(F(config.cluster_field) == cluster_id).exclude(list(tried))
    view = most_typical_first(view, config).limit(max(0, MAX_CANDIDATES - len(tried)))
    return [Candidate(i, p) for i, p in zip(*view.values(["id", "filepath"]))]
