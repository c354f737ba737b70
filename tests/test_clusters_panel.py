"""What the Clusters panel shows, read from the runs (clustering/panel.py),
and how it reads the App's view (clustering/typical.py): cards, thumbnails,
the run's facts, the selected cluster, and the live state."""

import datetime
import json
from urllib.parse import unquote

import pytest

from fiftyone import ViewField as F
from conftest import blob_dataset_of, noisy_run, operator, plugin_module

panel = plugin_module("clustering.panel")
typical = plugin_module("clustering.typical")
transactions = plugin_module("clustering.transactions")
internals = plugin_module("clustering.internals")


@pytest.fixture
def dataset():
    dataset = blob_dataset_of(400, 8, centers=4, seed=3, cluster_std=0.3)
    operator("compute_clusters")(dataset, run_key="auto", embeddings="embedding",
                                 method="kmeans", kmeans__k_min=2, kmeans__k_max=6,
                                 reduce="none", random_state=0, progress=False)
    yield dataset
    dataset.delete()


def path_of(url):
    assert url.startswith("/media?filepath=")
    return unquote(url[len("/media?filepath="):])


@pytest.mark.smoke
def test_the_overview_is_what_the_run_stores(dataset):
    operator("name_cluster")(dataset, "auto", "2", "Third blob", "The third one.")
    shown = panel.overview(dataset, "auto")
    json.dumps(shown)  # plain data, as the App receives it
    results = dataset.load_run_results("auto", cache=False)
    assert [c["id"] for c in shown["clusters"]] == [c["id"] for c in results.clusters]
    assert [c["size"] for c in shown["clusters"]] == [c["size"] for c in results.clusters]
    assert sum(c["share"] for c in shown["clusters"]) == pytest.approx(1)
    third = shown["clusters"][2]
    assert (third["name"], third["description"], third["naming"]) == (
        "Third blob", "The third one.", "manual")
    assert shown["noise"] is None and shown["label_field"] == "auto_cluster_label"

    # thumbnails: the first representatives, most typical first, by filepath
    paths = dict(zip(*dataset.values(["id", "filepath"])))
    for card, cluster in zip(shown["clusters"], results.clusters):
        assert [path_of(u) for u in card["thumbnails"]] == [
            paths[r] for r in cluster["representatives"][:panel.THUMBNAILS]]

    # k was chosen: the sweep is shown with the chosen k
    assert shown["chosen_k"] == 4 and [r["k"] for r in shown["sweep"]] == [2, 3, 4, 5, 6]


def test_the_facts_are_readable_tables(dataset):
    facts = panel.overview(dataset, "auto")["facts"]
    assert "{" not in facts and "None" not in facts
    assert "**K-means** on `embedding`, the whole dataset: 400 samples clustered into 4 " \
           "clusters" in facts
    assert "| N clusters | 4 (chosen automatically over k = 2..6) |" in facts
    assert "| Init | k-means++ |" in facts and "Min k" not in facts
    prepare = dataset.get_run_info("auto").config.prepare
    assert f"| Normalize | {'yes' if prepare['normalize'] else 'no'} |" in facts
    assert "| Reduce | none |" in facts
    assert "N components" not in facts  # no reduction: no components
    assert "| Random state | 0 |" in facts
    metrics = dataset.load_run_results("auto", cache=False).metrics
    assert f"| Silhouette (-1 to 1, higher is better) | {metrics['silhouette']:.4g} |" in facts
    assert "| Noise (share of the samples) | 0.0% |" in facts
    for stage in ("read", "prepare", "fit", "measure", "write", "total"):
        assert f"\n| {stage} | " in facts

    operator("compute_clusters")(dataset, run_key="fixed", embeddings="embedding",
                                 method="kmeans", kmeans__n_clusters=3, reduce="pca",
                                 n_components=4, random_state=1, ground_truth="ground_truth",
                                 progress=False)
    shown = panel.overview(dataset, "fixed")
    assert shown["chosen_k"] is None
    assert "| N clusters | 3 |" in shown["facts"] and "| N components | 4 |" in shown["facts"]
    assert "| ARI against the ground truth |" in shown["facts"]


