"""A run queued from the App (its Delegate checkbox) and executed by a
separate ``fiftyone delegated launch`` process; then both that run and one
made by the App server are read by a plain Python process."""

import json
import os
import subprocess
import sys
import time

import pytest
from bson import ObjectId

from conftest import blob_dataset_of

from .conftest import ARTIFACTS, child_env

STAGES = ["read", "prepare", "fit", "measure", "map", "write", "done"]


@pytest.fixture(scope="module")
def launched(app):
    """Queues compute_clusters through the App's execute route, runs it under
    ``fiftyone delegated launch`` while watching its status, stops the
    launcher; also runs one clustering immediately through the App."""
    from fiftyone.operators.delegated import DelegatedOperationService

    dataset = blob_dataset_of(6000, 32, centers=4, seed=5)
    now = app.execute(dataset, "compute_clusters", dict(
        run_key="now", embeddings="embedding", method="kmeans", kmeans__n_clusters=4,
        reduce="none"))
    assert now["error"] is None, now["error"]
    queued = app.execute(dataset, "compute_clusters", dict(
        run_key="later", embeddings="embedding", method="hdbscan", reduce="pca",
        n_components=8, hdbscan__min_cluster_size=50, delegate=True))
    assert queued["delegated"] and queued["error"] is None, queued
    op_id = ObjectId(queued["result"]["id"]["$oid"])
    dataset.reload()
    queued_runs = dataset.list_runs()

    service = DelegatedOperationService()
    os.makedirs(ARTIFACTS, exist_ok=True)
    log_path = os.path.join(ARTIFACTS, "delegated-launch.log")
    log = open(log_path, "w")
    launcher = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "fiftyone"), "delegated", "launch"],
        env=child_env(), stdout=log, stderr=subprocess.STDOUT)
    seen = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            doc = service.get(op_id)
            status = (doc.run_state, doc.status.progress, doc.status.label) if (
                doc.status is not None) else (doc.run_state, None, None)
            if not seen or seen[-1] != status:
                seen.append(status)
            if doc.run_state in ("completed", "failed") or launcher.poll() is not None:
                break
            time.sleep(0.01)
    finally:
        launcher.terminate()
        launcher.wait(timeout=60)
        log.close()
    with open(log_path) as f:
        output = f.read()
    dataset.reload()
    yield dict(dataset=dataset, op=service.get(op_id), seen=seen, output=output,
               queued_runs=queued_runs)
    dataset.delete()


def test_delegated_run_completes_under_the_launcher_and_reports_progress(launched):
    dataset, op = launched["dataset"], launched["op"]
    assert "later" not in launched["queued_runs"]  # nothing ran before the launcher
    assert op.run_state == "completed", (op.run_state, op.result, launched["output"])
    assert op.status.progress == 1.0 and op.status.label == "done"

    config = dataset.get_run_info("later").config
    assert config.method == "hdbscan" and config.params["min_cluster_size"] == 50
    assert config.prepare["reduce"] == "pca" and config.prepare["n_components"] == 8
    counts = dataset.count_values("later_cluster")
    assert sum(counts.values()) == len(dataset)
    assert len([c for c in counts if c != "-1"]) == 4
    assert op.result.result["sizes"] == sorted(
        (n for c, n in counts.items() if c != "-1"), reverse=True)

    # the launcher's progress, watched from this process, moves forward by stage
    progress = [(p, label.split(" ")[0]) for state, p, label in launched["seen"]
                if state == "running" and label]
    assert len(progress) >= 2, launched["seen"]
    assert [p for p, _ in progress] == sorted(p for p, _ in progress)
    assert [s for _, s in progress] == sorted((s for _, s in progress), key=STAGES.index)


def test_runs_read_cleanly_in_a_process_that_never_loaded_the_plugin(launched):
    dataset = launched["dataset"]
    code = (
        "import fiftyone as fo, json\n"
        f"ds = fo.load_dataset({dataset.name!r})\n"
        "for key in ('now', 'later'):\n"
        "    info, res = ds.get_run_info(key), ds.load_run_results(key)\n"
        "    print(json.dumps(dict(cls=type(info.config).__name__, method=info.config.method,\n"
        "        field=info.config.cluster_field, params=info.config.params,\n"
        "        sizes=[c['size'] for c in res.clusters], noise=res.noise)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], text=True, capture_output=True,
                          env=child_env(FIFTYONE_PLUGINS_DIR=None), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    now, later = [json.loads(line) for line in proc.stdout.splitlines()]
    assert now["cls"] == later["cls"] == "RunConfig"
    for row, key in ((now, "now"), (later, "later")):
        config = dataset.get_run_info(key).config
        assert (row["method"], row["field"], row["params"]) == (
            config.method, config.cluster_field, config.params)
        counts = dataset.count_values(f"{key}_cluster")
        assert sorted(row["sizes"], reverse=True) == sorted(
            (n for c, n in counts.items() if c != "-1"), reverse=True)
    assert later["noise"]["size"] == dataset.count_values("later_cluster").get("-1", 0)
