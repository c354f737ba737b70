"""label_clusters_with_llm through FiftyOne's operator machinery, the official
openai client and a local OpenAI-compatible server (tests/llm_server.py):
only the remote model is simulated. The images are flat colours, one colour
per true blob, so the simulated model's names can be checked."""

import json
import logging
import os
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
from bson import json_util
from PIL import Image

import fiftyone as fo
from fiftyone.operators.delegated import DelegatedOperationService
from conftest import blobs, execute, form, make_dataset, operator, plugin_module, snapshot
from llm_server import COLOURS, LLMServer

UserError = plugin_module("clustering.params").UserError
KEY = "sk-test-" + uuid.uuid4().hex
MODEL = "vision-test-1"
PALETTE = ["red", "green", "blue", "yellow", "purple", "orange"]
NAME = "label_clusters_with_llm"


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return KEY


@pytest.fixture
def server(api_key):
    with LLMServer(api_key, MODEL, max_side=32) as server:
        yield server


def painted(tmp_path, centers=4, per=12, noise=0, method="kmeans", seed=0):
    """Samples whose embeddings are blobs and whose files are flat-colour
    images (80x60, one colour per blob, every third a JPEG), clustered into
    run 'run'. Noise samples get random vectors and black images."""
    X, y = blobs(centers * per, 8, centers=centers, seed=seed, cluster_std=0.3)
    rng = np.random.default_rng(seed)
    if noise:
        X = np.vstack([X, rng.normal(size=(noise, 8)).astype(np.float32) * 3])
        y = np.concatenate([y, np.full(noise, -1)])
    dataset = make_dataset(X, y)
    paths = []
    for i, (sample_id, label) in enumerate(zip(dataset.values("id"), y)):
        colour = COLOURS["black" if label < 0 else PALETTE[label]]
        pixels = np.clip(np.array(colour) + rng.integers(-8, 9, (60, 80, 3)), 0, 255)
        path = str(tmp_path / f"{i}.{'jpg' if i % 3 == 0 else 'png'}")
        Image.fromarray(pixels.astype(np.uint8)).save(path)
        paths.append(path)
    dataset.set_values("filepath", paths)
    params = dict(kmeans__n_clusters=centers) if method == "kmeans" else dict(
        hdbscan__min_cluster_size=5, hdbscan__min_samples=5)
    execute("compute_clusters", dataset, dict(
        run_key="run", embeddings="embedding", method=method, reduce="none",
        random_state=0, **params)).raise_exceptions()
    return dataset


def expected_names(dataset):
    """``{cluster id: name}`` the simulated model gives: its blob's colour."""
    names = {}
    for cluster, truth in zip(dataset.values("run_cluster"),
                              dataset.values("ground_truth.label")):
        if cluster != "-1":
            names[cluster] = f"{PALETTE[int(truth)].capitalize()} things"
    return names


def label(dataset, server, **params):
    """Runs the operator now, as Python calls it, against ``server``;
    returns its result."""
    base = dict(run_key="run", model=MODEL, base_url=server.url, max_image_size=32,
                timeout=5, delegate=False, progress=False)
    base.update(params)
    return operator(NAME)(dataset, **base)


def clusters(dataset):
    return {c["id"]: c for c in dataset.load_run_results("run", cache=False).clusters}


def cluster_of(dataset, cluster_id):
    return dataset.match(fo.ViewField("run_cluster") == cluster_id)


