"""Test environment: real FiftyOne on its real MongoDB, in a database of the
tests' own (dropped at the end), with this repository loaded as a plugin."""

import os
import sys
import tempfile
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from demo.digits import link_plugin  # noqa: E402

DATABASE = f"clusterlab_test_{uuid.uuid4().hex[:8]}"
PLUGINS_DIR = tempfile.mkdtemp(prefix="clusterlab_plugins_")
os.environ["FIFTYONE_DATABASE_NAME"] = DATABASE
os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
os.environ.pop("OPENAI_API_KEY", None)
os.environ.pop("OPENAI_BASE_URL", None)
link_plugin(PLUGINS_DIR)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import fiftyone as fo  # noqa: E402
import fiftyone.operators as foo  # noqa: E402

URI = "@clusterlab/clustering/"


def pytest_sessionfinish(session, exitstatus):
    from fiftyone.core.odm import get_db_client

    get_db_client().drop_database(DATABASE)


def operator(name):
    """The plugin's operator ``name`` as FiftyOne loads it."""
    op = foo.get_operator(URI + name)
    assert op is not None, f"operator {name} not loaded"
    return op


def plugin_module(name):
    """A module of the plugin package as FiftyOne imported it."""
    import importlib

    operator("compute_clusters")
    return importlib.import_module("fiftyone.plugins.orgs.clusterlab.clustering." + name)


def execute(name, dataset, params, view=None, **ctx):
    """Runs operator ``name`` through ``foo.execute_operator``."""
    return foo.execute_operator(
        URI + name, dict(dataset=dataset, view=view, **ctx), params=params
    )


def form(name, dataset, params, view=None):
    """The operator's form as the App resolves it: ``{key: property json}``."""
    import asyncio

    from fiftyone.operators.executor import resolve_type
    from fiftyone.operators.registry import OperatorRegistry

    request = dict(dataset_name=dataset.name, params=params, target="inputs",
                   view=view._serialize() if view is not None else [])
    prop = asyncio.run(resolve_type(OperatorRegistry(), URI + name, request))
    return prop.to_json()["type"]["properties"]


def blobs(n, d, centers, seed=0, cluster_std=1.0, normalize=True):
    """Gaussian blobs with known truth, optionally L2-normalised."""
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=n, n_features=d, centers=centers,
                      cluster_std=cluster_std, random_state=seed)
    X = X.astype(np.float32)
    if normalize:
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, y


def make_dataset(X, y=None, field="embedding", name=None):
    """A dataset with one sample per row of ``X`` (vector field ``field``)."""
    dataset = fo.Dataset(name)
    samples = []
    for i, x in enumerate(X):
        sample = fo.Sample(filepath=f"/tmp/clusterlab/{i}.png")
        if x is not None:
            sample[field] = x
        if y is not None:
            sample["ground_truth"] = fo.Classification(label=str(y[i]))
        samples.append(sample)
    dataset.add_samples(samples, progress=False)
    return dataset


def blob_dataset_of(n, d, centers, seed=0, cluster_std=1.0):
    """A dataset of ``blobs(...)``: embeddings and their true blob."""
    return make_dataset(*blobs(n, d, centers, seed=seed, cluster_std=cluster_std))


def noisy_run(run_key, seed=0):
    """A dataset of two tight blobs and 15 scattered points, clustered by
    HDBSCAN into run ``run_key``: two clusters and some noise (-1)."""
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n_samples=[80, 80], n_features=4, cluster_std=0.2, random_state=seed)
    scattered = np.random.default_rng(seed).uniform(-40, 40, (15, 4))
    dataset = make_dataset(np.vstack([X, scattered]).astype(np.float32))
    operator("compute_clusters")(dataset, run_key=run_key, embeddings="embedding",
                                 method="hdbscan", hdbscan__min_cluster_size=10,
                                 reduce="none", progress=False)
    return dataset


def snapshot(dataset):
    """What a failed run must leave unchanged: schema, runs and all values."""
    dataset.reload()
    schema = sorted(dataset.get_field_schema().keys())
    values = {f: dataset.values(f) for f in schema if f not in ("metadata",)}
    return schema, sorted(dataset.list_runs()), repr(values)


@pytest.fixture(scope="session")
def digits():
    """The demo's digits dataset (pixels, ground_truth), built once."""
    from demo.digits import build_dataset

    return build_dataset(
        name="digits-tests",
        data_dir=os.path.join(tempfile.gettempdir(), "clusterlab_digits"),
        persistent=False,
    )


@pytest.fixture
def blob_dataset():
    dataset = blob_dataset_of(600, 16, centers=4, seed=1, cluster_std=0.5)
    yield dataset
    dataset.delete()


def groups_to_name(dataset, key):
    """How many groups of run ``key`` labeling asks the model to name: those
    of two or more clusters (a group of one takes its cluster's name)."""
    dataset.reload()  # another process (a launcher) may have saved them
    groups = dataset.load_run_results(key, cache=False).groups or []
    return sum(len(g["clusters"]) > 1 for g in groups)
