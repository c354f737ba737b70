"""K-means at the machine's speed: k-means++ tried on a subsample, then
Lloyd iterations whose cost is one matrix product each.

scikit-learn's Lloyd loop runs at about a tenth of the machine's matrix
product rate on large data. Here an iteration assigns samples with one
float32 matrix product per chunk of rows (BLAS), and updates the centres
from the samples that changed cluster only (float64 sums), so it costs
little more than its product. With one k-means++ start the result depends
on the seed (ARI 0.93-0.98 on 100k blobs); the best of several starts on a
subsample, each refined by Lloyd iterations there, is as good as several
full runs for the price of a few full iterations. The escapes from a poor
local optimum (``_swaps``) are tried on a larger subsample before all of
the data, where each would cost a full Lloyd run.
"""

import threading

import numpy as np

from .cores import by_rows, rows_per_block

PER_CLUSTER = 50  # samples per cluster the starts are tried on
REFINE_PER_CLUSTER = 500  # samples per cluster the best start is refined on
STARTS = 5  # starts tried when n_init is 'auto'
_work = threading.local()  # sample-centre products this thread's fit stands for


def kmeans(X, n_clusters, init="k-means++", n_init=None, max_iter=300, tol=1e-4,
           random_state=None):
    """``(labels, centres, inertia, n_iter)`` of k-means on float32 ``X``.

    ``n_init=None`` ('auto') tries STARTS starts on a subsample, refines the
    best on a larger one, runs Lloyd once on all of ``X`` from it, then
    tries swaps; an integer runs that many full k-means, as scikit-learn
    does, and keeps the lowest inertia. ``tol`` is scikit-learn's: relative
    to the data's mean variance. ``n_iter`` counts the Lloyd iterations
    run, in iterations over all of ``X``: those on subsamples pro rata,
    seeding and each run's first assignment included; each as a plain Lloyd
    iteration costs (every sample against every centre), though the bounds
    skip most of that.
    """
    _work.products = 0
    X = np.ascontiguousarray(X, dtype=np.float32)
    rng = np.random.default_rng(random_state)
    x_sq = np.einsum("ij,ij->i", X, X)
    mean = _column_sums(X) / len(X)
    tol = tol * max(float(x_sq.sum(dtype=np.float64) / len(X) - mean @ mean), 0) / X.shape[1]
    if n_init is None:
        centres = _best_start(X, x_sq, n_clusters, init, max_iter, tol, rng)
        centres = _refined(X, x_sq, centres, max_iter, tol, rng)
        best = _swaps(X, x_sq, _lloyd(X, x_sq, centres, max_iter, tol), max_iter, tol, rng)
    else:
        best = None
        for _ in range(n_init):
            fit = _lloyd(X, x_sq, _starts(X, x_sq, n_clusters, init, 1, rng)[0], max_iter, tol)
            if best is None or fit[2] < best[2]:
                best = fit
    return best[:3] + (_work.products / (len(X) * n_clusters),)


def _starts(X, x_sq, k, init, count, rng):
    """``count`` sets of initial centres: greedy k-means++ (as
    scikit-learn's: 2 + log k candidates per centre, the one lowering the
    potential most kept), all sets grown together so that each pass over
    ``X`` is one matrix product; or k random samples each."""
    if init == "random":
        return [X[rng.choice(len(X), k, replace=False)].copy() for _ in range(count)]
    trials = 2 + int(np.log(k))
    starts = np.empty((count, k, X.shape[1]), dtype=np.float32)
    first = rng.integers(len(X), size=count)
    starts[:, 0] = X[first]
    closest = _sq_dist(X, x_sq, X[first])  # (n, count)
    for c in range(1, k):
        weights = np.cumsum(closest, axis=0, dtype=np.float64)
        draws = rng.random((trials, count)) * weights[-1]
        picks = np.stack([np.searchsorted(weights[:, s], draws[:, s]) for s in range(count)],
                         axis=1).clip(max=len(X) - 1)  # (trials, count)
        dist = _sq_dist(X, x_sq, X[picks.ravel()]).reshape(len(X), trials, count)
        np.minimum(dist, closest[:, None, :], out=dist)
        best = dist.sum(axis=0, dtype=np.float64).argmin(axis=0)  # (count,)
        starts[:, c] = X[picks[best, np.arange(count)]]
        closest = dist[:, best, np.arange(count)]
    return list(starts)


def _sq_dist(X, x_sq, C):
    """Squared distances of every row of ``X`` to every row of ``C``."""
    _work.products += len(X) * len(C)
    d = X @ C.T
    d *= -2
    d += x_sq[:, None]
    d += np.einsum("ij,ij->i", C, C)
    return np.maximum(d, 0, out=d)


def _best_start(X, x_sq, k, init, max_iter, tol, rng):
    """The centres of the best of STARTS k-means runs on a subsample of
    PER_CLUSTER samples per cluster."""
    size = min(len(X), PER_CLUSTER * k)
    if size < len(X):
        rows = np.sort(rng.choice(len(X), size, replace=False))
        X, x_sq = X[rows], x_sq[rows]
    best = None
    for start in _starts(X, x_sq, k, init, STARTS, rng):
        fit = _lloyd(X, x_sq, start, max_iter, tol)
        if best is None or fit[2] < best[2]:
            best = fit
    return best[1]


