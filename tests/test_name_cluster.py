"""name_cluster: a cluster named by hand is recorded in the run like a
model's name (marked manual) and in the label field, through the run's
transaction; bad input is refused by parameter and changes nothing."""

import uuid

import numpy as np
import pytest
from PIL import Image

import fiftyone as fo
from conftest import (blob_dataset_of, execute, form, noisy_run, operator, plugin_module,
                      snapshot)
from llm_server import LLMServer

ParameterError = plugin_module("clustering.params").ParameterError
RunBusyError = plugin_module("clustering.transactions").RunBusyError
transactions = plugin_module("clustering.transactions")
LABELS = "run_cluster_label"


@pytest.fixture
def dataset():
    dataset = blob_dataset_of(300, 8, centers=3, seed=2, cluster_std=0.3)
    operator("compute_clusters")(dataset, run_key="run", embeddings="embedding",
                                 method="kmeans", kmeans__n_clusters=3, reduce="none",
                                 random_state=0, progress=False)
    yield dataset
    dataset.delete()


def stored(dataset):
    dataset.reload()
    return {c["id"]: c for c in dataset.load_run_results("run", cache=False).clusters}


def labels_by_cluster(dataset):
    """``{cluster id: set of label values}`` as the field holds them."""
    dataset.reload()
    found = {}
    for cluster, label in zip(dataset.values("run_cluster"), dataset.values(LABELS)):
        found.setdefault(cluster, set()).add(label)
    return found


@pytest.mark.smoke
def test_a_name_given_by_hand_is_recorded_in_the_run_and_the_field(dataset):
    named = operator("name_cluster")(dataset, "run", "1", "  <b>Red</b>  things ",
                                     "Mostly **red** images.")
    assert named == dict(run_key="run", cluster="1", name="Red things",
                         description="Mostly red images.", naming="manual",
                         label_field=LABELS)
    entry = stored(dataset)["1"]
    assert (entry["name"], entry["description"], entry["naming"]) == (
        "Red things", "Mostly red images.", "manual")
    assert labels_by_cluster(dataset) == {"0": {None}, "1": {"Red things"}, "2": {None}}
    config = dataset.get_run_info("run").config
    assert config.labels["label_field"] == LABELS and config.labels["num_named"] == 1
    info = operator("get_clustering_run_info")(dataset, "run")
    assert info["clusters"][1]["naming"] == "manual"

    # a second name replaces it; another cluster's name is its own
    operator("name_cluster")(dataset, "run", "1", "Crimson things")
    operator("name_cluster")(dataset, "run", "0", "Blue things", "Blue.")
    entries = stored(dataset)
    assert entries["1"]["name"] == "Crimson things" and entries["1"]["description"] is None
    assert labels_by_cluster(dataset) == {
        "0": {"Blue things"}, "1": {"Crimson things"}, "2": {None}}

    # the label field belongs to the run: deleting the run deletes it
    operator("delete_clustering_run")(dataset, "run")
    dataset.reload()
    assert not dataset.has_field(LABELS)


def test_names_are_made_distinct_from_the_other_clusters(dataset):
    operator("name_cluster")(dataset, "run", "0", "Kitchens")
    assert operator("name_cluster")(dataset, "run", "2", "kitchens!")["name"] == "Kitchens (2)"
    # a cluster keeps its own name when named the same again
    assert operator("name_cluster")(dataset, "run", "0", "Kitchens")["name"] == "Kitchens"
    assert {c: e.get("name") for c, e in stored(dataset).items()} == {
        "0": "Kitchens", "1": None, "2": "Kitchens (2)"}


def test_words_that_mean_empty_elsewhere_are_names_here(dataset):
    """Other parameters read "auto" or "none" as empty; a name is a name."""
    assert operator("name_cluster")(dataset, "run", "0", "auto")["name"] == "Auto"
    assert operator("name_cluster")(dataset, "run", "1", "None", "none")["description"] == (
        "none")
    assert labels_by_cluster(dataset) == {"0": {"Auto"}, "1": {"None"}, "2": {None}}


@pytest.mark.parametrize("params, key, message", [
    (dict(run_key="missing"), "run_key", "has no run 'missing'"),
    (dict(run_key=None), "run_key", "is required"),
    (dict(cluster="7"), "cluster", "names no cluster of run 'run'"),
    (dict(name=None), "name", "is required"),
    (dict(name="   "), "name", "is required"),
    (dict(description=3), "description", "must be text"),
    (dict(name="one two three four five"), "name", "at most 4 words"),
    (dict(name="x" * 41), "name", "40 characters"),
    (dict(name="<b></b> **"), "name", "has no text once markup"),
    (dict(description="y" * 301), "description", "at most 300 characters"),
])
def test_bad_input_is_refused_by_parameter_and_changes_nothing(dataset, params, key, message):
    values = dict(run_key="run", cluster="1", name="Fine name", description=None)
    values.update(params)
    before = snapshot(dataset)
    with pytest.raises(ParameterError, match=message) as raised:
        operator("name_cluster")(dataset, **values)
    assert raised.value.key == key
    assert snapshot(dataset) == before


