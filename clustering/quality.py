"""What a fitted clustering is worth: ids by size, centres, representatives,
internal metrics on a capped sample and, given truth, external metrics."""

from dataclasses import dataclass

import numpy as np

from .cores import by_rows, rows_per_block
from .lloyd import cluster_sums
from .params import InputError

METRICS_SAMPLE = 5000
NUM_REPRESENTATIVES = 25
# Rows of distances a silhouette holds at a time.
_SILHOUETTE_ROWS = 512


@dataclass
class Measured:
    """A fit, measured: labels by size and what the run records per cluster."""

    labels: np.ndarray
    sizes: np.ndarray
    centres: np.ndarray
    distances: np.ndarray
    representatives: list
    input_centres: np.ndarray
    radius: list
    metrics: dict

    @property
    def num_clusters(self):
        return len(self.sizes)

    @property
    def noise(self):
        return int(np.sum(self.labels < 0))

    def clusters(self, ids, reduced):
        """Per-cluster records for the run; compact (nothing per sample)."""
        return [
            dict(
                id=str(c),
                size=int(self.sizes[c]),
                representatives=[str(ids[i]) for i in self.representatives[c]],
                centroid=_compact(self.centres[c]),
                radius=round(self.radius[c], 6),
                **({"input_centroid": _compact(self.input_centres[c])} if reduced else {}),
            )
            for c in range(self.num_clusters)
        ]


def measure(Z, X, fit, reduced, truth, rng):
    """Measures ``fit`` of the prepared features ``Z`` (inputs ``X``).

    Centres and distances are taken in the prepared space; where
    assign_to_clusters will place new samples, the normalised inputs, each
    cluster also gets a centre and a radius there.
    """
    labels, order = order_by_size(fit.labels)
    k = len(order)
    if k == 0:
        raise InputError(
            "The method found no cluster: every sample is noise. Lower "
            "hdbscan__min_cluster_size or hdbscan__min_samples."
        )
    centre_rows = centres(Z, labels, k, fit, order)
    distances = distances_to_centre(Z, labels, centre_rows)
    input_centres = member_means(X, labels, k) if reduced else centre_rows
    input_distances = distances_to_centre(X, labels, input_centres) if reduced else distances
    metrics = internal_metrics(Z, labels, rng)
    if truth is not None:
        metrics["ground_truth"] = external_metrics(labels, truth)
    return Measured(
        labels=labels,
        sizes=np.bincount(labels[labels >= 0], minlength=k),
        centres=centre_rows,
        distances=distances,
        representatives=representatives(labels, distances, fit.strengths, k),
        input_centres=input_centres,
        radius=radii(input_distances, labels, k),
        metrics=metrics,
    )


def _compact(vector):
    return [round(float(v), 6) for v in vector]


def order_by_size(labels):
    """Renumbers clusters 0, 1, ... from largest to smallest; -1 stays noise."""
    labels = np.asarray(labels)
    clusters, sizes = np.unique(labels[labels >= 0], return_counts=True)
    order = clusters[np.lexsort((clusters, -sizes))]
    mapping = np.full(labels.max() + 2 if len(labels) else 1, -1)
    mapping[order] = np.arange(len(order))
    return np.where(labels >= 0, mapping[labels], -1), order


def centres(Z, labels, num_clusters, fit, order):
    """Each cluster's centre in the prepared space: the method's own centre
    or medoid when it has one, else the members' mean."""
    if fit.medoids is not None:
        return Z[np.asarray(fit.medoids)[order]]
    if fit.centers is not None:
        return np.asarray(fit.centers, dtype=np.float32)[order]
    return member_means(Z, labels, num_clusters)


def member_means(X, labels, num_clusters):
    """Mean of each cluster's rows (noise excluded)."""
    sums, counts = cluster_sums(X, labels, num_clusters)
    return sums / counts[:, None]


def radii(distances, labels, num_clusters, q=95):
    """The distance within which ``q``% of each cluster's members lie."""
    return [float(np.percentile(distances[labels == c], q)) for c in range(num_clusters)]


def distances_to_centre(Z, labels, centre_rows):
    """Per-sample distance to its own cluster's centre (NaN for noise),
    from each row minus its centre, a chunk at a time, a block of rows per
    core: one pass over the rows, and a sample at its centre (a medoid) is
    exactly 0."""
    C = np.asarray(centre_rows, dtype=np.float32)
    out = np.full(len(Z), np.nan, dtype=np.float32)
    chunk = rows_per_block(Z.shape[1], Z.itemsize)

    def block(low, high):
        for start in range(low, high, chunk):
            stop = min(high, start + chunk)
            own = labels[start:stop]
            member = np.flatnonzero(own >= 0)
            diff = Z[start:stop][member] - C[own[member]]
            out[start + member] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    by_rows(len(Z), block)
    return out