def _refined(X, x_sq, centres, max_iter, tol, rng):
    """``centres`` after Lloyd and swaps on a subsample of REFINE_PER_CLUSTER
    samples per cluster: a swap tried there costs a fraction of one tried on
    all of ``X`` (a million rows: two full Lloyd runs of about 2 s each).
    The subsample stays rows of ``X``, gathered a block at a time: a copy of
    it (51 MB at k=50, d=512) would be fresh memory, which a first run pays
    for at the rate the host hands it over (0.1-0.2 s here)."""
    size = REFINE_PER_CLUSTER * len(centres)
    if size >= len(X):
        return centres
    rows = np.sort(rng.choice(len(X), size, replace=False))
    fit = _lloyd(X, x_sq, centres, max_iter, tol, rows)
    return _swaps(X, x_sq, fit, max_iter, tol, rng, rows)[1]


def assign(X, x_sq, centres, rows=None):
    """Each row's nearest centre, its distance to it and to the second
    nearest (Euclidean), one matrix product per chunk of rows (all rows, or
    those indexed by ``rows``): |x - c|^2 = |x|^2 - 2 x.c + |c|^2, where
    the nearest and second nearest are found from |c|^2 - 2 x.c alone and
    |x|^2 is added to those two only."""
    minus_twice = -2 * centres
    c_sq = np.einsum("ij,ij->i", centres, centres)
    n = len(X) if rows is None else len(rows)
    labels = np.empty(n, dtype=np.int64)
    first = np.empty(n, dtype=np.float32)
    second = np.full(n, np.inf, dtype=np.float32)
    chunk = rows_per_block(X.shape[1], X.itemsize)
    for start in range(0, n, chunk):
        part = slice(start, start + chunk) if rows is None else rows[start:start + chunk]
        block = X[part] @ minus_twice.T
        block += c_sq
        at = np.arange(len(block))
        nearest = block.argmin(axis=1)
        labels[start:start + chunk] = nearest
        first[start:start + chunk] = block[at, nearest]
        if block.shape[1] > 1:
            block[at, nearest] = np.inf
            second[start:start + chunk] = block.min(axis=1)
    rows_sq = x_sq if rows is None else x_sq[rows]
    return labels, _root(first, rows_sq), _root(second, rows_sq)


def _root(partial, rows_sq):
    """Distances from ``partial`` squared distances lacking |x|^2, in place."""
    partial += rows_sq
    return np.sqrt(np.maximum(partial, 0, out=partial), out=partial)


def _column_sums(X):
    """Sums of the columns of ``X``, a chunk of rows per (float32) matrix
    product, the chunks added in float64: a quarter of the time of
    ``X.sum(axis=0, dtype=float64)``, close enough for a tolerance."""
    chunk = rows_per_block(X.shape[1], X.itemsize)
    ones = np.ones(chunk, dtype=np.float32)
    sums = np.zeros(X.shape[1], dtype=np.float64)
    for start in range(0, len(X), chunk):
        part = X[start:start + chunk]
        sums += ones[:len(part)] @ part
    return sums


def cluster_sums(X, labels, k, rows=None):
    """Per-cluster sums (float64) and sizes of the rows of ``X`` (all, or
    those indexed by ``rows``) in clusters ``labels`` (noise, -1, in none):
    a sparse indicator product per chunk (of rows gathered, a block's
    worth), a block of rows per core."""
    from scipy import sparse

    n = len(X) if rows is None else len(rows)
    chunk = rows_per_block(X.shape[1], X.itemsize) * (8 if rows is None else 1)

    def block(low, high):
        sums = np.zeros((k, X.shape[1]), dtype=np.float64)
        for start in range(low, high, chunk):
            stop = min(high, start + chunk)
            own = labels[start:stop]
            indicator = sparse.csr_matrix(
                ((own >= 0).astype(np.float32), (np.maximum(own, 0), np.arange(len(own)))),
                shape=(k, len(own)))
            sums += indicator @ X[slice(start, stop) if rows is None else rows[start:stop]]
        return sums
    return sum(by_rows(n, block)), np.bincount(labels[labels >= 0], minlength=k)


