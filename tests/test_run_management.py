"""Managing clustering runs: info, delete, rename, compare, assign, open."""

import json

import numpy as np
import pytest

import fiftyone as fo
from conftest import (blob_dataset_of, blobs, execute, form, make_dataset, operator,
                      plugin_module, snapshot)

UserError = plugin_module("clustering.params").UserError


@pytest.fixture
def dataset():
    dataset = blob_dataset_of(400, 12, centers=4, seed=5, cluster_std=0.4)
    operator("compute_clusters")(
        dataset, run_key="base", embeddings="embedding", method="kmeans",
        kmeans__n_clusters=4, reduce="none", random_state=0,
        distance_field="base_distance")
    yield dataset
    dataset.delete()


def test_run_info_lists_only_clustering_runs(dataset):
    other = dataset.init_run(method="something_else")
    dataset.register_run("not_clustering", other)
    fields = form("get_clustering_run_info", dataset, {})
    assert [c["value"] for c in fields["run_key"]["view"]["choices"]] == ["base"]
    with pytest.raises(UserError, match="'not_clustering' is not a clustering run"):
        operator("get_clustering_run_info")(dataset, "not_clustering")
    with pytest.raises(UserError, match="has no run 'missing'"):
        operator("get_clustering_run_info")(dataset, "missing")

    info = operator("get_clustering_run_info")(dataset, "base")
    json.dumps(info)  # what the App receives is plain JSON
    assert info["config"]["cluster_field"] == "base_cluster"
    assert info["config"]["embeddings_field"] == "embedding"
    assert info["plugin_version"] == "0.1.0"
    assert info["fiftyone_version"] == fo.__version__
    assert [c["id"] for c in info["clusters"]] == ["0", "1", "2", "3"]
    assert sum(c["size"] for c in info["clusters"]) == 400
    assert info["metrics"]["silhouette"] > 0.5
    assert [t["stage"] for t in info["timings"]] == [
        "read", "prepare", "fit", "measure", "map", "write", "total"]


def test_representatives_are_members_ordered_by_typicality(dataset):
    results = dataset.load_run_results("base")
    for cluster in results.clusters:
        reps = cluster["representatives"]
        members = dataset.select(reps)
        assert set(members.values("base_cluster")) == {cluster["id"]}
        dist = dict(zip(members.values("id"), members.values("base_distance")))
        ordered = [dist[r] for r in reps]
        assert ordered == sorted(ordered)
        # the most typical are the closest of the whole cluster
        view = dataset.match(fo.ViewField("base_cluster") == cluster["id"])
        assert ordered[0] == pytest.approx(min(view.values("base_distance")))


def test_delete_removes_run_and_every_field(dataset):
    result = operator("delete_clustering_run")(dataset, "base")
    assert set(result["deleted_fields"]) == {"base_cluster", "base_group", "base_distance"}
    assert "base" not in dataset.list_runs()
    assert not dataset.has_field("base_cluster")
    assert not dataset.has_field("base_distance")
    with pytest.raises(UserError, match="has no run 'base'"):
        operator("delete_clustering_run")(dataset, "base")


def test_rename_keeps_values_and_moves_default_named_fields(dataset):
    before = dataset.values("base_cluster")
    distances = dataset.values("base_distance")
    operator("rename_clustering_run")(dataset, "base", "renamed")
    assert "renamed" in dataset.list_runs() and "base" not in dataset.list_runs()
    assert dataset.values("renamed_cluster") == before
    assert dataset.values("renamed_distance") == distances
    assert not dataset.has_field("base_cluster")
    config = dataset.get_run_info("renamed").config
    assert config.cluster_field == "renamed_cluster"
    assert config.distance_field == "renamed_distance"
    info = operator("get_clustering_run_info")(dataset, "renamed")
    assert info["config"]["cluster_field"] == "renamed_cluster"

    before = snapshot(dataset)
    for bad, phrase in (("1bad", "valid Python identifier"), ("renamed", "already exists")):
        with pytest.raises(UserError, match=phrase):
            operator("rename_clustering_run")(dataset, "renamed", bad)
    assert snapshot(dataset) == before


