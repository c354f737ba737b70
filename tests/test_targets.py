"""Every target: small ones cluster with the defaults, one or two samples
get a plain message, views whose rows are not samples (patches, frames,
clips) and label embeddings are refused before anything is recorded, and
degenerate data is said so."""

import numpy as np
import pytest

import fiftyone as fo
from conftest import blobs, make_dataset, operator, plugin_module, snapshot

params = plugin_module("clustering.params")


def compute(collection, **kwargs):
    return operator("compute_clusters")(collection, embeddings=kwargs.pop("embeddings", "pixels"),
                                        progress=False, **kwargs)


@pytest.mark.parametrize("n", [10, 20, 50])
@pytest.mark.parametrize("method", ["kmeans", "hdbscan", "kmedoids", "agglomerative"])
def test_small_targets_cluster_with_the_defaults(digits, n, method):
    view = digits.take(n, seed=n)
    summary = compute(view, run_key=f"small_{method}_{n}", method=method, random_state=0)
    assert summary["num_samples"] == n
    assert sum(summary["sizes"]) + summary["noise"] == n
    assert summary["num_clusters"] >= 2
    counts = digits.count_values(f"small_{method}_{n}_cluster")
    assert sum(v for k, v in counts.items() if k is not None) == n
    prepare = digits.get_run_info(f"small_{method}_{n}").config.prepare
    assert prepare["reduce"] == "none"  # no neighbour graph on a handful of points


def test_small_targets_bound_explicit_reductions(digits):
    view = digits.take(12, seed=1)
    compute(view, run_key="small_pca", method="kmeans", kmeans__n_clusters=3,
            reduce="pca", n_components=50)
    assert digits.get_run_info("small_pca").config.prepare["n_components"] == 10
    compute(view, run_key="small_umap", method="kmeans", kmeans__n_clusters=3, reduce="umap",
            random_state=0)
    prepare = digits.get_run_info("small_umap").config.prepare
    assert prepare["n_components"] == 10 and prepare["umap"]["n_neighbors"] == 11


@pytest.mark.parametrize("n", [1, 2])
def test_one_or_two_samples_get_a_plain_message(digits, n):
    view = digits.take(n, seed=0)
    before = snapshot(digits)
    with pytest.raises(params.InputError, match=f"Only {n} sample.* clustering needs at least 3"):
        compute(view, run_key="tiny", method="kmeans")
    assert snapshot(digits) == before


@pytest.fixture(scope="module")
def videos():
    dataset = fo.Dataset()
    rng = np.random.default_rng(0)
    for i in range(4):
        sample = fo.Sample(filepath=f"/tmp/clusterlab/v{i}.mp4", embedding=rng.random(8))
        for f in range(1, 6):
            sample.frames[f] = fo.Frame(filepath=f"/tmp/clusterlab/v{i}_{f}.jpg",
                                        embedding=rng.random(8))
        sample["events"] = fo.TemporalDetections(detections=[
            fo.TemporalDetection(label="a", support=[1, 3]),
            fo.TemporalDetection(label="b", support=[2, 5])])
        dataset.add_sample(sample)
    yield dataset
    dataset.delete()


@pytest.mark.parametrize("kind", ["frames", "clips"])
def test_frames_and_clips_views_are_refused_before_anything_is_recorded(videos, kind):
    view = videos.to_frames(sample_frames=False) if kind == "frames" else videos.to_clips(
        "events")
    before = snapshot(videos)
    with pytest.raises(params.InputError, match=f"The target is a {kind} view"):
        compute(view, run_key=f"on_{kind}", embeddings="embedding", method="kmeans",
                kmeans__n_clusters=2)
    assert snapshot(videos) == before
    # the videos themselves, one vector per sample, cluster fine
    summary = compute(videos, run_key="videos", embeddings="embedding", method="kmeans",
                      kmeans__n_clusters=2)
    assert summary["num_samples"] == len(videos)
    operator("delete_clustering_run")(videos, "videos")


@pytest.fixture
def with_objects():
    X, y = blobs(30, 6, centers=3, seed=2)
    dataset = make_dataset(X, y)
    for sample, x in zip(dataset, X):
        sample["objects"] = fo.Detections(detections=[
            fo.Detection(label="thing", bounding_box=[0.1, 0.1, 0.5, 0.5], embedding=x)])
        sample.save()
    yield dataset
    dataset.delete()


def test_patches_views_and_label_embeddings_are_refused(with_objects):
    before = snapshot(with_objects)
    with pytest.raises(params.InputError, match="The target is a patches view"):
        compute(with_objects.to_patches("objects"), run_key="patches",
                embeddings="embedding", method="kmeans", kmeans__n_clusters=3)
    with pytest.raises(params.ParameterError, match="holds vectors of labels") as raised:
        compute(with_objects, run_key="objects", embeddings="objects.detections.embedding",
                method="kmeans", kmeans__n_clusters=3)
    assert "'Embeddings field' (embeddings)" in str(raised.value)
    assert snapshot(with_objects) == before


@pytest.mark.parametrize("method,extra", [
    ("kmeans", dict(kmeans__n_clusters=4)),
    ("kmeans", {}),  # k chosen automatically
    ("hdbscan", {}),
])
def test_identical_vectors_form_one_cluster_and_say_so(method, extra):
    dataset = make_dataset([np.full(16, 0.25, dtype=np.float32)] * 300)
    summary = compute(dataset, run_key="same", embeddings="embedding", method=method, **extra)
    assert summary["sizes"] == [300] and summary["noise"] == 0
    assert any("identical" in note for note in summary["notes"])
    assert "identical" in summary["summary"]
    assert dataset.count_values("same_cluster") == {"0": 300}
    assert dataset.load_run_results("same").notes == summary["notes"]
    dataset.delete()


def test_fewer_distinct_vectors_than_clusters_is_said(caplog):
    rows = [np.eye(8, dtype=np.float32)[i % 3] for i in range(90)]
    dataset = make_dataset(rows)
    summary = compute(dataset, run_key="three", embeddings="embedding", method="kmeans",
                      kmeans__n_clusters=5, reduce="none", random_state=0)
    assert summary["sizes"] == [30, 30, 30]
    assert any("found 3 clusters where 5 were asked" in note for note in summary["notes"])
    dataset.delete()
