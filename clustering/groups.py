"""Two levels: a run's clusters joined into groups of clusters that look alike.

Ward linkage over the cluster centres in the run's prepared space, each
centre weighted by its cluster's size, so that joining two clusters costs
what joining their samples would. The tree is cut at ``n_groups``, else at
the largest jump between successive merge heights (the coarse level sought).
Without such a jump the clusters are groups of their own when the first
merge jumps from the clusters' own scale (the height at which a cluster's
two halves would join: they stand apart), else they form one group. Group
ids are ranks by size, as cluster ids are; noise is group "-1" as it is
cluster "-1".
"""

from dataclasses import dataclass

import numpy as np

from .methods import MAX_CLUSTERS
from .params import Param
from .quality import member_means

N_GROUPS = Param("n_groups", int, None,
                 "Number of groups the clusters are joined into (the run's coarse level, "
                 "field <run_key>_group)", low=1, high=MAX_CLUSTERS,
                 empty="a cut where the merge heights jump", label="Groups")
PREFIX = "g"  # a group as open_cluster takes it: "g0" is group 0
# A cut needs the next merge this many times higher than the last one made;
# clusters of structureless data (a Gaussian, a uniform cube) give 1.2 to 1.9.
MIN_JUMP = 2.0
# The clusters' own scale is measured on this many of the largest clusters,
# on this many members of each.
SCALE_CLUSTERS, SCALE_MEMBERS = 50, 128


@dataclass
class Grouping:
    """Each cluster's group, the merge heights and where they were cut."""

    of_cluster: np.ndarray
    heights: list
    floor: float
    automatic: bool

    @property
    def num_groups(self):
        return int(self.of_cluster.max()) + 1

    def labels(self, cluster_labels):
        """Each sample's group from its cluster (noise stays -1)."""
        cluster_labels = np.asarray(cluster_labels)
        return np.where(cluster_labels >= 0,
                        self.of_cluster[np.maximum(cluster_labels, 0)], -1)

    def records(self, sizes):
        """The groups as the run records them: id, size, its clusters."""
        return [dict(id=str(g), size=int(sizes[self.of_cluster == g].sum()),
                     clusters=[str(c) for c in np.flatnonzero(self.of_cluster == g)])
                for g in range(self.num_groups)]

    def info(self):
        """What the run records of the cut: the merge heights (lowest
        first), the clusters' own scale, and whether the cut was automatic."""
        return dict(heights=[float(f"{h:.4g}") for h in self.heights],
                    floor=float(f"{self.floor:.4g}"), automatic=self.automatic)


def find(Z, labels, sizes, n_groups=None):
    """The groups of the clusters ``labels`` (0..k-1 by size, -1 noise) of
    the prepared features ``Z``: ``n_groups`` of them (at most k), else as
    many as the largest jump of the merge heights leaves."""
    k = len(sizes)
    sizes = np.asarray(sizes, dtype=np.float64)
    merges = ward(member_means(Z, labels, k).astype(np.float64), sizes)
    heights = [h for _, _, h in merges]
    floor = own_scale(Z, labels, k)
    count = min(n_groups, k) if n_groups else cut(heights, floor)
    return Grouping(_by_size(_join(merges, k, k - count), sizes), heights, floor,
                    automatic=not n_groups)


def ward(centres, sizes):
    """Ward's merges of weighted points (nearest-neighbour chain, O(k^2)
    time, O(k) memory): ``[(a, b, height)]`` lowest first, nodes numbered
    as scipy does (the i-th merge, lowest first, creates node k + i)."""
    k = len(centres)
    C = np.vstack([centres, np.zeros((max(k - 1, 0), centres.shape[1]))])
    n = np.concatenate([sizes, np.zeros(max(k - 1, 0))])
    alive = np.zeros(len(n), dtype=bool)
    alive[:k] = True
    made, chain = [], []
    while len(made) < k - 1:
        if not chain:
            chain.append(int(np.flatnonzero(alive)[0]))
        a = chain[-1]
        others = np.flatnonzero(alive)
        others = others[others != a]
        cost = n[a] * n[others] / (n[a] + n[others]) * ((C[others] - C[a]) ** 2).sum(1)
        b = int(others[np.argmin(cost)])
        if len(chain) > 1 and cost[others == chain[-2]][0] <= cost.min():
            b = chain[-2]
        if len(chain) > 1 and b == chain[-2]:
            chain.pop(), chain.pop()
            m = k + len(made)
            n[m] = n[a] + n[b]
            C[m] = (n[a] * C[a] + n[b] * C[b]) / n[m]
            alive[[a, b]], alive[m] = False, True
            made.append((a, b, float(np.sqrt(2 * cost[others == b][0]))))
        else:
            chain.append(b)
    order = sorted(range(len(made)), key=lambda i: (made[i][2], i))
    renumber = {k + old: k + new for new, old in enumerate(order)}
    return [(renumber.get(a, a), renumber.get(b, b), h)
            for a, b, h in (made[i] for i in order)]


