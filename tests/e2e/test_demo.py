"""After the README's first command (``make demo``), the plugin is where
FiftyOne looks for plugins: a fresh Python process, ``fiftyone plugins
list`` and ``fiftyone delegated launch`` find it with no line of set-up, and
the demo's clusters are the same at every run (it is seeded)."""

import json
import os
import subprocess
import sys
import time

import fiftyone as fo
from bson import ObjectId
from conftest import REPO

from .conftest import child_env, cli_path

PROBE = """
import json, sys
import fiftyone as fo
import fiftyone.operators as foo

dataset = fo.load_dataset("clusterlab-digits")
info = foo.get_operator("@clusterlab/clustering/get_clustering_run_info")(dataset, "digits")
queued = foo.get_operator("@clusterlab/clustering/compute_clusters")(
    dataset, run_key="launched", embeddings="pixels", method="kmeans",
    kmeans__n_clusters=10, delegate=True)
print(json.dumps(dict(sizes=[c["size"] for c in info["clusters"]], queued=str(queued.id))))
"""


def test_after_the_demo_the_plugin_is_found_without_set_up(tmp_path):
    from fiftyone.operators.delegated import DelegatedOperationService

    # a user's own home: FiftyOne's default plugins dir lives there
    env = child_env(HOME=str(tmp_path), FIFTYONE_PLUGINS_DIR=None)
    demo = [sys.executable, os.path.join(REPO, "demo", "digits.py"), "--no-app"]
    first = subprocess.run(demo, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    plugins_dir = tmp_path / "fiftyone" / "__plugins__"
    assert f"installed in {plugins_dir}" in first.stdout
    dataset = fo.load_dataset("clusterlab-digits")
    clusters = dataset.values("digits_cluster")

    # seeded: a second run gives the same clusters
    second = subprocess.run(demo, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    dataset.reload()
    assert dataset.values("digits_cluster") == clusters

    listed = subprocess.run([cli_path(), "plugins", "list"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert "@clusterlab/clustering" in listed.stdout, listed.stdout

    probe = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                           text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-3000:]
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    op_id = ObjectId(found["queued"])
    assert sum(found["sizes"]) <= len(dataset)

    launcher = subprocess.Popen([cli_path(), "delegated", "launch"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    service = DelegatedOperationService()
    try:
        deadline = time.monotonic() + 240
        while service.get(op_id).run_state not in ("completed", "failed"):
            assert time.monotonic() < deadline and launcher.poll() is None
            time.sleep(0.2)
    finally:
        launcher.terminate()
        output, _ = launcher.communicate(timeout=60)
    op = service.get(op_id)
    assert op.run_state == "completed", (op.result, output[-3000:])
    dataset.reload()
    assert len(dataset.distinct("launched_cluster")) == 10
    dataset.delete()