def _swaps(X, x_sq, fit, max_iter, tol, rng, rows=None, max_swaps=5):
    """Escapes the local optimum Lloyd most often ends in, one cluster
    split across two true groups while two others share one: merges the
    pair of clusters whose merge costs least (Ward's increase of inertia)
    and splits the cluster whose 2-means split gains most, when the gain
    exceeds the cost, then runs Lloyd again; kept only if inertia falls.
    ``fit`` is of the rows of ``X`` indexed by ``rows`` (all when None).
    """
    labels, centres, inertia, _, sse = fit
    k = len(centres)
    if k < 3:
        return fit
    for _ in range(max_swaps):
        counts = np.bincount(labels, minlength=k).astype(np.float64)
        worst = int(np.argmax(sse))
        members = np.flatnonzero(labels == worst)
        if len(members) < 2:
            break
        sample = members if len(members) <= 5000 else rng.choice(members, 5000, replace=False)
        sample = _of(rows, sample)
        part, part_sq = X[sample], x_sq[sample]
        halves = _lloyd(part, part_sq, _starts(part, part_sq, 2, "k-means++", 1, rng)[0],
                        max_iter, tol)
        gain = sse[worst] - halves[2] * len(members) / len(sample)
        ward = counts[:, None] * counts[None, :] / np.maximum(
            counts[:, None] + counts[None, :], 1) * np.maximum(_pairwise_sq(centres), 0)
        ward[worst, :] = ward[:, worst] = np.inf
        np.fill_diagonal(ward, np.inf)
        a, b = np.unravel_index(np.argmin(ward), ward.shape)
        if gain <= ward[a, b]:
            break
        merged = (centres[a] * counts[a] + centres[b] * counts[b]) / (counts[a] + counts[b])
        keep = [j for j in range(k) if j not in (a, b, worst)]
        trial = np.vstack([centres[keep], merged[None, :], halves[1]]).astype(np.float32)
        new = _lloyd(X, x_sq, trial, max_iter, tol, rows)
        if new[2] >= inertia:
            break
        fit = new
        labels, centres, inertia, _, sse = new
    return fit


def _of(rows, picked):
    """Rows of ``X`` for ``picked`` positions among ``rows`` (all rows when None)."""
    return picked if rows is None else rows[picked]


def _lloyd(X, x_sq, centres, max_iter, tol, rows=None):
    """Lloyd's iterations from ``centres`` on the rows of ``X`` indexed by
    ``rows`` (all when None) until the centres move less than ``tol``
    (summed squared shift) or no label changes.

    Exact, with Hamerly's bounds: each sample keeps an upper bound on the
    distance to its centre and a lower bound on the distance to any other;
    as centres move the bounds loosen by the moves, and only samples whose
    bounds overlap are measured again. Once clusters settle, few are.
    """
    k = len(centres)
    own_sq = x_sq if rows is None else x_sq[rows]
    n = len(own_sq)
    labels, upper, lower = assign(X, x_sq, centres, rows)
    sums, counts = cluster_sums(X, labels, k, rows)
    slack = 1e-4 * float(np.sqrt(own_sq.max()))  # float32 rounding of the distances
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        new = _centres(sums, counts, centres, X, upper, rows)
        moves = np.sqrt(((new - centres) ** 2).sum(axis=1))
        centres = new
        upper += moves[labels]
        lower -= moves.max()
        between = np.sqrt(np.maximum(_pairwise_sq(centres), 0))
        np.fill_diagonal(between, np.inf)
        half = 0.5 * between.min(axis=1) if k > 1 else np.full(1, np.inf)
        check = np.flatnonzero(upper + slack > np.maximum(lower, half[labels]))
        moved = np.empty(0, dtype=np.int64)
        if len(check):
            measured = rows if len(check) == n else _of(rows, check)
            sub_labels, sub_upper, sub_lower = assign(X, x_sq, centres, measured)
            upper[check], lower[check] = sub_upper, sub_lower
            moved = check[sub_labels != labels[check]]
            old_labels = labels[moved]
            labels[check] = sub_labels
            if len(moved) > n // 4:
                sums, counts = cluster_sums(X, labels, k, rows)
            elif len(moved):
                at = _of(rows, moved)
                out, _ = cluster_sums(X, old_labels, k, at)
                into, _ = cluster_sums(X, labels[moved], k, at)
                sums += into - out
                counts = np.bincount(labels, minlength=k)
        if len(moved) == 0 or float((moves ** 2).sum()) <= tol:
            break
    _work.products += (n_iter + 1) * n * k  # as plain Lloyd, with the first assignment
    sse = _sse(own_sq, labels, sums, counts, centres)
    return labels, centres, float(sse.sum()), n_iter, sse


def _sse(x_sq, labels, sums, counts, centres):
    """Each cluster's sum of squared distances to its centre, from the
    members' sums: sum |x|^2 - 2 c.sum x + n |c|^2. The labels are already
    each sample's nearest centre (the bounds guarantee it), so no final
    assignment pass over the samples is needed."""
    C = centres.astype(np.float64)
    sq = np.bincount(labels, weights=x_sq, minlength=len(C))
    return np.maximum(sq - 2 * np.einsum("ij,ij->i", C, sums) + counts * np.einsum(
        "ij,ij->i", C, C), 0)


def _pairwise_sq(C):
    c_sq = np.einsum("ij,ij->i", C, C)
    return c_sq[:, None] - 2 * (C @ C.T) + c_sq[None, :]


def _centres(sums, counts, centres, X, dist, rows=None):
    """Means of the clusters; an empty cluster gets the sample (of ``rows``)
    farthest from its centre, as scikit-learn relocates them."""
    new = centres.copy()
    full = counts > 0
    new[full] = (sums[full] / counts[full, None]).astype(np.float32)
    empty = np.flatnonzero(~full)
    if len(empty):
        far = np.argsort(dist)[::-1][:len(empty)]
        new[empty] = X[_of(rows, far)]
    return new
