"""A run's map: a 2-D layout of the features it clustered, recorded as the
brain run ``<run_key>_map`` the App's Embeddings panel shows; deleted,
renamed and replaced with its run."""

import numpy as np
import pytest

import fiftyone.brain as fob
from conftest import blob_dataset_of, blobs, form, make_dataset, operator, plugin_module

ParameterError = plugin_module("clustering.params").ParameterError
layout = plugin_module("clustering.layout")


def compute(dataset, key="runk", **params):
    params = dict(dict(embeddings="embedding", method="kmeans", kmeans__n_clusters=3,
                       random_state=0, progress=False), **params)
    return operator("compute_clusters")(dataset, run_key=key, **params)


@pytest.fixture
def dataset():
    dataset = blob_dataset_of(300, 6, centers=3, seed=2, cluster_std=0.5)
    yield dataset
    dataset.delete()


def test_pca_map_is_the_runs_features_in_the_runs_order(dataset):
    from sklearn.decomposition import PCA

    view = dataset.skip(20)  # a target that is not the whole dataset
    summary = compute(view, map="pca", normalize=False, reduce="none")
    assert summary["map"] == dict(method="pca", brain_key="runk_map")
    assert "Map (pca): brain run `runk_map`" in summary["summary"]
    info = operator("get_clustering_run_info")(dataset, "runk")
    assert info["config"]["map"] == dict(method="pca", brain_key="runk_map")
    assert "map" in [t["stage"] for t in info["timings"]]

    assert dataset.list_brain_runs(type="visualization") == ["runk_map"]
    results = dataset.load_brain_results("runk_map")
    ids, X = view.values(["id", "embedding"])
    assert list(results.sample_ids) == ids
    expected = PCA(2, random_state=0).fit_transform(np.array(X, dtype=np.float32))
    np.testing.assert_allclose(results.points, expected, atol=1e-4)
    assert results.config.method == "manual"


def test_above_map_max_the_map_shows_a_random_part_of_the_run(dataset, monkeypatch):
    from sklearn.decomposition import PCA

    monkeypatch.setattr(layout, "MAP_MAX", 100)
    view = dataset.skip(20)
    summary = compute(view, map="pca", normalize=False, reduce="none")
    results = dataset.load_brain_results("runk_map")
    ids = list(results.sample_ids)
    assert summary["map"] == dict(method="pca", shown=len(ids), brain_key="runk_map")
    assert len(ids) == 100 and set(ids) < set(view.values("id"))  # 100 of 280
    shown = dataset.load_brain_view("runk_map")  # the brain run's view is the run's
    assert [type(s).__name__ for s in shown._stages] == ["Skip"]
    # the points are the map of the samples shown (PCA of their own features)
    X = np.array(dataset.select(ids, ordered=True).values("embedding"), dtype=np.float32)
    expected = PCA(2, random_state=0).fit_transform(X)
    np.testing.assert_allclose(np.abs(results.points), np.abs(expected), atol=1e-4)


@pytest.mark.parametrize("map_max", [None, 1_800])
def test_umap_map_is_the_default_and_keeps_clusters_apart(monkeypatch, map_max):
    from sklearn.neighbors import KNeighborsClassifier

    n = layout.FIT_MAX + 500  # UMAP embeds FIT_MAX of them, the rest are placed
    # wider than placement searches in (its principal components are used)
    dataset = blob_dataset_of(n, 64, centers=5, seed=4, cluster_std=1.0)
    if map_max:  # the map shows a part: the rows placed are read from the run's
        monkeypatch.setattr(layout, "MAP_MAX", map_max)
    try:
        summary = compute(dataset, kmeans__n_clusters=5, reduce="none")
        shown = summary["map"].pop("shown", n)
        assert summary["map"] == dict(method="umap", fitted_on=layout.FIT_MAX,
                                      brain_key="runk_map")
        results = dataset.load_brain_results("runk_map")
        assert results.points.shape == (shown, 2) and np.isfinite(results.points).all()
        assert (shown < n) == bool(map_max)
        labels = dict(zip(*dataset.values(["id", "runk_cluster"])))
        y = [labels[i] for i in results.sample_ids]
        # a sample's map neighbours are of its cluster
        knn = KNeighborsClassifier(5).fit(results.points[::2], y[::2])
        assert knn.score(results.points[1::2], y[1::2]) > 0.95
    finally:
        dataset.delete()


