"""Bad input: a clear message naming the parameter as the form shows it,
raised to Python callers as the plugin's own typed error, and the dataset
exactly as it was (no half-written field, no dangling run)."""

import gc

import numpy as np
import pytest

import fiftyone as fo
from fiftyone.operators.executor import ExecutionError
from conftest import blob_dataset_of, execute, form, operator, plugin_module, snapshot

params_module = plugin_module("clustering.params")
ParameterError, InputError = params_module.ParameterError, params_module.InputError


@pytest.fixture
def dataset():
    dataset = blob_dataset_of(60, 8, centers=3, seed=4, cluster_std=0.3)
    execute("compute_clusters", dataset, dict(
        run_key="existing", embeddings="embedding", method="kmeans",
        kmeans__n_clusters=3, reduce="none")).raise_exceptions()
    yield dataset
    dataset.delete()


def run(dataset, view=None, **params):
    base = dict(run_key="new_run", embeddings="embedding", method="kmeans",
                kmeans__n_clusters=3, reduce="none", progress=False)
    if params.get("method", "kmeans") != "kmeans":
        del base["kmeans__n_clusters"]
    base.update(params)
    return operator("compute_clusters")(view if view is not None else dataset, **base)


def assert_rejected(dataset, *phrases, view=None, error=ParameterError, **params):
    before = snapshot(dataset)
    with pytest.raises(error) as raised:
        run(dataset, view=view, **params)
    message = str(raised.value)
    for phrase in phrases:
        assert phrase in message, message
    assert snapshot(dataset) == before
    return message


def test_missing_field(dataset):
    assert_rejected(dataset, "'Embeddings field' (embeddings)", "field 'nope'",
                    "does not exist", embeddings="nope")


def test_field_that_is_not_a_vector(dataset):
    assert_rejected(dataset, "'Embeddings field' (embeddings)", "field 'filepath'",
                    "not a vector field", embeddings="filepath")


def test_vectors_of_mixed_length(dataset):
    dataset.set_values("mixed", [np.ones(4 if i % 2 else 5) for i in range(len(dataset))])
    assert_rejected(dataset, "Field 'mixed'", "different lengths", embeddings="mixed",
                    error=InputError)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values(dataset, bad):
    values = [np.arange(8, dtype=float) + i for i in range(len(dataset))]
    values[7][3] = bad
    dataset.set_values("broken", values)
    message = assert_rejected(dataset, "Field 'broken'", "NaN or infinite", "1 sample",
                              embeddings="broken", error=InputError)
    assert dataset.values("id")[7] in message


def test_the_cycle_collector_runs_again_after_a_run(dataset):
    """A run pauses Python's cycle collector while it makes objects by the
    hundred thousand; it runs again after, whether the run ends or fails,
    and stays off for a caller who had turned it off."""
    dataset.set_values("broken", [np.full(8, np.nan)] * len(dataset))
    run(dataset)
    assert gc.isenabled()
    with pytest.raises(InputError):
        run(dataset, run_key="failed", embeddings="broken")
    assert gc.isenabled()
    gc.disable()
    try:
        run(dataset, run_key="new_run", overwrite=True)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_no_sample_with_an_embedding(dataset):
    dataset.add_sample_field("unset", fo.VectorField)
    assert_rejected(dataset, "No sample in the target has a value in field 'unset'",
                    embeddings="unset", error=InputError)


def test_empty_view(dataset):
    assert_rejected(dataset, "target is empty",
                    view=dataset.match({"embedding": None}).limit(0), error=InputError)


def test_n_clusters_larger_than_samples(dataset):
    assert_rejected(dataset, "'N clusters' (kmeans__n_clusters)", "is 61",
                    "only 60 samples", kmeans__n_clusters=61)


def test_existing_run_key_without_overwrite(dataset):
    assert_rejected(dataset, "'Run key' (run_key)", "'existing' already exists",
                    "'Overwrite' (overwrite)", run_key="existing")
    # "false" from a query string or a form is false, not a truthy string
    assert_rejected(dataset, "'existing' already exists", run_key="existing",
                    overwrite="false")


@pytest.mark.parametrize("key", ["my run", "1st", "a-b", ""])
def test_run_key_that_is_not_an_identifier(dataset, key):
    assert_rejected(dataset, "run_key", run_key=key)


