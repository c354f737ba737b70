"""The actions on clusters through the App server's routes, with the bodies
the App sends: a form offering the run's clusters, live progress, and a
refused action shown as the plugin's message with the dataset unchanged."""

import pytest

import fiftyone as fo
from conftest import blob_dataset_of, operator, snapshot


@pytest.fixture(scope="module")
def blobs():
    """300 samples in three tight 8-D blobs, clustered by k-means (``acts``)."""
    dataset = blob_dataset_of(300, 8, centers=3, seed=4, cluster_std=0.3)
    operator("compute_clusters")(dataset, run_key="acts", embeddings="embedding",
                                 kmeans__n_clusters=3, reduce="none", progress=False)
    yield dataset
    dataset.delete()


def test_actions_run_from_the_app(app, blobs):
    form = app.form(blobs, "tag_clusters", dict(run_key="acts"))
    sizes = blobs.count_values("acts_cluster")
    assert [(c["value"], c["label"]) for c in form["clusters"]["view"]["choices"]] == [
        (c, f"{c} ({sizes[c]})") for c in ("0", "1", "2")]

    tagged = app.execute(blobs, "tag_clusters", dict(run_key="acts", clusters=["1"],
                                                      tag="seen"))
    assert tagged["result"]["num_changed"] == sizes["1"]
    blobs.reload()
    assert blobs.count_sample_tags() == {"seen": sizes["1"]}

    found = app.execute(blobs, "find_cluster_duplicates", dict(run_key="acts"))
    assert found["error"] is None and "reload_dataset" in found["requests"]
    labels = [p["label"].split(" ")[0] for p in found["progress"]]
    assert labels[0] == "read" and "compare" in labels and labels[-1] == "done", labels
    blobs.reload()
    assert found["result"]["num_duplicates"] == blobs.count_values("acts_duplicate")[True]

    # the form marks what the parameters refuse, and the App keeps Execute
    # disabled; a client that posts anyway is refused
    form = app.form(blobs, "reassign_noise", dict(run_key="acts"))
    assert "which has no noise" in form["run_key"]["error_message"]
    before = snapshot(blobs)
    refused = app.execute(blobs, "reassign_noise", dict(run_key="acts"), status=500)
    assert "'Clustering run' (run_key) names run 'acts' (kmeans), which has no noise" in refused
    refused = app.execute(blobs, "tag_clusters", dict(run_key="acts", clusters=["7"], tag="x"),
                          status=500)
    assert "names no cluster of run 'acts': 7" in refused["stack"]

    # what only the data refuses is said above the form, then as the output
    operator("compute_clusters")(blobs, run_key="noisy", embeddings="embedding",
                                 method="hdbscan", reduce="none", progress=False)
    blobs.add_sample_field("noisy_reassigned", fo.BooleanField)  # the user's own
    before = snapshot(blobs)
    form = app.form(blobs, "reassign_noise", dict(run_key="noisy"))
    assert "Field 'noisy_reassigned' already exists" in form["problem"]["view"]["description"]
    failed = app.execute(blobs, "reassign_noise", dict(run_key="noisy"))
    assert "Field 'noisy_reassigned' already exists" in failed["error"]
    assert "Traceback" not in failed["error"] and "notify" in failed["requests"]
    assert snapshot(blobs) == before
