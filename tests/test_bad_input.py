"""Bad input: a clear message naming the field or parameter, and the dataset
exactly as it was (no half-written field, no dangling run)."""

import numpy as np
import pytest

import fiftyone as fo
from fiftyone.operators.executor import ExecutionError
from conftest import blob_dataset_of, execute, form, snapshot


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
                kmeans__n_clusters=3, reduce="none")
    base.update(params)
    return execute("compute_clusters", dataset, base, view=view)


def assert_rejected(dataset, *phrases, view=None, **params):
    before = snapshot(dataset)
    with pytest.raises(ExecutionError) as raised:
        run(dataset, view=view, **params).raise_exceptions()
    message = str(raised.value)
    for phrase in phrases:
        assert phrase in message, message
    assert snapshot(dataset) == before
    return message


def test_missing_field(dataset):
    assert_rejected(dataset, "Field 'nope'", "'embeddings'", "does not exist",
                    embeddings="nope")


def test_field_that_is_not_a_vector(dataset):
    assert_rejected(dataset, "Field 'filepath'", "not a vector field",
                    embeddings="filepath")


def test_vectors_of_mixed_length(dataset):
    dataset.set_values("mixed", [np.ones(4 if i % 2 else 5) for i in range(len(dataset))])
    assert_rejected(dataset, "Field 'mixed'", "different lengths", embeddings="mixed")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values(dataset, bad):
    values = [np.arange(8, dtype=float) + i for i in range(len(dataset))]
    values[7][3] = bad
    dataset.set_values("broken", values)
    message = assert_rejected(dataset, "Field 'broken'", "NaN or infinite", "1 sample",
                              embeddings="broken")
    assert dataset.values("id")[7] in message


def test_no_sample_with_an_embedding(dataset):
    dataset.add_sample_field("unset", fo.VectorField)
    assert_rejected(dataset, "No sample in the target has a value in field 'unset'",
                    embeddings="unset")


def test_empty_view(dataset):
    assert_rejected(dataset, "target is empty",
                    view=dataset.match({"embedding": None}).limit(0))


def test_n_clusters_larger_than_samples(dataset):
    assert_rejected(dataset, "'kmeans__n_clusters'", "is 61", "only 60 samples",
                    kmeans__n_clusters=61)


def test_existing_run_key_without_overwrite(dataset):
    assert_rejected(dataset, "'run_key'", "'existing' already exists", "overwrite",
                    run_key="existing")


@pytest.mark.parametrize("key", ["my run", "1st", "a-b", ""])
def test_run_key_that_is_not_an_identifier(dataset, key):
    assert_rejected(dataset, "run_key", run_key=key)


@pytest.mark.parametrize("field", ["filepath", "ground_truth", "existing_cluster"])
def test_cluster_field_that_belongs_to_something_else(dataset, field):
    assert_rejected(dataset, "'cluster_field'", f"'{field}'", cluster_field=field)


@pytest.mark.parametrize("params,phrase", [
    (dict(kmeans__n_clusters=1), "'kmeans__n_clusters' must be an integer >= 2"),
    (dict(kmeans__n_clusters=2.5), "'kmeans__n_clusters' must be an integer"),
    (dict(kmeans__init="best"), "'kmeans__init' must be one of 'k-means++', 'random'"),
    (dict(method="spectral"), "'method' must be one of kmeans"),
    (dict(reduce="tsne"), "'reduce' must be one of"),
    (dict(method="agglomerative", agglomerative__n_clusters=3,
          agglomerative__metric="cosine"), "'agglomerative__metric' must be 'euclidean'"),
])
def test_bad_parameter_values(dataset, params, phrase):
    assert_rejected(dataset, phrase, **params)


def test_failed_overwrite_keeps_the_old_run_and_field(dataset):
    before_labels = dataset.values("existing_cluster")
    before_config = dataset.get_run_info("existing").config.serialize()
    message = assert_rejected(
        dataset, "every sample is noise", run_key="existing", overwrite=True,
        method="hdbscan", hdbscan__min_cluster_size=59, hdbscan__min_samples=59)
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
    with pytest.raises(ExecutionError) as raised:
        execute("compute_clusters", dataset, dict(
            run_key="later", embeddings="embedding", method="kmeans",
            kmeans__n_clusters=61, reduce="none", delegate=True)).raise_exceptions()
    assert "only 60 samples" in str(raised.value)
    assert len(service.list_operations(dataset_name=dataset.name)) == queued_before
    assert snapshot(dataset) == before