@pytest.mark.smoke
def test_happy_path_names_every_cluster(tmp_path, server):
    dataset = painted(tmp_path)
    ids_before = dataset.values("run_cluster")
    summary = operator(NAME)(
        dataset, run_key="run", model=MODEL, base_url=server.url, max_image_size=32,
        context="flat colour swatches", delegate=False)

    assert server.problems == []
    assert summary["num_named"] == 4 and summary["failed"] == []
    assert len(server.requests) == 4
    assert all(len(r.images) == 5 for r in server.requests)
    assert all("About the dataset: flat colour swatches." in r.text for r in server.requests)
    mimes = {mime for r in server.requests for mime, _, _ in r.images}
    assert mimes == {"image/png", "image/jpeg"}  # JPEG files stay JPEG
    assert {max(w, h) for r in server.requests for _, w, h in r.images} == {32}

    expected = expected_names(dataset)
    assert dataset.values("run_cluster") == ids_before  # cluster ids untouched
    assert dataset.values("run_cluster_label") == [
        expected[c] for c in dataset.values("run_cluster")]
    stored = clusters(dataset)
    for cid, entry in stored.items():
        assert entry["name"] == expected[cid]
        assert entry["description"].startswith("Images that are mostly")
        assert entry["model"] == MODEL and "error" not in entry
        assert entry["shown"][0] == entry["representatives"][0]  # most typical first
        assert set(entry["shown"]) <= set(cluster_of(dataset, cid).values("id"))
        assert entry["usage"]["total_tokens"] == 120 + 85 * 5
    config = dataset.get_run_info("run").config
    assert config.labels["label_field"] == "run_cluster_label"
    assert config.labels["model"] == MODEL
    assert "Name the cluster" in config.labels["prompt"]["user"]
    assert "flat colour swatches" in config.labels["prompt"]["user"]
    assert config.labels["prompt"]["system"].startswith("You name clusters")

    info = operator("get_clustering_run_info")(dataset, "run")
    assert {c["id"]: c["name"] for c in info["clusters"]} == expected
    assert info["failed"] == []

    # the images shown are the same every time for a given run
    label(dataset, server, relabel=True)
    again = clusters(dataset)
    assert {c: e["shown"] for c, e in again.items()} == {c: e["shown"] for c, e in stored.items()}
    dataset.delete()


def test_near_duplicates_are_not_shown_twice(tmp_path, server):
    dataset = painted(tmp_path, centers=2, per=15)
    # three identical samples at the heart of cluster "0": its most typical
    centre = np.mean(np.stack(cluster_of(dataset, "0").values("embedding")), axis=0)
    template = cluster_of(dataset, "0").first()
    dupes = dataset.add_samples([
        fo.Sample(filepath=template.filepath, embedding=centre,
                  ground_truth=template.ground_truth) for _ in range(3)], progress=False)
    execute("compute_clusters", dataset, dict(
        run_key="run", embeddings="embedding", method="kmeans", kmeans__n_clusters=2,
        reduce="none", overwrite=True)).raise_exceptions()
    stored = clusters(dataset)
    group = next(e for e in stored.values() if set(dupes) & set(e["representatives"]))
    assert set(group["representatives"][:3]) == set(dupes)

    label(dataset, server)
    shown = clusters(dataset)[group["id"]]["shown"]
    assert shown[0] == group["representatives"][0]
    assert len(set(shown) & set(dupes)) == 1, shown
    dataset.delete()


def test_noise_is_excluded_unless_asked(tmp_path, server):
    dataset = painted(tmp_path, centers=3, per=15, noise=8, method="hdbscan")
    noise = cluster_of(dataset, "-1")
    assert len(noise) > 0
    k = len(dataset.load_run_results("run").clusters)

    label(dataset, server)
    assert len(server.requests) == k and "black" not in server.colours_asked()
    assert set(noise.values("run_cluster_label")) == {None}
    assert "name" not in dataset.load_run_results("run", cache=False).noise

    server.requests.clear()
    summary = label(dataset, server, include_noise=True)
    assert server.colours_asked() == ["black"]  # only the noise, the rest is named
    assert summary["num_named"] == 1
    assert set(noise.values("run_cluster_label")) == {"Black things"}
    assert dataset.load_run_results("run", cache=False).noise["name"] == "Black things"
    assert server.problems == []
    dataset.delete()


