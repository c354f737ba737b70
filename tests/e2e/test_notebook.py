"""The README's Python examples under "Operators", run in order in a real
Jupyter kernel of this environment: the notebook door, where an event loop is
running and ``foo.execute_operator`` returns an asyncio Task, not a result.
The executed notebook is saved to tests/artifacts/readme-notebook.ipynb."""

import os
import sys
import time
import uuid

import pytest

from conftest import REPO, URI, plugin_module
from llm_server import COLOURS, LLMServer

from . import notebook
from .conftest import ARTIFACTS, child_env

SECTION = "## Operators"
SAVED = os.path.join(ARTIFACTS, "readme-notebook.ipynb")
KEY = "sk-notebook-" + uuid.uuid4().hex
CONTEXT = "photos from real-estate listings"  # what the README's labeling example says
CLUSTERS = 20  # what the README's compute_clusters example asks for

# The README's examples take "my-dataset" with an embeddings field
# "clip_embeddings" and ask k-means for 20 clusters. The setup makes it:
# 400 samples in 20 Gaussian blobs of 8-d vectors (8-d so that preparation is
# only normalisation, no UMAP: the door is under test here, not the
# algorithms), each with a flat-colour image of its blob for the labeling
# example, and 20 more samples from the same blobs kept aside for the
# assign example. ``record_run`` makes runs the examples assume exist
# (run_a, run_b) by awaiting FiftyOne's Task, which does not go through the
# plugin's ``__call__``.


def setup_cell(images):
    """The setup cell's code; the images are written to ``images``."""
    return f'''
import numpy as np
from PIL import Image
from sklearn.datasets import make_blobs

import fiftyone as fo
import fiftyone.operators as foo

N, NEW, K = 400, 20, {CLUSTERS}
IMAGES = {images!r}
X, blob = make_blobs(n_samples=N + NEW, n_features=8, centers=K, cluster_std=0.5,
                     random_state=0)
PALETTE = {list(COLOURS.values())!r}


def make_sample(i):
    """Sample ``i``: its embedding, its blob and a flat-colour image of its blob."""
    path = f"{{IMAGES}}/{{i}}.png"
    colour = PALETTE[blob[i] % len(PALETTE)]
    Image.fromarray(np.full((24, 32, 3), colour, np.uint8)).save(path)
    return fo.Sample(filepath=path, clip_embeddings=X[i].tolist(), blob=int(blob[i]))


async def record_run(dataset, run_key, **params):
    """Records a k-means run by awaiting FiftyOne's own notebook result."""
    result = await foo.execute_operator(
        "{URI}compute_clusters", dict(dataset=dataset),
        params=dict(run_key=run_key, embeddings="clip_embeddings", method="kmeans",
                    random_state=0, **params))
    result.raise_exceptions()


fo.Dataset("my-dataset").add_samples([make_sample(i) for i in range(N)], progress=False)
new_samples = [make_sample(i) for i in range(N, N + NEW)]
'''

