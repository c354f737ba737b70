"""compute_clusters through FiftyOne's operator machinery, on real MongoDB."""

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from conftest import blob_dataset_of, blobs, execute, make_dataset, operator, plugin_module

from fiftyone.operators.delegated import DelegatedOperationService


def labels_of(dataset, field):
    return np.array([int(v) if v is not None else -99 for v in dataset.values(field)])


def truth_of(dataset):
    return np.array([int(v) for v in dataset.values("ground_truth.label")])


@pytest.mark.parametrize("method,params", [
    ("kmeans", {"kmeans__n_clusters": 4}),
    ("birch", {"birch__n_clusters": 4, "birch__threshold": 0.1}),
    ("agglomerative", {"agglomerative__n_clusters": 4}),
    ("hdbscan", {"hdbscan__min_cluster_size": 20}),
])
def test_each_method_recovers_blobs(blob_dataset, method, params):
    result = execute("compute_clusters", blob_dataset, dict(
        run_key="r", embeddings="embedding", method=method, reduce="none",
        random_state=0, **params))
    result.raise_exceptions()
    labels = labels_of(blob_dataset, "r_cluster")
    assert adjusted_rand_score(truth_of(blob_dataset), labels) > 0.95
    # ids are numbered by size: "0" is the largest
    sizes = np.bincount(labels[labels >= 0])
    assert list(sizes) == sorted(sizes, reverse=True)
    assert result.result["sizes"] == list(sizes)
    assert set(blob_dataset.distinct("r_cluster")) <= {str(i) for i in range(-1, 4)}


def test_every_declared_parameter_is_recorded_and_reaches_the_method(blob_dataset):
    METHODS = plugin_module("clustering.methods").METHODS

    for method in ("kmeans", "birch", "agglomerative", "hdbscan"):
        key = f"rec_{method}"
        execute("compute_clusters", blob_dataset, {
            "run_key": key, "embeddings": "embedding", "method": method,
            "reduce": "none", f"{method}__n_clusters": 3,
        } if METHODS[method].needs_k else {
            "run_key": key, "embeddings": "embedding", "method": method,
            "reduce": "none",
        }).raise_exceptions()
        config = blob_dataset.get_run_info(key).config
        declared = {p.name for p in METHODS[method].params}
        assert set(config.params) == declared
        assert config.method == method
    # kmeans defaults follow scikit-learn, with n_init="auto"
    params = blob_dataset.get_run_info("rec_kmeans").config.params
    assert params["n_init"] is None and params["init"] == "k-means++"
    assert params["max_iter"] == 300 and params["n_clusters"] == 3

    # a parameter shown in the form changes the result: max_cluster_size
    # splits two groups of three nearby blobs (2-D, so not normalised)
    rng = np.random.default_rng(0)
    points = np.vstack([
        np.array(centre) + offset + rng.normal(scale=0.4, size=(60, 2))
        for centre in ([0, 0], [20, 0]) for offset in ([0, 0], [1.2, 0], [0, 1.2])
    ])
    nested = make_dataset(points)
    for key, cap in (("free", None), ("capped", 100)):
        execute("compute_clusters", nested, dict(
            run_key=key, embeddings="embedding", method="hdbscan",
            hdbscan__min_cluster_size=10, hdbscan__max_cluster_size=cap,
        )).raise_exceptions()
    assert sorted(nested.count_values("free_cluster").values()) == [180, 180]
    counts = nested.count_values("capped_cluster")
    assert max(n for c, n in counts.items() if c != "-1") <= 100
    nested.delete()
    # agglomerative linkage reaches sklearn: single linkage chains differently
    for linkage in ("ward", "single"):
        execute("compute_clusters", blob_dataset, {
            "run_key": f"link_{linkage}", "embeddings": "embedding",
            "method": "agglomerative", "reduce": "none",
            "agglomerative__n_clusters": 8, "agglomerative__linkage": linkage,
        }).raise_exceptions()
    assert blob_dataset.count_values("link_ward_cluster") != blob_dataset.count_values(
        "link_single_cluster")


