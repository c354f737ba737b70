"""The plugin's work as plain functions, one per operator.

Each takes the target collection and the parameters as the form or the
Python call gives them (``values``), validates them through the declared
parameters, first finishes whatever an interrupted run left on the dataset
(see ``transactions``), does the work and returns a plain result.
Operators' ``execute`` and ``__call__`` only translate to and from these.
``report(fraction, label)`` receives progress; ``operation`` is the id of
the delegated operation executing the call, if any.
"""

from . import display, internals, runs, transactions
from .params import raise_errors


class Result(dict):
    """A plain, JSON-ready dict that Jupyter shows as its summary."""

    def _repr_markdown_(self):
        return self.get("summary")


def _recovered(collection):
    """The target's dataset, as the database holds it now (another process
    may have changed its runs), after finishing what a crash left."""
    dataset = internals.root_dataset(collection)
    transactions.recover(dataset)
    internals.refresh_schema(dataset)
    return dataset


def compute_clusters(collection, values, report=None, operation=None):
    """Clusters ``collection``; returns the run summary."""
    from . import pipeline, request

    _recovered(collection)
    clustering, errors = request.validate(collection, values, count_samples=False)
    raise_errors(errors)
    summary = pipeline.run(collection, clustering, report=report, operation=operation)
    summary["summary"] = display.summary_markdown(summary)
    return Result(summary)


def expect_compute_clusters(collection, values):
    """Readies this process for compute_clusters with ``values``, which the
    user is still choosing for a run in this process."""
    from . import layout, pipeline

    pipeline.expect(collection, values.get("map") or layout.MAP.default)


def check_compute_clusters(collection, values):
    """Everything compute_clusters checks before running, including the
    limits that depend on the data (for a run about to be queued)."""
    from . import request

    _recovered(collection)
    _, errors = request.validate(collection, values, count_samples=True)
    raise_errors(errors)


def get_clustering_run_info(collection, values):
    """The run's configuration, clusters, quality and timings."""
    dataset = _recovered(collection)
    info = runs.info(dataset, values.get("run_key"))
    info["group_tree"] = display.group_tree_markdown(info["groups"])
    return Result(info)


def delete_clustering_run(collection, values, operation=None):
    """Deletes the run and every field it wrote."""
    dataset = _recovered(collection)
    key = values.get("run_key")
    return Result(run_key=key, deleted_fields=runs.delete(dataset, key, operation))


def rename_clustering_run(collection, values, operation=None):
    """Renames the run and the fields named after it."""
    dataset = _recovered(collection)
    key, new_key = values.get("run_key"), values.get("new_run_key")
    return Result(run_key=new_key, renamed_fields=runs.rename(dataset, key, new_key, operation))


def compare_clustering_runs(collection, values):
    """Agreement between two runs and which clusters correspond."""
    from .compare import compare

    dataset = _recovered(collection)
    return Result(compare(dataset, values.get("run_a"), values.get("run_b")))


def assign_to_clusters(collection, values, report=None, operation=None):
    """Gives the target's samples the run has not clustered its nearest cluster."""
    from .assign import assign

    _recovered(collection)
    return Result(assign(collection, values.get("run_key"), operation))


def check_assign_to_clusters(collection, values):
    """What assignment checks before it is queued: the run exists."""
    runs.get(_recovered(collection), values.get("run_key"))


def open_cluster(collection, values):
    """One cluster's samples, most typical first (a view)."""
    from .typical import cluster_view

    dataset = _recovered(collection)
    return cluster_view(dataset, values.get("run_key"), values.get("cluster"))


def name_cluster(collection, values, operation=None):
    """Names one cluster of a run by hand; returns what was recorded."""
    from ..labeling import manual

    dataset = _recovered(collection)
    return Result(manual.name_cluster(dataset, values, operation))


def label_clusters_with_llm(collection, values, api_key, report=None, operation=None):
    """Names the run's clusters with a vision model; returns the summary."""
    from ..labeling import pipeline, request

    dataset = _recovered(collection)
    labeling, errors = request.validate(dataset, values, api_key)
    raise_errors(errors)
    return Result(pipeline.run(dataset, labeling, api_key, report=report,
                               operation=operation))


def check_label_clusters_with_llm(collection, values):
    """What labeling checks before it is queued (the key may be set only
    where it will run)."""
    from ..labeling import request

    dataset = _recovered(collection)
    _, errors = request.validate(dataset, values, api_key=None)
    errors.pop("api_key")
    raise_errors(errors)


def find_cluster_duplicates(collection, values, report=None, operation=None):
    """Marks the near-duplicates within each cluster of the run."""
    from .duplicates import find_duplicates

    dataset = _recovered(collection)
    return _plain_result(find_duplicates(dataset, values, report, operation))


def check_find_cluster_duplicates(collection, values):
    """What the duplicate search checks before it is queued."""
    from .duplicates import check

    check(_recovered(collection), values)


def sample_clusters(collection, values, operation=None):
    """A few samples of each cluster, kept as a saved view or a tag."""
    from .actions import sample_clusters as sample

    return _plain_result(sample(_recovered(collection), values, operation))


def tag_clusters(collection, values, operation=None):
    """Adds a sample tag to whole clusters, or removes it."""
    from .actions import tag_clusters as tag

    return _plain_result(tag(_recovered(collection), values, operation))


def reassign_noise(collection, values, report=None, operation=None):
    """Moves HDBSCAN's noise to the nearest clusters within a limit, or back."""
    from .noise import reassign

    return _plain_result(reassign(_recovered(collection), values, report, operation))


def check_reassign_noise(collection, values):
    """What the reassignment checks before it is queued."""
    from .noise import check

    check(_recovered(collection), values)


def _plain_result(result):
    """``result`` as the JSON-ready Result the operators return."""
    return Result(runs.plain(result))
