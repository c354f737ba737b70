"""A run is one consistent snapshot and one writer: samples added or deleted
while it computes, two writers on one key, runs deleted or renamed with
FiftyOne's own tools, and assigned samples among the clustered ones."""

import threading

import numpy as np
import pytest

import fiftyone as fo
from conftest import blob_dataset_of, blobs, make_dataset, operator, plugin_module

api = plugin_module("clustering.api")
params = plugin_module("clustering.params")


def sizes_agree(dataset, key):
    """The run's recorded sizes are what its field holds."""
    results = dataset.load_run_results(key, cache=False)
    counts = dataset.count_values(f"{key}_cluster")
    counts.pop(None, None)
    recorded = {c["id"]: c["size"] for c in results.clusters}
    if results.noise is not None:
        recorded["-1"] = results.noise["size"]
    assert {k: v for k, v in recorded.items() if v} == counts
    assert dataset.get_run_info(key).config.num_samples == sum(counts.values())
    return counts


def run_with(dataset, key, when, action, nth=1):
    """compute_clusters whose progress report calls ``action()`` once, at
    the ``nth`` report of stage ``when`` (the first is the stage's start;
    the read reports again after each batch)."""
    seen, done = [], []

    def report(fraction, label):
        if label.startswith(when):
            seen.append(label)
        if len(seen) == nth and not done:
            done.append(action())

    return api.compute_clusters(dataset, dict(
        run_key=key, embeddings="embedding", method="kmeans", kmeans__n_clusters=4,
        reduce="none", random_state=0), report=report)


@pytest.fixture
def many():
    dataset = blob_dataset_of(9000, 8, centers=4, seed=11)
    yield dataset
    dataset.delete()


def test_samples_added_while_reading_are_handled_and_counted(many):
    X, y = blobs(3000, 8, centers=4, seed=12)

    def add():
        many.add_samples([fo.Sample(filepath=f"/tmp/added{i}.png", embedding=x)
                          for i, x in enumerate(X)], progress=False)

    summary = run_with(many, "added", "read", add, nth=2)
    counts = sizes_agree(many, "added")
    assert summary["num_samples"] == sum(counts.values()) == sum(summary["sizes"])
    not_clustered = many.exists("added_cluster", False).count()
    assert summary["num_samples"] + not_clustered == 12000
    assert not_clustered == summary["num_added"]
    if not_clustered:
        assert any("added while the run computed" in n for n in summary["notes"])
    operator("assign_to_clusters")(many, "added", progress=False)
    assert many.exists("added_cluster", False).count() == 0


def test_samples_deleted_while_fitting_are_counted_as_lost(many):
    doomed = many.take(300, seed=1).values("id")
    summary = run_with(many, "deleted", "fit", lambda: many.delete_samples(doomed))
    assert summary["num_lost"] == 300
    counts = sizes_agree(many, "deleted")
    assert sum(counts.values()) == 8700 == summary["num_samples"] == sum(summary["sizes"])
    assert any("300 samples were deleted" in note for note in summary["notes"])
    reps = [r for c in many.load_run_results("deleted").clusters for r in c["representatives"]]
    assert reps and len(many.select(reps)) == len(reps)  # no deleted sample among them


def test_samples_added_and_deleted_while_fitting_are_both_counted(many):
    # as many deleted as added: the dataset's count alone would hide the added
    doomed = many.take(200, seed=2).values("id")
    X, _ = blobs(200, 8, centers=4, seed=13)

    def swap():
        many.delete_samples(doomed)
        many.add_samples([fo.Sample(filepath=f"/tmp/swapped{i}.png", embedding=x)
                          for i, x in enumerate(X)], progress=False)

    summary = run_with(many, "swapped", "fit", swap)
    assert summary["num_lost"] == 200 and summary["num_added"] == 200
    assert many.exists("swapped_cluster", False).count() == 200
    assert any("200 samples added while the run computed" in n for n in summary["notes"])

    added = run_with(many, "grown", "fit", lambda: many.add_samples(
        [fo.Sample(filepath=f"/tmp/grown{i}.png", embedding=x) for i, x in enumerate(X)],
        progress=False))
    assert added["num_added"] == 200 and added["num_lost"] == 0
    quiet = run_with(many, "quiet", "fit", lambda: None)
    assert quiet["num_added"] == 0 and not any("added" in n for n in quiet["notes"])


