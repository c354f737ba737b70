"""label_clusters_with_llm queued from an App server without a key (the one
started as the README says to enable scheduling), executed by a separate
``fiftyone delegated launch`` whose environment alone holds the API key and
the base URL of the tests' OpenAI-compatible server."""

import json
import uuid

from bson import ObjectId, json_util

from conftest import groups_to_name, operator
from llm_server import LLMServer, asked

from .conftest import run_launcher

KEY = "sk-e2e-" + uuid.uuid4().hex
MODEL = "vision-e2e-1"


def test_labeling_under_the_launcher_with_key_and_base_url_in_its_environment(
        scheduling_app, digits, monkeypatch):
    from fiftyone.core.odm import get_db_conn

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    operator("compute_clusters")(digits, run_key="e2e_named", embeddings="pixels",
                                 method="kmeans", kmeans__n_clusters=6, reduce="none",
                                 random_state=0)
    with LLMServer(KEY, MODEL, max_side=64) as server:
        queued = scheduling_app.execute(digits, "label_clusters_with_llm", dict(
            run_key="e2e_named", model=MODEL, max_image_size=64, delegate=True))
        assert queued["delegated"] and queued["error"] is None, queued
        op_id = ObjectId(queued["result"]["id"]["$oid"])

        (op,), output = run_launcher([op_id], "delegated-labeling.log",
                                     OPENAI_API_KEY=KEY, OPENAI_BASE_URL=server.url)
        assert op.run_state == "completed", (op.result, output)
        assert server.problems == [] and asked(server.requests) == (
            6, groups_to_name(digits, "e2e_named"))

    digits.reload()
    clusters = digits.load_run_results("e2e_named", cache=False).clusters
    names = [c["name"] for c in clusters]
    assert all(names) and len(set(names)) == 6  # named, and distinct
    for c in clusters:
        view = digits.match({"e2e_named_cluster": c["id"]})
        assert set(view.values("e2e_named_cluster_label")) == {c["name"]}
        assert c["model"] == MODEL and len(c["shown"]) == 5
    labels = digits.get_run_info("e2e_named").config.labels
    assert labels["base_url"] == server.url and labels["model"] == MODEL
    record = get_db_conn().delegated_ops.find_one({"_id": op_id})
    assert KEY not in json_util.dumps(record)
    assert KEY not in output
    assert KEY not in json.dumps(digits.get_run_info("e2e_named").serialize(), default=str)