def test_failed_cluster_is_recorded_then_resumed_then_relabeled(tmp_path, server):
    dataset = painted(tmp_path)
    expected = expected_names(dataset)
    blue = next(c for c, name in expected.items() if name == "Blue things")
    server.failing = {"blue"}

    summary = label(dataset, server, max_retries=1)
    assert summary["num_named"] == 3
    assert [f["id"] for f in summary["failed"]] == [blue]
    assert "HTTP 500" in summary["failed"][0]["error"]
    assert "gave up after 2 attempts" in summary["failed"][0]["error"]
    assert f"cluster {blue}: HTTP 500" in summary["summary"]
    assert server.colours_asked().count("blue") == 2  # one retry
    stored = clusters(dataset)
    assert "HTTP 500" in stored[blue]["error"] and "name" not in stored[blue]
    assert set(cluster_of(dataset, blue).values("run_cluster_label")) == {None}
    info = operator("get_clustering_run_info")(dataset, "run")
    assert info["failed"] == [blue]
    assert dataset.get_run_info("run").config.labels["failed"] == [blue]

    # run again: only the cluster without a name is asked
    server.failing = set()
    server.requests.clear()
    summary = label(dataset, server)
    assert server.colours_asked() == ["blue"]
    assert summary["num_named"] == 1 and summary["num_already_named"] == 3
    stored = clusters(dataset)
    assert {c: e["name"] for c, e in stored.items()} == expected
    assert not any("error" in e for e in stored.values())
    assert dataset.values("run_cluster_label") == [
        expected[c] for c in dataset.values("run_cluster")]

    # relabel asks every cluster again; a failed relabel keeps the old name
    server.requests.clear()
    server.failing = {"red"}
    red = next(c for c, name in expected.items() if name == "Red things")
    summary = label(dataset, server, relabel=True, max_retries=0)
    assert sorted(server.colours_asked()) == ["blue", "green", "red", "yellow"]
    assert summary["num_named"] == 3
    stored = clusters(dataset)
    assert stored[red]["name"] == "Red things"
    assert stored[red]["error"].startswith("relabel failed, previous name kept")
    assert set(cluster_of(dataset, red).values("run_cluster_label")) == {"Red things"}
    dataset.delete()


def test_unreadable_files_are_replaced_by_other_samples(tmp_path, server):
    dataset = painted(tmp_path)
    stored = clusters(dataset)
    first, second = stored["0"]["representatives"][:2]
    os.remove(dataset[first].filepath)
    with open(dataset[second].filepath, "wb") as f:
        f.write(b"not an image at all")
    for path in cluster_of(dataset, "1").values("filepath"):
        os.remove(path)  # nothing readable in cluster "1"

    summary = label(dataset, server)
    assert server.problems == []
    stored = clusters(dataset)
    assert len(stored["0"]["shown"]) == 5
    assert not {first, second} & set(stored["0"]["shown"])
    assert set(stored["0"]["unreadable"]) == {first, second}
    assert stored["0"]["name"] == expected_names(dataset)["0"]
    assert [f["id"] for f in summary["failed"]] == ["1"]
    assert "no readable image among the 12 files tried" in stored["1"]["error"]
    assert len(server.requests) == 3  # no call for the cluster without images
    dataset.delete()


def test_429_waits_as_long_as_retry_after_says(tmp_path, server):
    dataset = painted(tmp_path, centers=2)
    server.faults = [("429", 2)]
    summary = label(dataset, server, concurrency=1)
    assert summary["num_named"] == 2
    first, retry = server.requests[:2]
    assert first.status == 429 and retry.status == 200
    assert first.colour == retry.colour
    # the client's own backoff would retry within 0.5 s
    assert retry.at - first.at >= 2.0
    dataset.delete()


