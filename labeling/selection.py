"""Which samples (or a patch run's objects) show a cluster to the model.

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

from ..clustering import units
from ..clustering.embeddings import read_vectors
from ..clustering.params import InputError

MAX_CANDIDATES = 100
NOISE_POOL = 25


@dataclass
class Candidate:
    sample_id: str
    filepath: str
    box: list = None


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
    samples instead. A patch run's candidates are its objects, each shown
    as its box cut out of its image.
    """
    from fiftyone import ViewField as F

    rows, config = units.of_run(dataset, config)
    ids = {}
    for target in targets:
        if target["id"] == "-1":
            noise = rows.match(F(config.cluster_field) == "-1").sort_by("_id")
            ids["-1"] = noise.limit(NOISE_POOL).values("id")
        else:
            ids[target["id"]] = list(target["representatives"])
    chosen = rows.select([i for members in ids.values() for i in members])
    found = candidates(chosen, config)
    try:
        emb = read_vectors(chosen, config.embeddings_field)
        vectors = dict(zip(map(str, emb.ids), emb.X))
    except InputError:  # the run's embeddings were deleted since
        vectors = {}

    out = {}
    for cluster_id, members in ids.items():
        members = [m for m in members if m in found]
        if members and all(m in vectors for m in members):
            members = [members[i] for i in spread_order(
                np.array([vectors[m] for m in members], dtype=float))]
        out[cluster_id] = [found[m] for m in members]
    return out


def candidates(rows, config):
    """``{id: Candidate}`` of ``rows``: samples, or a patch run's objects,
    each with the box it is cut out by (a polyline's: around its points)."""
    field = getattr(config, "patches_field", None)
    if not field:
        return {i: Candidate(i, path) for i, path in zip(*rows.values(["id", "filepath"]))}
    polyline = rows.get_field(field).document_type.__name__ == "Polyline"
    ids, paths, shapes = rows.values(
        ["id", "filepath", f"{field}.{'points' if polyline else 'bounding_box'}"])
    boxes = map(_enclosing, shapes) if polyline else shapes
    return {i: Candidate(i, path, box) for i, path, box in zip(ids, paths, boxes)}


def _enclosing(shapes):
    """The relative box ``[x, y, width, height]`` around a polyline's
    points (None when it has none: the whole image is shown)."""
    points = np.array([p for shape in shapes or [] for p in shape], dtype=float).reshape(-1, 2)
    if not len(points):
        return None
    (left, top), (right, bottom) = points.min(axis=0), points.max(axis=0)
    return [float(left), float(top), float(right - left), float(bottom - top)]


def more_candidates(dataset, config, cluster_id, tried):
    """Further members of cluster ``cluster_id`` not in ``tried``, for when
    files are unreadable: the most typical first (see ``typical``)."""
    from fiftyone import ViewField as F

    from ..clustering.typical import most_typical_first

    rows, config = units.of_run(dataset, config)
    view = rows.match(F(config.cluster_field) == cluster_id).exclude(list(tried))
    view = most_typical_first(view, config).limit(max(0, MAX_CANDIDATES - len(tried)))
    return list(candidates(view, config).values())
