"""A clustering run killed inside its commit (``CLUSTERLAB_FAILPOINT``):
the group field is written in the same updates as the cluster field, so
after the kill the next call of the plugin shows the old run or the new
one, whole, its group field agreeing with its cluster field and its
recorded groups."""

import signal
import sys

import pytest

from conftest import REPO, operator

from .test_kills import Child, staged_left

pytestmark = pytest.mark.e2e
N, D = 5_000, 16


@pytest.fixture(scope="module")
def dataset():
    sys.path.insert(0, REPO)
    from bench import data

    dataset = data.dataset(N, D, 8, seed=4, persistent=False)
    yield dataset
    dataset.delete()


def whole_run(dataset, key):
    """``(clusters, groups)`` of run ``key`` as the next call finds them,
    after checking that its fields and its record agree on every sample."""
    info = operator("get_clustering_run_info")(dataset, key)  # the next call
    dataset.reload()
    group_of = {c["id"]: g["id"] for g in info["groups"] for c in g["clusters"]}
    clusters, groups = dataset.values([f"{key}_cluster", f"{key}_group"])
    assert len(clusters) == N and None not in clusters
    assert groups == [group_of[c] for c in clusters]
    assert {g["id"]: g["size"] for g in info["groups"]} == dataset.count_values(f"{key}_group")
    assert staged_left() == (0, 0)
    return info["config"]["num_clusters"], len(info["groups"])


@pytest.mark.parametrize("failpoint,fields,whole", [
    ("staged", (4, 2), (4, 2)),     # nothing applied: the old run, whole
    ("step0", (6, 3), (6, 3)),      # both fields new, the old record: rolled forward
])
def test_overwrite_killed_inside_the_commit(dataset, failpoint, fields, whole):
    params = dict(embeddings="embedding", method="kmeans", kmeans__n_init=1, reduce="none",
                  random_state=0)
    operator("compute_clusters")(dataset, run_key="two", kmeans__n_clusters=4, n_groups=2,
                                 overwrite=True, progress=False, **params)
    assert whole_run(dataset, "two") == (4, 2)
    child = Child(dataset, "compute_clusters", failpoint=failpoint, run_key="two",
                  kmeans__n_clusters=6, n_groups=3, overwrite=True, progress=True, **params)
    assert child.wait() == -signal.SIGKILL, child.err[-2000:]
    dataset.reload()  # as the kill left it: the group field moves with the cluster field
    assert (len(dataset.distinct("two_cluster")), len(dataset.distinct("two_group"))) == fields
    assert whole_run(dataset, "two") == whole