@pytest.mark.parametrize("field", ["filepath", "ground_truth", "existing_cluster"])
def test_cluster_field_that_belongs_to_something_else(dataset, field):
    assert_rejected(dataset, "'Cluster field' (cluster_field)", f"'{field}'",
                    cluster_field=field)


@pytest.mark.parametrize("params,phrase", [
    (dict(kmeans__n_clusters=1), "'N clusters' (kmeans__n_clusters) must be an integer in [2,"),
    (dict(kmeans__n_clusters=2.5), "'N clusters' (kmeans__n_clusters) must be an integer"),
    (dict(kmeans__init="best"), "(kmeans__init) must be one of 'k-means++', 'random'"),
    (dict(method="spectral"), "'Method' (method) must be one of 'kmeans'"),
    (dict(reduce="tsne"), "'Reduce' (reduce) must be one of"),
    (dict(method="agglomerative", agglomerative__n_clusters=3,
          agglomerative__metric="cosine"), "(agglomerative__metric) must be 'euclidean'"),
    (dict(overwrite="maybe"), "'Overwrite' (overwrite) must be true or false"),
    (dict(overwrite=2), "'Overwrite' (overwrite) must be true or false"),
    (dict(delegate="yes"), "'Delegate' (delegate) must be true or false"),
    (dict(normalize="sometimes"), "'Normalize' (normalize) must be true or false"),
    # work is bounded: a typo cannot run for hours
    (dict(kmeans__n_clusters=None, kmeans__k_max=10**9), "(kmeans__k_max) must be an integer in [2, 100]"),
    (dict(kmeans__n_init=10**6), "(kmeans__n_init) must be an integer in [1, 100]"),
    (dict(kmeans__max_iter=10**9), "(kmeans__max_iter) must be an integer in [1, 10000]"),
    (dict(ground_truth="tags"), "(ground_truth) names field 'tags', which is a ListField"),
    (dict(ground_truth="embedding"), "(ground_truth) names field 'embedding', which is a VectorField"),
])
def test_bad_parameter_values(dataset, params, phrase):
    assert_rejected(dataset, phrase, **params)


def test_failed_overwrite_keeps_the_old_run_and_field(dataset):
    before_labels = dataset.values("existing_cluster")
    before_config = dataset.get_run_info("existing").config.serialize()
    message = assert_rejected(
        dataset, "every sample is noise", run_key="existing", overwrite=True,
        method="hdbscan", hdbscan__min_cluster_size=59, hdbscan__min_samples=59,
        error=InputError)
    assert "hdbscan__min_cluster_size" in message
    assert dataset.values("existing_cluster") == before_labels
    assert dataset.get_run_info("existing").config.serialize() == before_config


def test_form_shows_errors_as_the_user_types(dataset):
    fields = form("compute_clusters", dataset, dict(
        run_key="existing", embeddings="embedding", method="kmeans",
        kmeans__n_clusters=99))
    assert fields["run_key"]["invalid"] and "already exists" in fields["run_key"]["error_message"]
    assert fields["kmeans__n_clusters"]["invalid"]
    assert "only 60 samples" in fields["kmeans__n_clusters"]["error_message"]
    ok = form("compute_clusters", dataset, dict(
        run_key="existing", overwrite=True, embeddings="embedding", method="kmeans",
        kmeans__n_clusters=3))
    assert not any(p.get("invalid") for p in ok.values())
    # only vector fields are offered
    assert ok["embeddings"]["type"]["values"] == ["embedding"]


def test_too_many_clusters_is_refused_before_a_run_is_queued(dataset):
    from fiftyone.operators.delegated import DelegatedOperationService

    service = DelegatedOperationService()
    queued_before = len(service.list_operations(dataset_name=dataset.name))
    before = snapshot(dataset)
    with pytest.raises(ParameterError) as raised:
        run(dataset, run_key="later", kmeans__n_clusters=61, delegate=True)
    assert "only 60 samples" in str(raised.value)
    # through FiftyOne's own entry point the same check refuses the queueing
    with pytest.raises(ExecutionError) as raised:
        execute("compute_clusters", dataset, dict(
            run_key="later", embeddings="embedding", method="kmeans",
            kmeans__n_clusters=61, reduce="none"), request_delegation=True)
    assert "only 60 samples" in str(raised.value)
    assert len(service.list_operations(dataset_name=dataset.name)) == queued_before
    assert snapshot(dataset) == before