def test_noise_gets_its_own_card_with_noise_samples():
    dataset = noisy_run("dense", seed=1)
    try:
        noise = panel.overview(dataset, "dense")["noise"]
        assert noise["id"] == "-1"
        assert noise["size"] == dataset.count_values("dense_cluster")["-1"]
        noise_paths = set(dataset.match(F("dense_cluster") == "-1").values("filepath"))
        assert len(noise["thumbnails"]) == panel.THUMBNAILS
        assert {path_of(u) for u in noise["thumbnails"]} <= noise_paths
    finally:
        dataset.delete()


def test_thumbnails_are_fiftyones_where_the_grid_shows_them(dataset):
    """With a thumbnail field as the grid's media, the cards show it; a
    sample without a thumbnail shows its file."""
    ids = dataset.values("id")
    dataset.set_values("thumbnail_path", [f"/thumbs/{i}.jpg" for i in ids])
    dataset.app_config.media_fields = ["filepath", "thumbnail_path"]
    dataset.app_config.grid_media_field = "thumbnail_path"
    dataset.save()
    first = dataset.load_run_results("auto", cache=False).clusters[0]["representatives"][0]
    sample = dataset[first]
    sample["thumbnail_path"] = None
    sample.save()
    shown = panel.overview(dataset, "auto")
    urls = [path_of(u) for c in shown["clusters"] for u in c["thumbnails"]]
    assert urls[0] == sample.filepath
    assert all(u.startswith("/thumbs/") for u in urls[1:])


def test_the_selected_cluster_is_read_from_the_apps_view(dataset):
    config = dataset.get_run_info("auto").config
    reps = dataset.load_run_results("auto", cache=False).clusters[1]["representatives"]

    view = typical.cluster_view(dataset, "auto", "1")
    assert typical.selected(view._serialize(), "auto_cluster") == ("1", [])
    assert view.count() == dataset.count_values("auto_cluster")["1"]

    # most typical first: without a distance field, the representatives lead
    narrowed = typical.select(dataset.match_tags("kept", bool=False), config, "1", reps)
    assert narrowed.values("id")[:len(reps)] == reps

    # on top of the user's own view, which clearing gives back
    base = dataset.match_tags("kept", bool=False).limit(300)
    stages = typical.select(base, config, "1", reps)._serialize()
    chosen, before = typical.selected(stages, "auto_cluster")
    assert chosen == "1"
    assert internals.build_view(dataset, before).count() == 300
    assert [s["_cls"] for s in before] == [s["_cls"] for s in base._serialize()]

    # views that select no cluster of this run
    for other in (dataset.view(), base, dataset.match(F("auto_cluster") == "1"),
                  dataset.match(F("auto_cluster") == "1").limit(10),
                  dataset.sort_by("filepath").match(F("auto_cluster") == "1"),
                  dataset.match(F("other_cluster") == "1").sort_by("filepath")):
        assert typical.selected(other._serialize(), "auto_cluster") == (
            None, other._serialize())


def test_runs_newest_first(dataset):
    operator("compute_clusters")(dataset, run_key="later", embeddings="embedding",
                                 method="kmeans", kmeans__n_clusters=2, reduce="none",
                                 progress=False)
    assert panel.runs_newest_first(dataset) == ["later", "auto"]
    dataset.register_run("not_ours", dataset.init_run(method="something_else"))
    assert panel.runs_newest_first(dataset) == ["later", "auto"]


def test_runs_queued_or_executing_are_the_live_state(dataset):
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionProgress

    assert panel.activity(dataset) == []
    queued = operator("compute_clusters")(dataset, run_key="queued", embeddings="embedding",
                                          method="kmeans", kmeans__n_clusters=2,
                                          delegate=True)
    service = DelegatedOperationService()
    try:
        assert panel.activity(dataset) == [dict(
            operator="compute_clusters", run_key="queued", state="queued", progress=None,
            label=None)]
        service.set_running(queued.id)
        service.set_progress(queued.id, ExecutionProgress(0.4, "fit"))
        assert panel.activity(dataset) == [dict(
            operator="compute_clusters", run_key="queued", state="running", progress=0.4,
            label="fit")]
    finally:
        service.delete_operation(queued.id)
    # a run executing now in a process (here this one) holds its key's lease
    with transactions.transaction(dataset, ["auto"], "labeling"):
        (writing,) = panel.activity(dataset)
    assert writing["operator"] == "labeling" and writing["run_key"] == "auto"
    assert writing["state"] == "running" and writing["progress"] is None
    started = datetime.datetime.strptime(writing["label"], "since %H:%M:%S UTC")
    assert started.time() <= datetime.datetime.utcnow().time()
    assert panel.activity(dataset) == []