STEPS = [
    notebook.Step('fo.load_dataset("my-dataset")', check='''
assert len(dataset) == N
assert compute_clusters.uri == "@clusterlab/clustering/compute_clusters"
'''),
    notebook.Step("summary = compute_clusters(", check='''
assert isinstance(summary, dict), f"compute_clusters returned {summary!r}, not the run summary"
assert summary["num_clusters"] == K and summary["num_samples"] == N, summary
counts = dataset.count_values("clip_kmeans_cluster")
assert sorted(counts, key=int) == [str(i) for i in range(K)], counts
assert summary["sizes"] == sorted(counts.values(), reverse=True) and sum(summary["sizes"]) == N
assert len(view) == counts["0"] == max(counts.values())
assert "clip_kmeans" in dataset.list_runs()
'''),
    notebook.Step("kmeans__n_clusters=1", check='''
assert type(error).__name__ == "ParameterError", repr(error)
assert str(error).startswith("'N clusters' (kmeans__n_clusters) must be an integer"), error
assert "clip_k1" not in dataset.list_runs() and not dataset.has_field("clip_k1_cluster")
'''),
    notebook.Step('patches_field="ground_truth"', before='''
for sample, x in zip(dataset.iter_samples(autosave=True), X[:N]):
    sample["ground_truth"] = fo.Detections(detections=[
        fo.Detection(label="thing", bounding_box=[0.5 * j, 0.2, 0.4, 0.4],
                     embedding=(x + j).tolist()) for j in range(2)])
''', check='''
assert isinstance(objects, dict) and objects["num_samples"] == 2 * N, objects
clusters = dataset.values("ground_truth.detections.objects_cluster", unwind=True)
assert len(clusters) == 2 * N and set(clusters) == {str(i) for i in range(5)}
assert dataset.get_run_info("objects").config.patches_field == "ground_truth"
assert patches._is_patches and set(patches.values("ground_truth.objects_cluster")) == {"0"}
assert len(patches) == objects["sizes"][0]
'''),
    notebook.Step("get_clustering_run_info", check='''
assert isinstance(info, dict), f"get_clustering_run_info returned {info!r}, not the run's info"
assert info["run_key"] == "clip_kmeans" and info["config"]["method"] == "kmeans"
assert info["config"]["params"]["n_clusters"] == K
assert info["config"]["embeddings_field"] == "clip_embeddings"
assert [c["size"] for c in info["clusters"]] == summary["sizes"]
'''),
    notebook.Step("load_run_results", check='''
config = dataset.get_run_info("clip_kmeans").config
assert config.method == "kmeans" and config.cluster_field == "clip_kmeans_cluster"
assert config.num_samples == N and config.num_skipped == 0
assert [c["id"] for c in results.clusters] == [str(i) for i in range(K)]
assert [c["size"] for c in results.clusters] == summary["sizes"]
assert list(results.timings) == ["read", "prepare", "fit", "measure", "map", "write", "total"]
'''),
    notebook.Step("rename_clustering_run", check='''
assert not {"clip_kmeans", "clip_k20"} & set(dataset.list_runs()), dataset.list_runs()
assert not {"clip_kmeans_cluster", "clip_k20_cluster"} & set(dataset.get_field_schema())
'''),
    notebook.Step("compare_clustering_runs", before='''
await record_run(dataset, "run_a", kmeans__n_clusters=20)
await record_run(dataset, "run_b", kmeans__n_clusters=10)
''', check='''
assert isinstance(cmp, dict), f"compare_clustering_runs returned {cmp!r}, not the comparison"
assert cmp["num_samples"] == N and 0 < cmp["ari"] <= 1 and 0 < cmp["nmi"] <= 1, cmp
assert [row["cluster_a"] for row in cmp["mapping"]] == [str(i) for i in range(K)]
assert {row["cluster_b"] for row in cmp["mapping"]} <= set(dataset.distinct("run_b_cluster"))
'''),
    # the README deleted clip_kmeans in its rename/delete example: record it
    # again, then add samples it has not clustered
    notebook.Step("assign_to_clusters", before='''
await record_run(dataset, "clip_kmeans", kmeans__n_clusters=20)
new_ids = dataset.add_samples(new_samples, progress=False)
''', check='''
assert isinstance(_, dict) and _["num_assigned"] == NEW, f"assign_to_clusters returned {_!r}"
clusters_of_blob = {}
for b, c in zip(*dataset.exclude(new_ids).values(["blob", "clip_kmeans_cluster"])):
    clusters_of_blob.setdefault(b, set()).add(c)
for b, c in zip(*dataset.select(new_ids).values(["blob", "clip_kmeans_cluster"])):
    assert c in clusters_of_blob[b], (b, c, clusters_of_blob[b])
assignments = dataset.load_run_results("clip_kmeans", cache=False).assignments
assert assignments[-1]["num_assigned"] == NEW
'''),
    notebook.Step("find_cluster_duplicates", check='''
assert isinstance(dups, dict), f"find_cluster_duplicates returned {dups!r}, not the counts"
pairs = list(zip(*copies.values(["id", "clip_kmeans_dup_of", "clip_kmeans_cluster"])))
per_cluster = sum(c["duplicates"] for c in dups["clusters"].values())
assert len(pairs) == dups["num_duplicates"] == per_cluster
kept = dataset.match(fo.ViewField("clip_kmeans_duplicate") == False)
cluster_of = dict(zip(*kept.values(["id", "clip_kmeans_cluster"])))
assert len(kept) == dups["num_groups"] and all(cluster_of[k] == c for _, k, c in pairs)
assert dataset.load_run_results("clip_kmeans", cache=False).duplicates["threshold"] == 0.95
'''),
    notebook.Step("sample_clusters", check='''
assert review.count_values("clip_kmeans_cluster") == {str(c): 5 for c in range(K)}
first = foo.get_operator("@clusterlab/clustering/open_cluster")(dataset, "clip_kmeans", "0")
assert review.first().id == first.first().id
'''),
    notebook.Step("tag_clusters", check='''
assert dataset.count_sample_tags()["review"] == dataset.count_values("clip_kmeans_cluster")["3"]
assert dataset.match_tags("review").distinct("clip_kmeans_cluster") == ["3"]
'''),
    # the blobs are too clean for HDBSCAN to leave noise: add strays around
    # them, and remove them after (the labeling example counts the samples)
    notebook.Step("reassign_noise", before='''
rng = np.random.default_rng(1)
centres = [X[:N][blob[:N] == k].mean(axis=0) for k in range(K)]
strays = dataset.add_samples([
    fo.Sample(filepath=f"{IMAGES}/0.png", clip_embeddings=(c + rng.normal(0, 4, 8)).tolist())
    for c in centres], progress=False)
''', check='''
assert isinstance(moved, dict), f"reassign_noise returned {moved!r}, not what moved"
assert near["num_moved"] < moved["num_moved"] == sum(moved["clusters"].values()), (near, moved)
assert moved["noise"] == 0 and moved["num_moved"] == near["num_moved"] + near["noise"] > 0
counts = dataset.count_values("clip_hdbscan_cluster")
assert counts["-1"] == moved["num_moved"]  # all back after undo
results = dataset.load_run_results("clip_hdbscan", cache=False)
assert {c["id"]: c["size"] for c in results.clusters} == {
    c: n for c, n in counts.items() if c != "-1"}
assert not dataset.has_field("clip_hdbscan_reassigned")
dataset.delete_samples(strays)
foo.get_operator("@clusterlab/clustering/delete_clustering_run")(dataset, "clip_hdbscan")
'''),
    notebook.Step("label_clusters_with_llm", check='''
names = [c.get("name") for c in dataset.load_run_results("clip_kmeans", cache=False).clusters]
assert all(names) and len(set(names)) == K, names
labels = dataset.count_values("clip_kmeans_cluster_label")
assert set(labels) == set(names) and sum(labels.values()) == N + NEW, labels
assert _ == labels, f"the README cell showed {_!r}"
'''),
    notebook.Step("name_cluster", check='''
assert isinstance(named, dict), f"name_cluster returned {named!r}, not what it recorded"
entry = dataset.load_run_results("clip_kmeans", cache=False).clusters[3]
assert (entry["name"], entry["naming"]) == ("Sunlit kitchens", "manual"), entry
size = dataset.count_values("clip_kmeans_cluster")["3"]
assert _ == ("Sunlit kitchens", size), f"the README cell showed {_!r}"
'''),
]