def test_a_run_that_is_not_a_clustering_run_is_refused(dataset):
    dataset.register_run("other", dataset.init_run(method="something_else"))
    with pytest.raises(ParameterError, match="'other' is not a clustering run"):
        operator("name_cluster")(dataset, "other", "0", "Anything")


def test_a_second_writer_of_the_run_is_refused(dataset):
    """The name goes through the run's transaction: a second writer of the
    key is refused, and the run is as it was."""
    with transactions.transaction(dataset, ["run"], "clustering run"):
        with pytest.raises(RunBusyError, match="Run key 'run' is being written"):
            operator("name_cluster")(dataset, "run", "0", "Too early")
    assert stored(dataset)["0"].get("name") is None
    assert operator("name_cluster")(dataset, "run", "0", "In time")["name"] == "In time"


def test_the_form_offers_the_clusters_and_their_current_names(dataset):
    operator("name_cluster")(dataset, "run", "2", "Greens", "Green swatches.")
    fields = form("name_cluster", dataset, dict(run_key="run", cluster="2"))
    labels = [c["label"] for c in fields["cluster"]["view"]["choices"]]
    sizes = [c["size"] for c in stored(dataset).values()]
    assert labels == [f"0 ({sizes[0]})", f"1 ({sizes[1]})", f"2 Greens ({sizes[2]})"]
    assert fields["name"]["default"] == "Greens"
    assert fields["description"]["default"] == "Green swatches."
    # executed as the App does
    result = execute("name_cluster", dataset, dict(run_key="run", cluster="2",
                                                   name="Deep greens"))
    result.raise_exceptions()
    assert result.result["name"] == "Deep greens"
    assert labels_by_cluster(dataset)["2"] == {"Deep greens"}


def test_noise_can_be_named_by_hand():
    dataset = noisy_run("run")
    try:
        noise = dataset.count_values("run_cluster")["-1"]
        operator("name_cluster")(dataset, "run", "-1", "Outliers")
        dataset.reload()
        assert dataset.load_run_results("run", cache=False).noise["name"] == "Outliers"
        assert dataset.count_values(LABELS) == {"Outliers": noise, None: len(dataset) - noise}
    finally:
        dataset.delete()


def test_a_model_name_replaced_by_hand_keeps_nothing_of_the_model(tmp_path, monkeypatch):
    """A manual name drops what the model's call recorded (model, images
    shown, usage); naming again without relabel leaves it alone, relabel
    gives the cluster back to the model."""
    key, model = "sk-test-" + uuid.uuid4().hex, "vision-manual"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    dataset = blob_dataset_of(90, 8, centers=3, seed=4, cluster_std=0.3)
    paths = []
    for i in range(len(dataset)):
        path = str(tmp_path / f"{i}.png")
        Image.fromarray(np.full((20, 20, 3), 200, dtype=np.uint8)).save(path)
        paths.append(path)
    dataset.set_values("filepath", paths)
    try:
        operator("compute_clusters")(dataset, run_key="run", embeddings="embedding",
                                     method="kmeans", kmeans__n_clusters=3, reduce="none",
                                     random_state=0, progress=False)
        label = operator("label_clusters_with_llm")
        with LLMServer(key, model) as server:
            label(dataset, run_key="run", model=model, base_url=server.url, delegate=False,
                  progress=False)
            assert {e["naming"] for e in stored(dataset).values()} == {"llm"}
            assert stored(dataset)["1"]["model"] == model

            operator("name_cluster")(dataset, "run", "1", "Pale squares")
            entry = stored(dataset)["1"]
            assert entry["naming"] == "manual"
            assert not {"model", "shown", "usage", "unreadable"} & set(entry)
            config = dataset.get_run_info("run").config
            assert config.labels["model"] == model  # the other names are still its

            asked = len(server.requests)
            label(dataset, run_key="run", model=model, base_url=server.url, delegate=False,
                  progress=False)
            assert len(server.requests) == asked  # every cluster has a name
            assert stored(dataset)["1"]["name"] == "Pale squares"

            label(dataset, run_key="run", model=model, base_url=server.url, delegate=False,
                  progress=False, relabel=True)
            assert stored(dataset)["1"]["naming"] == "llm"
            assert labels_by_cluster(dataset)["1"] == {stored(dataset)["1"]["name"]}
    finally:
        dataset.delete()


def test_a_deleted_label_field_is_written_again(dataset):
    """The run's label field, deleted with FiftyOne's own tools, comes back
    whole with the next name."""
    operator("name_cluster")(dataset, "run", "0", "First")
    dataset.delete_sample_field(LABELS)
    operator("name_cluster")(dataset, "run", "1", "Second")
    assert labels_by_cluster(dataset) == {"0": {"First"}, "1": {"Second"}, "2": {None}}
    assert isinstance(dataset.get_field(LABELS), fo.StringField)