def test_500_and_timeouts_are_retried(tmp_path, server):
    dataset = painted(tmp_path, centers=2)
    server.faults = [("500",), ("slow", 2.0)]
    summary = label(dataset, server, concurrency=1, timeout=0.5)
    assert summary["num_named"] == 2 and summary["failed"] == []
    first, slow, retry, other = server.requests
    assert first.status == 500 and retry.status == 200 and other.status == 200
    assert slow.fault == ("slow", 2.0) and retry.colour == slow.colour
    assert 0.5 <= retry.at - slow.at < 2.0  # retried after the timeout, not the reply
    assert {c["name"] for c in clusters(dataset).values()} == set(
        expected_names(dataset).values())
    dataset.delete()


def test_unparseable_replies_are_retried_and_fenced_json_is_read(tmp_path, server):
    dataset = painted(tmp_path, centers=3)
    server.faults = [("malformed",), ("not_json",), ("fenced",)]
    summary = label(dataset, server, concurrency=1)
    assert summary["num_named"] == 3
    # two retries for the two unusable replies; the fenced JSON needs none
    assert len(server.requests) == 5
    assert {c: e["name"] for c, e in clusters(dataset).items()} == expected_names(dataset)

    server.requests.clear()
    server.faults = [("malformed",)] * 3
    summary = label(dataset, server, concurrency=1, relabel=True, max_retries=2)
    assert summary["num_named"] == 2
    failure = summary["failed"][0]["error"]
    assert "unusable reply" in failure and "These look like" in failure
    dataset.delete()


def test_same_name_twice_is_made_distinct(tmp_path, server):
    dataset = painted(tmp_path)
    ids_before = dataset.values("run_cluster")
    server.fixed_name = "Kitchens"
    label(dataset, server)
    names = {c: e["name"] for c, e in clusters(dataset).items()}
    # the largest cluster ("0") keeps the plain name
    assert names == {"0": "Kitchens", "1": "Kitchens (2)", "2": "Kitchens (3)",
                     "3": "Kitchens (4)"}
    assert len(dataset.distinct("run_cluster_label")) == 4
    assert dataset.values("run_cluster") == ids_before

    # a later run keeps existing names and numbers the newcomer
    results = dataset.load_run_results("run", cache=False)
    entry = results.clusters[2]
    for key in ("name", "description", "model", "shown", "usage", "unreadable"):
        entry.pop(key)
    dataset.save_run_results("run", results, overwrite=True, cache=False)
    server.fixed_name = "kitchens"
    label(dataset, server)
    names = {c: e["name"] for c, e in clusters(dataset).items()}
    assert names["2"] == "Kitchens (3)"  # "kitchens" is taken, whatever the case
    assert names["0"] == "Kitchens" and len(set(names.values())) == 4
    dataset.delete()


def test_names_are_cleaned_to_one_short_line(tmp_path, server):
    dataset = painted(tmp_path, centers=2)
    server.fixed_name = '  "**kitchens and dining rooms with islands**"\nSecond line'
    server.fixed_description = "Bright rooms\nwith counters. " + "Very " * 100
    label(dataset, server)
    stored = clusters(dataset)
    assert stored["0"]["name"] == "Kitchens and dining rooms"
    assert stored["1"]["name"] == "Kitchens and dining rooms (2)"
    description = stored["0"]["description"]
    assert description.startswith("Bright rooms with counters. Very")
    assert "\n" not in description and len(description) <= 300
    dataset.delete()


def test_names_move_with_label_field_and_go_with_the_run(tmp_path, server):
    dataset = painted(tmp_path, centers=2)
    label(dataset, server)
    server.requests.clear()
    summary = label(dataset, server, label_field="colour_name")
    assert server.requests == [] and summary["num_already_named"] == 2
    assert not dataset.has_field("run_cluster_label")  # the run's old field
    expected = expected_names(dataset)
    assert dataset.values("colour_name") == [expected[c] for c in dataset.values("run_cluster")]
    assert dataset.get_run_info("run").config.labels["label_field"] == "colour_name"
    deleted = operator("delete_clustering_run")(dataset, "run")
    assert "colour_name" in deleted["deleted_fields"]
    assert not dataset.has_field("colour_name")
    dataset.delete()