def test_two_writers_on_one_key_one_is_refused_by_name(many):
    outcomes = []

    def write(k):
        try:
            outcomes.append(operator("compute_clusters")(
                many, run_key="raced", embeddings="embedding", method="kmeans",
                kmeans__n_clusters=k, reduce="none", progress=False))
        except params.UserError as e:
            outcomes.append(e)

    threads = [threading.Thread(target=write, args=(k,)) for k in (6, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [o for o in outcomes if isinstance(o, dict)]
    lost = [o for o in outcomes if not isinstance(o, dict)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert "'raced'" in str(lost[0])
    assert "being written by another clustering run" in str(lost[0]) or (
        "already exists" in str(lost[0]))
    counts = sizes_agree(many, "raced")
    assert len(counts) == won[0]["num_clusters"]


def test_runs_deleted_or_renamed_with_fiftyone_tools_leave_nothing_hidden():
    dataset = blob_dataset_of(200, 6, centers=2, seed=3)
    compute = operator("compute_clusters")
    compute(dataset, run_key="k", embeddings="embedding", kmeans__n_clusters=2,
            reduce="none", distance_field="k_dist", progress=False)

    dataset.delete_run("k")  # FiftyOne's own tool, as the App's runs list does
    info_of = operator("get_clustering_run_info")
    compute(dataset, run_key="other", embeddings="embedding", kmeans__n_clusters=2,
            reduce="none", progress=False)
    assert info_of(dataset, "other")["leftovers"] == {"k_cluster": "k", "k_dist": "k",
                                                      "k_group": "k"}
    with pytest.raises(params.ParameterError, match="left behind by clustering run 'k'"):
        compute(dataset, run_key="k", embeddings="embedding", kmeans__n_clusters=3,
                reduce="none", progress=False)
    deleted = operator("delete_clustering_run")(dataset, "k")
    assert sorted(deleted["deleted_fields"]) == ["k_cluster", "k_dist", "k_group"]
    assert not dataset.has_field("k_cluster") and not dataset.has_field("k_dist")
    assert not dataset.has_field("k_group")

    # a leftover is taken over by a new run of its key with overwrite
    compute(dataset, run_key="k", embeddings="embedding", kmeans__n_clusters=2,
            reduce="none", progress=False)
    dataset.delete_run("k")
    compute(dataset, run_key="k", embeddings="embedding", kmeans__n_clusters=3,
            reduce="none", overwrite=True, progress=False)
    assert sizes_agree(dataset, "k") and len(dataset.distinct("k_cluster")) == 3

    dataset.rename_run("k", "renamed")  # FiftyOne's own rename
    assert info_of(dataset, "renamed")["config"]["cluster_field"] == "k_cluster"
    assert info_of(dataset, "renamed")["leftovers"] == {}
    operator("delete_clustering_run")(dataset, "renamed")
    assert not dataset.has_field("k_cluster") and not dataset.has_field("k_group")
    dataset.delete()


@pytest.mark.parametrize("reduce", ["none", "umap"])
def test_assigned_samples_sort_after_the_clustered_ones(reduce):
    X, y = blobs(700, 24, centers=3, seed=5, cluster_std=0.5)
    dataset = make_dataset(X[:600], y[:600])
    operator("compute_clusters")(dataset, run_key="fit", embeddings="embedding",
                                 method="kmeans", kmeans__n_clusters=3, reduce=reduce,
                                 distance_field="fit_dist", random_state=0, progress=False)
    dataset.add_samples([fo.Sample(filepath=f"/tmp/new{i}.png", embedding=X[i])
                         for i in range(600, 700)], progress=False)
    new_ids = set(dataset.skip(600).values("id"))
    operator("assign_to_clusters")(dataset, "fit", progress=False)
    assert dataset.exists("fit_dist", False).count() == 0  # every sample has a distance
    for cluster in ("0", "1", "2"):
        view = operator("open_cluster")(dataset, "fit", cluster)
        ids, dist = view.values("id"), view.values("fit_dist")
        assert dist == sorted(dist)
        if reduce == "umap":  # not comparable: after every clustered sample
            first_new = min(i for i, s in enumerate(ids) if s in new_ids)
            assert all(s in new_ids for s in ids[first_new:])
        else:  # the same space: the distance to the recorded centre
            centre = np.array(dataset.load_run_results("fit").clusters[int(cluster)]["centroid"])
            rows = {s: x for s, x in zip(dataset.values("id"), dataset.values("embedding"))}
            for s, d in zip(ids, dist):
                x = rows[s] / np.linalg.norm(rows[s])
                assert d == pytest.approx(np.linalg.norm(x - centre), abs=1e-4)
    dataset.delete()


def test_windowed_writes_put_each_value_on_its_own_sample(blob_dataset, monkeypatch):
    """Labels written window by window in stored order, from ids given in any
    order, land on the samples they belong to, with their derived fields."""
    writeback = plugin_module("clustering.writeback")
    monkeypatch.setattr(writeback, "_WINDOW", 7)
    monkeypatch.setattr(writeback, "_DOCS_PER_BULK", 3)
    rng = np.random.default_rng(0)
    ids = blob_dataset.values("_id")
    shuffled = [ids[i] for i in rng.permutation(len(ids))]
    values = [f"c{v}" for v in rng.integers(13, size=len(ids))]
    written = writeback.write_field(blob_dataset, "w_cluster", "str", shuffled, values,
                                    replace=True, owner="w",
                                    derived={"w_group": {f"c{v}": f"g{v % 3}" for v in range(13)}})
    assert written == len(ids)
    expected = dict(zip(map(str, shuffled), values))
    stored = blob_dataset.values(["id", "w_cluster", "w_group"])
    assert {i: c for i, c, _ in zip(*stored)} == expected
    assert all(g == f"g{int(c[1:]) % 3}" for _, c, g in zip(*stored))