def own_scale(Z, labels, k):
    """The clusters' own scale: the median Ward height at which a cluster's
    two halves (split across its principal axis) would join, over the
    largest clusters, measured on a fixed subset of their members."""
    heights = []
    for c in range(min(k, SCALE_CLUSTERS)):
        members = np.flatnonzero(labels == c)
        if len(members) < 2:
            continue
        shown = members[np.linspace(0, len(members) - 1,
                                    min(len(members), SCALE_MEMBERS)).astype(int)]
        R = Z[shown].astype(np.float64)
        R -= R.mean(axis=0)
        # the sides of the principal axis: the signs of the Gram matrix's top
        # eigenvector (small whatever the dimension)
        side = np.linalg.eigh(R @ R.T)[1][:, -1] > 0
        share = side.mean()
        if 0 < share < 1:
            gap = R[side].mean(axis=0) - R[~side].mean(axis=0)
            heights.append(np.sqrt(2 * len(members) * share * (1 - share) * gap @ gap))
    return float(np.median(heights)) if heights else 0.0


def cut(heights, floor):
    """How many groups the merge ``heights`` (lowest first) fall into: cut
    at their largest jump if it reaches MIN_JUMP; else k groups if the
    first merge is that far above ``floor`` (the clusters' own scale), else
    one group."""
    k = len(heights) + 1
    if k == 1:
        return 1
    levels = np.maximum(np.concatenate([[floor], heights]), 1e-12)
    jumps = levels[1:] / levels[:-1]
    at = int(np.argmax(jumps[1:])) + 1 if k > 2 else 0
    if jumps[at] >= MIN_JUMP:
        return k - at
    return k if jumps[0] >= MIN_JUMP else 1


def _join(merges, k, count):
    """Each of the k leaves' root after the first ``count`` merges."""
    root = list(range(k))
    leaf = list(range(k)) + [None] * len(merges)

    def find_root(i):
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    for i, (a, b, _) in enumerate(merges[:count]):
        ra, rb = find_root(leaf[a]), find_root(leaf[b])
        root[rb] = ra
        leaf[k + i] = ra
    return np.array([find_root(i) for i in range(k)])


def _by_size(roots, sizes):
    """Group numbers 0, 1, ... from the largest group down (ties: the one
    holding the lower cluster id first)."""
    first = {}
    for cluster, root in enumerate(roots.tolist()):
        first.setdefault(root, cluster)
    total = np.bincount(roots, weights=sizes, minlength=len(roots))
    order = sorted(first, key=lambda r: (-total[r], first[r]))
    rank = {r: i for i, r in enumerate(order)}
    return np.array([rank[r] for r in roots.tolist()])


def notes(grouping, n_groups):
    """What the run's notes say about its groups, when they need a word."""
    k = len(grouping.of_cluster)
    if n_groups and n_groups > k:
        return [f"{n_groups} groups were asked for {k} clusters: each cluster is a "
                "group of its own."]
    if grouping.automatic and grouping.num_groups == 1 and k > 2:
        return [f"The clusters form one group: their merge heights rise smoothly (no "
                f"merge is {MIN_JUMP:g} times higher than the one before). Set n_groups "
                "for a coarser level anyway."]
    return []


def interleave(lists):
    """The items of ``lists`` taken in turn: each list's first, then each
    one's second, ... (a group's clusters' most typical samples)."""
    longest = max((len(items) for items in lists), default=0)
    return [items[i] for i in range(longest) for items in lists if i < len(items)]


def field(run_key):
    """The sample field holding run ``run_key``'s groups."""
    return f"{run_key}_group"