def test_missing_key(tmp_path, server, monkeypatch):
    dataset = painted(tmp_path, centers=2)
    monkeypatch.delenv("OPENAI_API_KEY")
    fields = form(NAME, dataset, dict(run_key="run", delegate=False))
    assert fields["api_key"]["invalid"]
    assert "OPENAI_API_KEY is not set" in fields["api_key"]["error_message"]
    assert "OPENAI_API_KEY is not set" in fields["api_key"]["view"]["description"]
    # queueing is allowed: the key is needed where the run will execute
    queued = form(NAME, dataset, dict(run_key="run", delegate=True))
    assert not queued["api_key"].get("invalid")
    assert "fiftyone delegated launch" in queued["api_key"]["view"]["description"]
    before = snapshot(dataset)
    with pytest.raises(UserError, match="OPENAI_API_KEY is not set"):
        label(dataset, server)
    assert snapshot(dataset) == before
    assert server.requests == []
    dataset.delete()


def test_form_offers_runs_and_defaults(tmp_path, api_key, monkeypatch):
    dataset = painted(tmp_path, centers=2)
    # a stock App cannot schedule: runs execute now, and the form says how to
    # enable scheduling instead of offering a Delegate box that dead-ends
    fields = form(NAME, dataset, dict(run_key="run"))
    assert "delegate" not in fields
    assert "FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS" in fields["scheduling"]["view"]["label"]
    monkeypatch.setattr(fo.config, "allow_legacy_orchestrators", True)
    fields = form(NAME, dataset, dict(run_key="run"))
    assert "api_key" not in fields
    assert fields["run_key"]["view"]["choices"][0]["value"] == "run"
    assert fields["label_field"]["default"] == "run_cluster_label"
    assert fields["model"]["default"] and fields["num_images"]["default"] == 5
    assert fields["max_image_size"]["default"] == 512
    assert fields["concurrency"]["default"] == 8
    assert fields["delegate"]["default"] is True
    assert fields["relabel"]["default"] is False and fields["include_noise"]["default"] is False
    assert not any(p.get("invalid") for p in fields.values())
    bad = form(NAME, dataset, dict(run_key="run", num_images=0, label_field="run_cluster"))
    assert "'Num images' (num_images) must be an integer in [1, 20]" in bad[
        "num_images"]["error_message"]
    assert "cluster ids are never overwritten" in bad["label_field"]["error_message"]
    dataset.delete()


@pytest.fixture
def clustered(tmp_path):
    dataset = painted(tmp_path, centers=2)
    config = dataset.init_run(note="not a clustering run")
    dataset.register_run("other", config)
    yield dataset
    dataset.delete()


@pytest.mark.parametrize("params,phrases", [
    (dict(run_key="nope"), ["'Clustering run' (run_key)", "has no run 'nope'",
                            "Clustering runs: run"]),
    (dict(run_key="other"), ["'Clustering run' (run_key)", "run 'other' is not a clustering run"]),
    (dict(num_images=0), ["(num_images) must be an integer in [1, 20]; got 0"]),
    (dict(concurrency=0), ["(concurrency) must be an integer in [1, 64]"]),
    (dict(max_image_size=8), ["(max_image_size) must be an integer in [32, 4096]"]),
    (dict(timeout=0), ["(timeout) must be a number in [0.1, 600]"]),
    (dict(max_retries=-1), ["(max_retries) must be an integer in [0, 10]"]),
    (dict(model=""), ["(model) is required"]),
    (dict(context="x" * 501), ["(context) must be at most 500 characters"]),
    (dict(label_field="run_cluster"), ["(label_field)", "cluster ids are never overwritten"]),
    (dict(label_field="filepath"), ["(label_field)", "'filepath' is an existing field"]),
    (dict(label_field="my label"), ["(label_field) must be a plain field name"]),
    (dict(delegate="false", concurrency=10**6), ["(concurrency) must be an integer in [1, 64]"]),
    (dict(num_images=10**6), ["(num_images) must be an integer in [1, 20]"]),
    (dict(base_url="ftp://example.com"), ["(base_url) must be an http(s) URL"]),
    (dict(relabel="maybe"), ["(relabel) must be true or false"]),
])
def test_bad_parameter_values(clustered, server, params, phrases):
    before = snapshot(clustered)
    with pytest.raises(UserError) as raised:
        label(clustered, server, **params)
    for phrase in phrases:
        assert phrase in str(raised.value), str(raised.value)
    assert snapshot(clustered) == before
    assert server.requests == []