@pytest.mark.smoke
def test_tutorial_flow_two_runs_side_by_side(digits):
    """The FiftyOne clustering tutorial's steps, as written."""
    compute = operator("compute_clusters")
    info = operator("get_clustering_run_info")
    # a 2-D field, like a UMAP visualization's points
    pixels = np.stack(digits.values("pixels"))
    digits.set_values("points2d", [[float(p[20]), float(p[36])] for p in pixels])

    compute(digits, run_key="kmeans_2d", embeddings="points2d", method="kmeans",
            kmeans__n_clusters=20, random_state=0)
    compute(digits, run_key="hdbscan_hd", embeddings="pixels", method="hdbscan",
            hdbscan__min_cluster_size=10, hdbscan__max_cluster_size=300,
            random_state=0)

    assert len(digits.distinct("kmeans_2d_cluster")) == 20
    counts = digits.count_values("hdbscan_hd_cluster")
    assert max(n for c, n in counts.items() if c != "-1") <= 300
    both = digits.exists("kmeans_2d_cluster").exists("hdbscan_hd_cluster")
    assert len(both) == len(digits)

    first = info(digits, "kmeans_2d")
    second = info(digits, "hdbscan_hd")
    assert first["config"]["method"] == "kmeans"
    assert first["config"]["params"]["n_clusters"] == 20
    assert first["config"]["prepare"]["reduce"] == "none"  # 2-D is not reduced
    assert second["config"]["params"]["max_cluster_size"] == 300
    assert sum(c["size"] for c in second["clusters"]) + second["noise"]["size"] == len(digits)
    assert len(first["timestamp"]) == len("2026-01-31 12:00:00 UTC")
    assert first["timestamp"][:7] == time.strftime("%Y-%m", time.gmtime())

    code = (
        "import fiftyone as fo, json\n"
        f"ds = fo.load_dataset({digits.name!r})\n"
        "for key in ('kmeans_2d', 'hdbscan_hd'):\n"
        "    info = ds.get_run_info(key)\n"
        "    res = ds.load_run_results(key)\n"
        "    print('ROW', json.dumps(dict(method=info.config.method,\n"
        "        params=info.config.params, field=info.config.cluster_field,\n"
        "        view=info.config.view, n=info.config.num_samples,\n"
        "        version=info.config.plugin_version,\n"
        "        sizes=[c['size'] for c in res.clusters], timings=res.timings)))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "FIFTYONE_PLUGINS_DIR"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "warn" not in (proc.stderr + proc.stdout).lower()
    assert "Unable to load" not in proc.stderr
    rows = [json.loads(line[4:]) for line in proc.stdout.splitlines() if line.startswith("ROW ")]
    assert len(rows) == 2, proc.stdout
    assert rows[0]["method"] == "kmeans" and rows[0]["field"] == "kmeans_2d_cluster"
    assert rows[0]["n"] == len(digits) and rows[0]["view"] == "dataset"
    assert rows[0]["version"] == "0.1.0"
    assert sum(rows[0]["sizes"]) == len(digits)
    assert list(rows[1]["timings"]) == ["read", "prepare", "fit", "measure", "map", "write",
                                        "total"]


def test_view_target_and_samples_without_embeddings():
    X, y = blobs(300, 8, centers=3, seed=2, cluster_std=0.3)
    rows = [None if i % 10 == 0 else x for i, x in enumerate(X)]
    dataset = make_dataset(rows, y)
    view = dataset.skip(100)
    before = dataset.values("last_modified_at")
    result = operator("compute_clusters")(
        view, run_key="part", embeddings="embedding", method="kmeans",
        kmeans__n_clusters=3, reduce="none")
    assert result["num_samples"] == 180 and result["num_skipped"] == 20
    values = dataset.values("part_cluster")
    assert all(v is None for v in values[:100])  # outside the target
    missing = [values[i] for i in range(100, 300) if i % 10 == 0]
    assert all(v is None for v in missing)  # no embedding, no cluster value
    assert sum(v is not None for v in values) == 180
    # written samples are stamped as FiftyOne's own writes stamp them
    stamped = [a > b for a, b in zip(dataset.values("last_modified_at"), before)]
    assert stamped == [v is not None for v in values]
    config = dataset.get_run_info("part").config
    assert config.num_skipped == 20 and config.view != "dataset"
    assert "Skip" in config.view[0]

    # selected samples only, through the App's view-target choice
    ids = dataset.values("id")[150:170]
    execute("compute_clusters", dataset, dict(
        run_key="sel", embeddings="embedding", method="kmeans",
        kmeans__n_clusters=2, reduce="none", view_target="SELECTED_SAMPLES"),
        selected=ids).raise_exceptions()
    labelled = dataset.exists("sel_cluster").values("id")
    assert set(labelled) <= set(ids) and len(labelled) == 18
    dataset.delete()


@pytest.mark.smoke
def test_delegated_run_reports_progress():
    blob_dataset = blob_dataset_of(8000, 64, centers=4, seed=3)
    queued = operator("compute_clusters")(
        blob_dataset, run_key="later", embeddings="embedding", method="kmeans",
        kmeans__n_clusters=4, reduce="none", delegate=True)
    assert "later" not in blob_dataset.list_runs()
    service = DelegatedOperationService()
    op_id = queued.id
    labels, done = [], threading.Event()

    def watch():
        while not done.is_set():
            status = service.get(op_id).status
            if status is not None and status.label and status.label not in labels:
                labels.append(status.label)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        results = service.execute_queued_operations(dataset_name=blob_dataset.name)
    finally:
        done.set()
        watcher.join()
    assert all(r.error is None for r in results), [r.error for r in results]
    blob_dataset.reload()
    assert "later" in blob_dataset.list_runs()
    assert len(blob_dataset.distinct("later_cluster")) == 4
    final = service.get(op_id)
    assert final.run_state == "completed"
    # the watcher sees the stages in order (the fastest may slip between polls)
    stages = [label.split(" ")[0] for label in labels]
    assert {"read", "fit", "write"} <= set(stages), labels
    order = ["read", "prepare", "fit", "measure", "map", "write", "done"]
    assert stages == sorted(stages, key=order.index), labels
    assert final.status.progress == 1.0 and final.status.label == "done"
    blob_dataset.delete()


def test_overwrite_replaces_run_and_its_fields(blob_dataset):
    compute = operator("compute_clusters")
    compute(blob_dataset, run_key="ow", embeddings="embedding", method="kmeans",
            kmeans__n_clusters=2, reduce="none", distance_field="ow_dist")
    compute(blob_dataset, run_key="ow", embeddings="embedding", method="kmeans",
            kmeans__n_clusters=4, reduce="none", overwrite=True)
    assert len(blob_dataset.distinct("ow_cluster")) == 4
    assert not blob_dataset.has_field("ow_dist")  # the old run's extra field went with it
    assert blob_dataset.list_runs().count("ow") == 1
    # overwritten on a smaller target: the samples outside it lose their old values
    before = blob_dataset.values("last_modified_at")
    compute(blob_dataset.limit(100), run_key="ow", embeddings="embedding", method="kmeans",
            kmeans__n_clusters=3, reduce="none", distance_field="ow_dist", overwrite=True)
    clusters, distances = blob_dataset.values(["ow_cluster", "ow_dist"])
    assert all(c is not None for c in clusters[:100]) and set(clusters[100:]) == {None}
    assert all(d is not None for d in distances[:100]) and set(distances[100:]) == {None}
    after = blob_dataset.values("last_modified_at")
    assert all(a > b for a, b in zip(after, before))  # every sample changed


def test_python_call_shows_a_progress_bar(blob_dataset, capfd):
    operator("compute_clusters")(blob_dataset, run_key="bar", embeddings="embedding",
                                 method="kmeans", kmeans__n_clusters=4, reduce="none",
                                 progress=True)
    err = capfd.readouterr().err
    for stage in ("read", "prepare", "fit", "measure", "write"):
        assert stage in err
    assert err.rstrip().endswith("100% done")
    operator("compute_clusters")(blob_dataset, run_key="quiet", embeddings="embedding",
                                 method="kmeans", kmeans__n_clusters=4, reduce="none",
                                 progress=False)
    assert "%" not in capfd.readouterr().err
