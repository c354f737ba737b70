"""A patch run under SIGKILL: an overwrite killed inside its commit, or
while the objects' values are rewritten, leaves (after the next call) the
old run or the new one whole, on every object."""

import signal

import numpy as np
import pytest

import fiftyone as fo
from conftest import blobs, operator

from .test_kills import Child, staged_left

pytestmark = pytest.mark.e2e

SAMPLES, PER, D = 2500, 3, 32


@pytest.fixture(scope="module")
def objects():
    X, _ = blobs(SAMPLES * PER, D, centers=8, seed=5)
    dataset = fo.Dataset()
    dataset.add_samples([fo.Sample(filepath=f"/tmp/clusterlab/o{i}.png", ground_truth=fo.Detections(
        detections=[fo.Detection(label="o", bounding_box=[j / PER, 0, 1 / PER, 1],
                                 embedding=X[i * PER + j]) for j in range(PER)]))
        for i in range(SAMPLES)], progress=False)
    yield dataset
    dataset.delete()


PARAMS = dict(embeddings="embedding", patches_field="ground_truth", method="kmeans",
              reduce="none", random_state=0, map="none")


def state(dataset):
    """The next call's run of key "obj": its k, after checking that every
    object holds a cluster of that run and the sizes agree."""
    info = operator("get_clustering_run_info")(dataset, "obj")
    dataset.reload()
    values = dataset.values("ground_truth.detections.obj_cluster", unwind=True)
    assert len(values) == SAMPLES * PER and None not in values
    counts = {c: values.count(c) for c in set(values)}
    assert {c["id"]: c["size"] for c in info["clusters"]} == counts
    assert staged_left() == (0, 0)
    return info["config"]["params"]["n_clusters"]


@pytest.mark.parametrize("failpoint,k", [("staged", 3), ("committed", 5)])
def test_patch_overwrite_killed_inside_the_commit(objects, failpoint, k):
    operator("compute_clusters")(objects, run_key="obj", kmeans__n_clusters=3, overwrite=True,
                                 progress=False, **PARAMS)
    child = Child(objects, "compute_clusters", failpoint=failpoint, run_key="obj",
                  kmeans__n_clusters=5, overwrite=True, progress=False, **PARAMS)
    assert child.wait() == -signal.SIGKILL, child.err[-2000:]
    assert state(objects) == k


def test_patch_overwrite_killed_while_the_objects_are_rewritten(objects):
    operator("compute_clusters")(objects, run_key="obj", kmeans__n_clusters=3, overwrite=True,
                                 progress=False, **PARAMS)

    def rewriting():  # the old values are being removed (patch runs unset first)
        return objects._sample_collection.count_documents(
            {"ground_truth.detections": {"$elemMatch": {"obj_cluster": {"$exists": False}}}}) > 0

    child = Child(objects, "compute_clusters", run_key="obj", kmeans__n_clusters=6,
                  overwrite=True, progress=False, **PARAMS)
    assert child.kill_on(rewriting) == -signal.SIGKILL
    assert state(objects) == 6
    assert np.isin(objects.distinct("ground_truth.detections.obj_cluster"),
                   [str(i) for i in range(6)]).all()