def test_small_and_low_dimensional_targets_get_a_map():
    X, _ = blobs(40, 2, centers=2, seed=1, normalize=False)
    dataset = make_dataset(X)
    try:
        summary = compute(dataset, kmeans__n_clusters=2, map="umap", normalize=False)
        assert summary["map"]["method"] == "features"  # 2-D features are their own map
        np.testing.assert_allclose(dataset.load_brain_results("runk_map").points, X)
        summary = compute(dataset, kmeans__n_clusters=2, map="umap", reduce="pca",
                          n_components=2, overwrite=True)
        assert summary["map"]["method"] == "features"
    finally:
        dataset.delete()
    X, _ = blobs(50, 8, centers=2, seed=1)
    dataset = make_dataset(X)
    try:  # below 100 samples UMAP says little: PCA
        assert compute(dataset, kmeans__n_clusters=2)["map"]["method"] == "pca"
    finally:
        dataset.delete()


def test_delete_removes_the_map(dataset):
    compute(dataset, map="pca")
    compute(dataset, key="other", map="pca")
    operator("delete_clustering_run")(dataset, "runk")
    dataset.reload()
    assert dataset.list_brain_runs() == ["other_map"]


def test_a_map_left_by_a_run_deleted_outside_the_plugin(dataset):
    compute(dataset, map="pca")
    dataset.delete_run("runk")
    with pytest.raises(ParameterError, match=r"'Map' \(map\).*'runk_map'.*Overwrite"):
        compute(dataset, map="pca")
    compute(dataset, map="pca", overwrite=True)  # takes it over
    dataset.delete_run("runk")
    operator("delete_clustering_run")(dataset, "runk")  # removes its leftovers
    dataset.reload()
    assert dataset.list_brain_runs() == [] and not dataset.has_field("runk_cluster")


def test_rename_renames_the_map(dataset):
    compute(dataset, map="pca")
    before = dataset.load_brain_results("runk_map").points
    operator("rename_clustering_run")(dataset, "runk", "renamed")
    dataset.reload()
    assert dataset.list_brain_runs() == ["renamed_map"]
    np.testing.assert_array_equal(dataset.load_brain_results("renamed_map").points, before)
    info = operator("get_clustering_run_info")(dataset, "renamed")
    assert info["config"]["map"]["brain_key"] == "renamed_map"
    operator("delete_clustering_run")(dataset, "renamed")
    dataset.reload()
    assert dataset.list_brain_runs() == []


def test_rename_refuses_a_taken_map_key(dataset):
    compute(dataset, map="pca")
    fob.compute_visualization(dataset, points=np.zeros((len(dataset), 2)),
                              brain_key="taken_map")
    with pytest.raises(ParameterError, match=r"'New run key' \(new_run_key\).*'taken_map'"):
        operator("rename_clustering_run")(dataset, "runk", "taken")
    assert sorted(dataset.list_brain_runs()) == ["runk_map", "taken_map"]


def test_overwrite_replaces_the_map_or_removes_it(dataset):
    compute(dataset, map="pca")
    pca = dataset.load_brain_results("runk_map").points
    compute(dataset, map="umap", overwrite=True)
    dataset.reload()
    assert dataset.get_run_info("runk").config.map["method"] == "umap"
    assert not np.allclose(dataset.load_brain_results("runk_map").points, pca)
    summary = compute(dataset, map="none", overwrite=True)
    dataset.reload()
    assert summary["map"] is None and dataset.list_brain_runs() == []
    assert dataset.get_run_info("runk").config.map is None


@pytest.mark.parametrize("value", ["tsne", 2, True])
def test_bad_map_values_name_the_parameter(dataset, value):
    with pytest.raises(ParameterError, match=r"'Map' \(map\) must be one of 'none', 'pca', "
                                             r"'umap'"):
        compute(dataset, map=value)
    assert dataset.list_runs() == [] and dataset.list_brain_runs() == []


def test_a_brain_key_in_use_is_refused_before_anything_is_written(dataset):
    fob.compute_visualization(dataset, points=np.zeros((len(dataset), 2)),
                              brain_key="runk_map")
    with pytest.raises(ParameterError, match=r"'Map' \(map\).*'runk_map'.*another run"):
        compute(dataset, map="pca", overwrite=True)
    assert dataset.list_runs() == []
    assert compute(dataset, map="none")["map"] is None  # without a map it runs
    fields = form("compute_clusters", dataset, dict(run_key="runk", embeddings="embedding"))
    assert [c["value"] for c in fields["map"]["view"]["choices"]] == ["none", "pca", "umap"]