@pytest.mark.e2e
def test_readme_operators_run_in_a_jupyter_kernel(tmp_path, monkeypatch):
    """Every example gives a notebook user the result the README promises;
    the simulated vision model answers on 127.0.0.1."""
    import fiftyone as fo

    fo.list_datasets()  # the database service runs while this process is connected
    with open(os.path.join(REPO, "README.md")) as f:
        blocks = notebook.python_blocks(f.read(), SECTION)
    images = tmp_path / "images"
    images.mkdir()
    nb = notebook.build(setup_cell(str(images)), blocks, STEPS, "README.md")

    jupyter = tmp_path / "jupyter"
    kernel = "clusterlab-tests"
    notebook.write_kernelspec(str(jupyter), kernel, sys.executable)
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(jupyter / "runtime"))

    model = plugin_module("labeling.request").DEFAULT_MODEL
    with LLMServer(KEY, model) as server:
        env = child_env(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=server.url,
                        IPYTHONDIR=str(tmp_path / "ipython"))
        start, failure = time.monotonic(), None
        try:
            notebook.execute(nb, kernel, env, str(tmp_path), timeout=600)
        except notebook.NotebookFailed as e:
            failure = str(e)
        finally:
            notebook.save(nb, SAVED)
            print(f"notebook ran {time.monotonic() - start:.1f} s; saved to {SAVED}")
    if failure:
        pytest.fail(f"{failure}\n(executed notebook: {SAVED})", pytrace=False)
    assert server.problems == []
    assert len(server.requests) == CLUSTERS and all(CONTEXT in r.text for r in server.requests)