def representatives(labels, distances, strengths, num_clusters, k=NUM_REPRESENTATIVES):
    """Indices of each cluster's most typical members, most typical first:
    nearest the centre, or highest membership strength when the method
    provides one (HDBSCAN), ties broken by distance."""
    reps = []
    for c in range(num_clusters):
        members = np.flatnonzero(labels == c)
        if strengths is not None:
            order = np.lexsort((distances[members], -strengths[members]))
        else:
            order = np.argsort(distances[members], kind="stable")
        reps.append(members[order[:k]])
    return reps


def sample_indices(n, rng, cap=METRICS_SAMPLE):
    """A fixed random subset of at most ``cap`` indices, for O(n^2) metrics."""
    return np.sort(rng.choice(n, cap, replace=False)) if n > cap else np.arange(n)


def internal_metrics(Z, labels, rng):
    """Silhouette, Davies-Bouldin, Calinski-Harabasz (noise excluded, on a
    capped sample) and the noise share."""
    from sklearn import metrics

    out = dict(
        noise_fraction=float(np.mean(labels < 0)),
        sample_size=None, silhouette=None, davies_bouldin=None,
        calinski_harabasz=None,
    )
    idx = sample_indices(len(Z), rng)
    idx = idx[labels[idx] >= 0]
    sample_labels = labels[idx]
    if len(np.unique(sample_labels)) < 2 or len(np.unique(sample_labels)) >= len(idx):
        return out
    out["sample_size"] = int(len(idx))
    out["silhouette"] = silhouette_of(Z[idx], sample_labels)
    out["davies_bouldin"] = float(metrics.davies_bouldin_score(Z[idx], sample_labels))
    out["calinski_harabasz"] = float(metrics.calinski_harabasz_score(Z[idx], sample_labels))
    return out


def pairwise_distances(Z):
    """Euclidean distances between the rows of ``Z``, as one float32 matrix
    (see ``distance_blocks``). A sweep over k computes them once."""
    return next(distance_blocks(Z, len(Z)))[1]


def distance_blocks(Z, rows=_SILHOUETTE_ROWS):
    """``(start, block)`` for each ``rows`` rows of ``Z``: their Euclidean
    distances to every row, as float32 products of the centred rows
    (centring keeps float32 close to exact), a row's own distance exactly 0.
    The blocks share one buffer: fresh memory the size of every distance
    cost more than the products (a machine may hand freed memory back)."""
    Z = np.asarray(Z, dtype=np.float32)
    Z = Z - Z.mean(axis=0, dtype=np.float64).astype(np.float32)
    squared = np.einsum("ij,ij->i", Z, Z)
    n = len(Z)
    buffer = np.empty((min(rows, n), n), dtype=np.float32)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        D = buffer[:stop - start]
        np.matmul(Z[start:stop], Z.T, out=D)
        D *= -2
        D += squared[start:stop, None]
        D += squared[None, :]
        np.maximum(D, 0, out=D)
        np.sqrt(D, out=D)
        D[np.arange(stop - start), np.arange(start, stop)] = 0
        yield start, D


def silhouette(D, labels):
    """The mean silhouette of ``labels`` over the distances ``D``, as
    scikit-learn's ``silhouette_score`` defines it (a sample alone in its
    cluster scores 0), from one product of ``D`` with the memberships
    instead of scikit-learn's float64 pass over every distance per call."""
    codes, member = _membership(labels, D.dtype)
    return _mean_silhouette(D @ member, codes)


def silhouette_of(Z, labels):
    """``silhouette`` of the rows ``Z``, its distances a block at a time."""
    codes, member = _membership(labels, np.float32)
    sums = np.empty(member.shape, dtype=np.float32)
    for start, D in distance_blocks(Z):
        np.matmul(D, member, out=sums[start:start + len(D)])
    return _mean_silhouette(sums, codes)


def _membership(labels, dtype):
    """``(codes, member)``: labels as 0..k-1 and the n x k membership matrix."""
    _, codes = np.unique(labels, return_inverse=True)
    member = np.zeros((len(codes), int(codes.max()) + 1), dtype=dtype)
    member[np.arange(len(codes)), codes] = 1
    return codes, member


def _mean_silhouette(sums, codes):
    """The mean silhouette from each sample's summed distance to each cluster."""
    sizes = np.bincount(codes, minlength=sums.shape[1])
    means = sums.astype(np.float64) / sizes
    rows = np.arange(len(codes))
    own = sizes[codes]
    within = means[rows, codes] * own / np.maximum(own - 1, 1)
    means[rows, codes] = np.inf
    nearest = means.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.nan_to_num((nearest - within) / np.maximum(within, nearest))
    return float(np.where(own > 1, scores, 0.0).mean())


def external_metrics(labels, truth):
    """Agreement with a ground-truth labelling (noise counts as one group)."""
    from sklearn import metrics

    truth = np.asarray([str(t) for t in truth])
    return dict(
        ari=float(metrics.adjusted_rand_score(truth, labels)),
        nmi=float(metrics.normalized_mutual_info_score(truth, labels)),
        homogeneity=float(metrics.homogeneity_score(truth, labels)),
        completeness=float(metrics.completeness_score(truth, labels)),
        num_samples=int(len(truth)),
    )