umap_process = plugin_module("clustering.umap_process")


def _map_through(helper, X):
    """The map of ``X`` with ``helper`` (None: in this process), and where
    the helper's UMAP was computed."""
    pending = []
    if helper is not None:
        send = helper.embed
        helper.embed = lambda *args: pending.append(send(*args)) or pending[-1]
    points, made = layout.compute(X, "umap", 0, None, helper)
    return points, made, pending[0].where if pending else "here"


def _warmed(helper, timeout=120):
    """``helper`` once it has loaded UMAP (a run does not wait for that)."""
    import time

    deadline = time.monotonic() + timeout
    while not helper.is_ready():
        assert time.monotonic() < deadline and helper.proc.poll() is None
        time.sleep(0.05)
    return helper


@pytest.mark.parametrize("state", ["working", "cold", "gone", "stuck"])
def test_a_helper_process_draws_the_same_map(state, monkeypatch):
    import signal

    X, _ = blobs(layout.FIT_MAX + 500, 64, centers=5, seed=4)
    here, made, _ = _map_through(None, X)
    helper = umap_process.Helper()
    try:
        if state != "cold":
            _warmed(helper)
        if state == "gone":  # killed before its work came: the map is drawn here
            helper.proc.kill()
            helper.proc.wait()
        elif state == "stuck":  # never reads its work: drawn here after the timeout
            monkeypatch.setattr(umap_process, "TIMEOUT", 1)
            helper.proc.send_signal(signal.SIGSTOP)
        points, made_there, where = _map_through(helper, X)
    finally:
        helper.close()
    assert where == ("helper" if state == "working" else "here")
    assert made_there == made == dict(method="umap", fitted_on=layout.FIT_MAX)
    np.testing.assert_array_equal(points, here)


def test_the_helper_is_kept_for_the_process_next_runs(monkeypatch):
    import sys

    X, _ = blobs(layout.FIT_MAX + 500, 64, centers=5, seed=4)
    here, _, _ = _map_through(None, X)
    monkeypatch.delitem(sys.modules, "umap", raising=False)  # a process without UMAP
    try:
        with umap_process.ready(True) as first:
            assert _map_through(_warmed(first), X)[2] == "helper"
            with umap_process.ready(True) as meanwhile:
                assert meanwhile is None  # busy with this run: the other works here
        with umap_process.ready(True) as second:
            assert second is first and second.proc.poll() is None  # kept, still running
            points, _, where = _map_through(second, X)
            assert where == "helper"
            np.testing.assert_array_equal(points, here)
            second.embed(X[:layout.FIT_MAX], 2, layout.UMAP_SETTINGS, 0)  # left unanswered
        assert second.proc.poll() is not None  # replaced: its answer would be stale
        with umap_process.ready(True) as third:
            assert third is not second and _map_through(_warmed(third), X)[2] == "helper"
        monkeypatch.setitem(sys.modules, "umap", object())  # loaded here since: ended
        with umap_process.ready(True) as none:
            assert none is None and third.proc.wait(timeout=10) is not None
    finally:
        if umap_process._kept is not None:
            umap_process._kept.close()


def test_the_apps_form_starts_the_helper_its_run_will_use(dataset, monkeypatch):
    """The open form of compute_clusters starts the map's helper, so the run
    the user executes from it finds UMAP loaded; a run queued for the
    launcher, or drawing no UMAP map, starts none."""
    import sys

    monkeypatch.setattr(plugin_module("clustering.pipeline"), "_HELPED", len(dataset))
    monkeypatch.delitem(sys.modules, "umap", raising=False)  # a process without UMAP
    umap_process.end_kept()
    try:
        for params in (dict(map="pca"), dict(map="umap", delegate=True)):
            form("compute_clusters", dataset, dict(embeddings="embedding", **params))
            assert umap_process._kept is None
        form("compute_clusters", dataset, dict(embeddings="embedding"))
        started = umap_process._kept
        assert started is not None and started.proc.poll() is None
        with umap_process.ready(True) as used:
            assert used is started
    finally:
        umap_process.end_kept()
