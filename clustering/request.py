"""What the user asked for, validated before anything is touched.

The same validation serves the App form (messages shown inline as the user
types), the Python call and execution; every message names the parameter.
"""

from dataclasses import dataclass

from . import runs
from .embeddings import check_field, check_found, count_with_embeddings
from .features import PREPARE_PARAMS
from .methods import METHODS, get_method
from .params import InputError, Param, ParameterError, coerce_all

RUN_PARAMS = (
    Param("random_state", int, None, "Seed that makes the run reproducible",
          low=0, empty="a different random run each time"),
)


@dataclass
class ClusteringRequest:
    run_key: str
    embeddings: str
    method: object
    params: dict
    prepare: dict
    cluster_field: str
    distance_field: str
    ground_truth: str
    overwrite: bool
    random_state: int


def known_keys():
    """Every parameter name compute_clusters accepts."""
    keys = {"run_key", "embeddings", "method", "cluster_field", "distance_field",
            "ground_truth", "overwrite", "delegate", "progress"}
    keys.update(p.name for p in PREPARE_PARAMS + RUN_PARAMS)
    for method in METHODS.values():
        keys.update(method.key(p.name) for p in method.params)
    return keys


def validate(collection, values, count_samples=True):
    """Returns ``(request or None, errors)``, ``errors`` keyed by parameter.

    ``count_samples`` checks the limits that depend on how many samples have
    a vector (a scan of the target): the form does, as the user types; a run
    need not, as it checks the same limits once it has read the vectors.
    """
    errors = {}
    dataset = collection._root_dataset
    overwrite = bool(values.get("overwrite", False))

    run_key = values.get("run_key")
    try:
        runs.check_new_key(dataset, run_key, overwrite)
    except ParameterError as e:
        errors["run_key"] = str(e)

    embeddings = values.get("embeddings")
    try:
        check_field(collection, embeddings)
    except InputError as e:
        errors["embeddings"] = str(e)

    try:
        method = get_method(values.get("method", "kmeans"))
    except ParameterError as e:
        errors["method"] = str(e)
        return None, errors

    params, bad = coerce_all(method.params, values, prefix=method.name + "__")
    errors.update(bad)
    prepare, bad = coerce_all(PREPARE_PARAMS, values)
    errors.update(bad)
    extra, bad = coerce_all(RUN_PARAMS, values)
    errors.update(bad)

    cluster_field = values.get("cluster_field") or f"{run_key}_cluster"
    distance_field = values.get("distance_field") or None
    for key, name in (("cluster_field", cluster_field), ("distance_field", distance_field)):
        if name and "run_key" not in errors:
            try:
                runs.check_output_field(dataset, key, name, run_key, overwrite)
            except ParameterError as e:
                errors[key] = str(e)
    if distance_field and distance_field == cluster_field:
        errors["distance_field"] = str(ParameterError(
            "distance_field", "must differ from cluster_field."))

    ground_truth = values.get("ground_truth") or None
    if ground_truth and collection.get_field(ground_truth) is None:
        errors["ground_truth"] = str(ParameterError(
            "ground_truth",
            f"names field '{ground_truth}', which does not exist; give the "
            "field holding the true classes or leave it empty."))

    if count_samples and "embeddings" not in errors:
        total = len(collection)
        n = count_with_embeddings(collection, embeddings) if total else 0
        try:
            check_found(embeddings, total, n)
        except InputError as e:
            errors["view_target" if total == 0 else "embeddings"] = str(e)
        else:
            if not any(k.startswith(method.name + "__") for k in errors):
                errors.update(method.check(params, n))

    if errors:
        return None, errors
    return ClusteringRequest(
        run_key=run_key, embeddings=embeddings, method=method, params=params,
        prepare=prepare, cluster_field=cluster_field,
        distance_field=distance_field, ground_truth=ground_truth,
        overwrite=overwrite, random_state=extra["random_state"],
    ), {}


def raise_errors(errors):
    """Raises one InputError carrying every message."""
    if errors:
        raise InputError(" ".join(errors.values()))
