"""A run's map under SIGKILL: an overwrite killed inside its commit leaves,
after the next call, the old run with its old map or the new run with its
new map (or none), never one run with the other's map."""

import signal
import sys

import pytest

from conftest import REPO, blob_dataset_of, operator

from .test_kills import Child, UserError, staged_left

pytestmark = pytest.mark.e2e

N, D, K = 3000, 16, 4


@pytest.fixture(scope="module")
def dataset():
    dataset = blob_dataset_of(N, D, centers=K, seed=7)
    yield dataset
    dataset.delete()


def map_state(dataset):
    """The map the next call shows (its method, or None), after checking
    that the run records exactly the brain run that exists and that the map
    covers every sample of the run."""
    info = operator("get_clustering_run_info")(dataset, "mapped")  # the next call
    dataset.reload()
    recorded = info["config"]["map"]
    assert staged_left() == (0, 0)
    if recorded is None:
        assert dataset.list_brain_runs() == []
        return None
    assert dataset.list_brain_runs() == [recorded["brain_key"]] == ["mapped_map"]
    results = dataset.load_brain_results("mapped_map")
    assert sorted(results.sample_ids) == sorted(dataset.values("id"))
    assert results.points.shape == (N, 2)
    return recorded["method"]


@pytest.mark.parametrize("failpoint,new_map,shown", [
    ("staged", "umap", "pca"),      # not committed: the old run and its map
    ("committed", "umap", "umap"),  # committed: recovery records the new map
    ("committed", "none", None),    # committed: the old map is deleted
])
def test_overwrite_killed_inside_the_commit_keeps_run_and_map_together(
        dataset, failpoint, new_map, shown):
    params = dict(embeddings="embedding", method="kmeans", kmeans__n_clusters=K,
                  reduce="none", random_state=0, overwrite=True)
    operator("compute_clusters")(dataset, run_key="mapped", map="pca", progress=False,
                                 **params)
    child = Child(dataset, "compute_clusters", failpoint=failpoint, run_key="mapped",
                  map=new_map, progress=False, **params)
    assert child.wait() == -signal.SIGKILL, child.err[-2000:]
    assert map_state(dataset) == shown


@pytest.fixture
def helped():
    """A dataset large enough for a run to start the map's UMAP helper."""
    sys.path.insert(0, REPO)
    from bench import data

    dataset = data.dataset(20_000, 16, K, seed=5, persistent=False)
    yield dataset
    dataset.delete()


def test_a_killed_run_takes_its_umap_helper_with_it(helped):
    """A fresh process's run starts a helper for the map's UMAP; killed, it
    leaves no helper behind (the helper reads the end of its input), and
    nothing staged."""
    import psutil

    dataset = helped
    child = Child(dataset, "compute_clusters", run_key="helped", map="umap",
                  embeddings="embedding", method="kmeans", kmeans__n_clusters=K,
                  reduce="none", random_state=0, progress=False)
    helpers = []

    def helping():
        helpers[:] = [p for p in psutil.Process(child.process.pid).children()
                      if "umap_process.py" in " ".join(p.cmdline())]
        return bool(helpers)
    assert child.kill_on(helping) == -signal.SIGKILL
    gone, alive = psutil.wait_procs(helpers, timeout=60)
    assert len(gone) == 1 and not alive
    with pytest.raises(UserError, match="has no run"):  # the next call
        operator("get_clustering_run_info")(dataset, "helped")
    assert staged_left() == (0, 0)
    dataset.reload()
    assert "helped" not in dataset.list_runs() and not dataset.has_field("helped_cluster")