def test_compare_identical_and_different_runs(dataset):
    compute = operator("compute_clusters")
    compute(dataset, run_key="same", embeddings="embedding", method="kmeans",
            kmeans__n_clusters=4, reduce="none", random_state=3)
    compute(dataset, run_key="coarse", embeddings="embedding", method="kmeans",
            kmeans__n_clusters=2, reduce="none", random_state=0)
    compare = operator("compare_clustering_runs")
    same = compare(dataset, "base", "same")
    assert same["ari"] == pytest.approx(1.0) and same["nmi"] == pytest.approx(1.0)
    assert same["num_samples"] == 400
    assert all(row["share"] == 1.0 for row in same["mapping"])
    coarse = compare(dataset, "base", "coarse")
    assert coarse["ari"] < 0.9
    # each fine cluster falls inside one coarse cluster
    assert {row["cluster_b"] for row in coarse["mapping"]} == {"0", "1"}
    assert all(row["share"] > 0.95 for row in coarse["mapping"])


def test_compare_needs_overlapping_samples():
    dataset = blob_dataset_of(200, 6, centers=2, seed=6, cluster_std=0.3)
    compute = operator("compute_clusters")
    compute(dataset.limit(100), run_key="a", embeddings="embedding", method="kmeans",
            kmeans__n_clusters=2, reduce="none")
    compute(dataset.skip(100), run_key="b", embeddings="embedding", method="kmeans",
            kmeans__n_clusters=2, reduce="none")
    with pytest.raises(UserError, match="no clustered sample in common"):
        operator("compare_clustering_runs")(dataset, "a", "b")
    dataset.delete()


@pytest.mark.parametrize("method,params", [
    ("kmeans", {"kmeans__n_clusters": 3, "reduce": "none"}),
    ("hdbscan", {"hdbscan__min_cluster_size": 20}),
])
def test_assign_new_samples_to_the_clusters_they_were_drawn_from(method, params):
    X, y = blobs(900, 24, centers=3, seed=7, cluster_std=0.5)
    dataset = make_dataset(X[:600], y[:600])
    operator("compute_clusters")(dataset, run_key="fit", embeddings="embedding",
                                 method=method, random_state=0, **params)
    truth_to_cluster = {}
    for t, c in zip(dataset.values("ground_truth.label"), dataset.values("fit_cluster")):
        truth_to_cluster.setdefault(t, c)
    before = dataset.values("fit_cluster")

    new = [fo.Sample(filepath=f"/tmp/new{i}.png", embedding=X[i],
                     ground_truth=fo.Classification(label=str(y[i])))
           for i in range(600, 900)]
    dataset.add_samples(new, progress=False)
    result = operator("assign_to_clusters")(dataset, "fit")
    assert result["num_assigned"] == 300
    assigned = dataset.skip(600)
    expected = [truth_to_cluster[t] for t in assigned.values("ground_truth.label")]
    got = assigned.values("fit_cluster")
    assert np.mean([g == e for g, e in zip(got, expected)]) > 0.97
    assert dataset.limit(600).values("fit_cluster") == before  # untouched
    log = dataset.load_run_results("fit", cache=False).assignments
    assert log[-1]["num_assigned"] == 300
    # nothing left to assign the second time
    assert operator("assign_to_clusters")(dataset, "fit")["num_assigned"] == 0
    dataset.delete()


def test_assign_rejects_vectors_of_another_size(dataset):
    dataset.add_sample(fo.Sample(filepath="/tmp/odd.png", embedding=np.ones(5)))
    with pytest.raises(UserError, match="5-d vectors but run 'base' clustered 12-d"):
        operator("assign_to_clusters")(dataset, "base")
    assert dataset.exists("base_cluster", False).count() == 1


@pytest.mark.parametrize("with_distance", [True, False])
def test_open_cluster_shows_most_typical_first(dataset, with_distance):
    key = "base"
    if not with_distance:
        key = "plain"
        operator("compute_clusters")(dataset, run_key="plain", embeddings="embedding",
                                     method="kmeans", kmeans__n_clusters=4, reduce="none",
                                     random_state=0)
    result = execute("open_cluster", dataset, dict(run_key=key, cluster="2"))
    result.raise_exceptions()
    request = result.executor.to_json()["requests"][0]
    assert request["operator_uri"].endswith("set_view")
    view = fo.DatasetView._build(dataset, request["params"]["view"])
    field = f"{key}_cluster"
    assert set(view.values(field)) == {"2"}
    assert len(view) == dataset.count_values(field)["2"]
    reps = dataset.load_run_results(key, cache=False).clusters[2]["representatives"]
    assert view.values("id")[:len(reps)] == reps