def test_unknown_python_parameter_is_named(clustered):
    with pytest.raises(TypeError, match="unknown parameter.*num_imgs"):
        operator(NAME)(clustered, run_key="run", num_imgs=3)


def test_wrong_key_or_model_stops_clearly_and_the_key_never_leaks(
        tmp_path, server, monkeypatch, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    dataset = painted(tmp_path, centers=2)
    wrong = "sk-wrong-" + uuid.uuid4().hex
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    with pytest.raises(UserError) as raised:
        label(dataset, server)
    message = str(raised.value)
    assert "rejected the API key (HTTP 401)" in message
    assert "check the plugin secret OPENAI_API_KEY" in message
    assert "Naming stopped" in message
    assert wrong not in message
    for entry in clusters(dataset).values():  # the reason is kept per cluster
        assert "rejected the API key" in entry["error"] and "name" not in entry

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with pytest.raises(UserError, match="HTTP 404 for model 'no-such-model'"):
        label(dataset, server, model="no-such-model")

    server.faults = [("500",)]
    label(dataset, server, max_retries=0)
    stored = json.dumps(dataset.get_run_info("run").serialize(), default=str)
    stored += json.dumps(dataset.load_run_results("run", cache=False).serialize())
    logs = caplog.text + "".join(capfd.readouterr())
    assert "HTTP 500" in stored and "HTTP 500" in logs
    for secret in (KEY, wrong):
        assert secret not in stored
        assert secret not in logs
    dataset.delete()


def _launch_delegated(env):
    """``fiftyone delegated launch`` in its own process, with ``env``."""
    cli = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    return subprocess.Popen([cli, "delegated", "launch"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.smoke
def test_delegated_run_under_fiftyone_delegated_launch(tmp_path, server, monkeypatch):
    dataset = painted(tmp_path)
    server.delay = 0.2
    queued = operator(NAME)(dataset, run_key="run", model=MODEL, base_url=server.url,
                            max_image_size=32, concurrency=1)  # delegate is the default
    op_id = queued.id
    assert len(server.requests) == 0 and "name" not in clusters(dataset)["0"]

    # the key is read in the executing process, from its own environment
    monkeypatch.delenv("OPENAI_API_KEY")
    service = DelegatedOperationService()
    launcher = _launch_delegated(dict(os.environ, OPENAI_API_KEY=KEY))
    labels = []
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            doc = service.get(op_id)
            if doc.status is not None and doc.status.label and doc.status.label not in labels:
                labels.append(doc.status.label)
            if doc.run_state in ("completed", "failed"):
                break
            time.sleep(0.02)
    finally:
        launcher.terminate()
        output, _ = launcher.communicate(timeout=30)
    doc = service.get(op_id)
    assert doc.run_state == "completed", (doc.run_state, doc.result, output)
    assert server.problems == [] and len(server.requests) == 4
    dataset.reload()
    expected = expected_names(dataset)
    assert dataset.values("run_cluster_label") == [
        expected[c] for c in dataset.values("run_cluster")]
    # progress per cluster, in order
    counts = [int(label.split("/")[0]) for label in labels if "clusters named" in label]
    assert len(counts) >= 3 and counts == sorted(counts), labels
    assert doc.status.progress == 1.0 and doc.status.label == "4/4 clusters named"

    raw = fo.core.odm.get_db_conn().delegated_ops.find_one({"_id": doc.id})
    assert KEY not in json_util.dumps(raw)
    assert KEY not in output
    assert KEY not in json.dumps(dataset.get_run_info("run").serialize(), default=str)
    dataset.delete()


def test_delegated_run_without_the_key_in_its_process_fails_clearly(
        tmp_path, server, monkeypatch):
    dataset = painted(tmp_path, centers=2)
    queued = operator(NAME)(dataset, run_key="run", model=MODEL, base_url=server.url,
                            max_image_size=32)
    monkeypatch.delenv("OPENAI_API_KEY")
    before = snapshot(dataset)
    service = DelegatedOperationService()
    [result] = service.execute_queued_operations(dataset_name=dataset.name)
    doc = service.get(queued.id)
    assert doc.run_state == "failed"
    assert "OPENAI_API_KEY is not set" in str(result.error) + str(doc.result.error)
    assert snapshot(dataset) == before and server.requests == []
    dataset.delete()


def test_a_server_that_echoes_the_key_gets_it_stored_nowhere(tmp_path, server, caplog):
    caplog.set_level(logging.DEBUG)
    dataset = painted(tmp_path, centers=2)
    server.faults = [("echo_key",)] * 2 + [("echo_key", "description")] * 4
    summary = label(dataset, server, concurrency=1, max_retries=3)
    assert summary["num_named"] == 2
    stored = json.dumps(dataset.get_run_info("run").serialize(), default=str)
    stored += json.dumps(dataset.load_run_results("run", cache=False).serialize())
    stored += json.dumps(dataset.values("run_cluster_label"))
    assert KEY not in stored and KEY not in caplog.text and KEY not in json.dumps(summary)
    assert "[redacted]" in stored  # the echoed description, key removed
    dataset.delete()


def test_hostile_names_are_stored_clean(tmp_path, server):
    dataset = painted(tmp_path, centers=2)
    server.faults = [("hostile_name",)] * 2
    label(dataset, server, concurrency=1)
    for entry in clusters(dataset).values():
        assert entry["name"] in ("Red things", "Green things", "Red things (2)",
                                 "Green things (2)"), entry["name"]
        assert all(ch.isprintable() for ch in entry["name"] + entry["description"])
        assert "<" not in entry["name"] and "*" not in entry["name"]
    assert all(ch.isprintable() for v in dataset.values("run_cluster_label") for ch in v)
    dataset.delete()


def test_when_every_cluster_fails_no_label_field_is_written(tmp_path, server):
    dataset = painted(tmp_path, centers=2)
    server.failing = {"red", "green"}
    with pytest.raises(UserError, match="No cluster could be named"):
        label(dataset, server, max_retries=0)
    dataset.reload()
    assert not dataset.has_field("run_cluster_label")
    config = dataset.get_run_info("run").config
    assert config.labels["label_field"] is None and len(config.labels["failed"]) == 2
    assert all("HTTP 500" in e["error"] for e in clusters(dataset).values())
    assert operator("get_clustering_run_info")(dataset, "run")["failed"] == ["0", "1"]
    dataset.delete()


def test_a_second_naming_of_the_same_run_is_refused_while_the_first_runs(tmp_path, server):
    import threading

    dataset = painted(tmp_path, centers=2)
    server.delay = 1.0
    first = threading.Thread(target=label, args=(dataset, server), kwargs=dict(concurrency=1))
    first.start()
    try:
        deadline = time.monotonic() + 30
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(UserError, match="Run key 'run' is being written by another labeling"):
            label(dataset, server)
    finally:
        first.join()
    assert len(clusters(dataset)) == 2 and all(e["name"] for e in clusters(dataset).values())
    dataset.delete()
