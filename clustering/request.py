"""What the user asked compute_clusters for, validated before anything is
touched.

Every input is a declared parameter; the same validation serves the App
form (messages shown inline as the user types), the Python call and
execution, and every message names the parameter as the form shows it.
"""

from dataclasses import dataclass

from . import groups, internals, layout, runs, units
from .embeddings import EMBEDDINGS, check_field, check_found, count_with_embeddings
from .features import PREPARE_PARAMS
from .methods import METHODS, get_method
from .params import InputError, Param, ParameterError, coerce_all
from .progress import PROGRESS

MIN_SAMPLES = 3

RUN_KEY = Param("run_key", str, None, "A name for this run (a Python identifier)",
                label="Run key")
METHOD = Param("method", str, "kmeans", "The clustering method", label="Method",
               choices=tuple(METHODS), choice_labels=tuple(m.label for m in METHODS.values()))
RUN_PARAMS = (
    Param("random_state", int, None, "Seed that makes the run reproducible",
          low=0, high=2**32 - 1, empty="a different random run each time"),
    groups.N_GROUPS,
)
OUTPUT_PARAMS = (
    Param("cluster_field", str, None, "Sample field that receives the cluster ids",
          empty="<run_key>_cluster"),
    Param("distance_field", str, None,
          "Sample field that receives each sample's distance to its cluster "
          "centre (sort by it: typical first)", empty="none"),
    Param("ground_truth", str, None,
          "Field with true classes (a classification, string or integer "
          "field): the run then records ARI, NMI, homogeneity and completeness",
          empty="none", label="Ground truth field"),
    layout.MAP,
    Param("overwrite", bool, False, "Replace an existing run with this key"),
)
EXECUTION_PARAMS = (
    Param("delegate", bool, False, "Queue the run for `fiftyone delegated launch`"),
    PROGRESS,
)
PARAMS = (RUN_KEY, EMBEDDINGS, units.PATCHES, METHOD) + PREPARE_PARAMS + RUN_PARAMS + OUTPUT_PARAMS \
    + EXECUTION_PARAMS


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
    n_groups: int = None
    map: str = "none"
    patches_field: str = None

    def units(self, collection):
        """What the run clusters in ``collection``: samples, or objects."""
        return units.Units(collection, self.patches_field)


def declared(name):
    """The declared parameter ``name`` (not a method's)."""
    return next(p for p in PARAMS if p.name == name)


def known_keys():
    """Every parameter name compute_clusters accepts."""
    keys = {p.name for p in PARAMS}
    for method in METHODS.values():
        keys.update(method.key(p.name) for p in method.params)
    return keys


def check_target(collection):
    """Raises InputError for a target whose rows are not samples."""
    kind = internals.view_kind(collection)
    if kind == "patches":
        raise InputError(
            "The target is a patches view: run compute_clusters on the dataset (or a "
            "view of its samples) and name the label field in 'Patches field' "
            "(patches_field): the run then clusters its objects.")
    if kind:
        raise InputError(
            f"The target is a {kind} view: its rows are {kind}, not samples, and "
            "compute_clusters clusters samples or the objects of a label field "
            "(clustering frames or clips is not supported yet). Run it on the "
            "dataset or on a view of its samples.")


def truth_fields(collection):
    """Fields that can serve as ground truth: classifications and plain
    string, integer or boolean labels."""
    import fiftyone as fo

    names = []
    for name, field in collection.get_field_schema().items():
        if isinstance(field, (fo.StringField, fo.IntField, fo.BooleanField)) or (
            isinstance(field, fo.EmbeddedDocumentField)
            and issubclass(field.document_type, fo.Classification)
        ):
            names.append(name)
    return sorted(n for n in names if n not in ("filepath", "id", "media_type"))


def check_ground_truth(collection, name, patches_field=None):
    """Raises ParameterError unless ``name`` is a field of true classes (an
    attribute of the objects, e.g. ``label``, for a patch run)."""
    param = declared("ground_truth")
    if patches_field:
        if not units.count(collection, patches_field, name):
            raise param.error(
                f"names '{name}', which no object of '{patches_field}' has; give the "
                "attribute holding each object's true class (e.g. 'label') or leave "
                "it empty.")
        return
    if collection.get_field(name) is None:
        raise param.error(
            f"names field '{name}', which does not exist; give the field holding "
            "the true classes or leave it empty.")
    if name not in truth_fields(collection):
        kind = type(collection.get_field(name)).__name__
        raise param.error(
            f"names field '{name}', which is a {kind}; give a classification, "
            f"string or integer field: {', '.join(truth_fields(collection)) or 'none found'}.")


def validate(collection, values, count_samples=True):
    """Returns ``(request or None, errors)``, ``errors`` keyed by parameter.

    ``count_samples`` checks the limits that depend on how many samples have
    a vector (a scan of the target): the form does, as the user types; a run
    need not, as it checks the same limits once it has read the vectors.
    """
    errors = {}
    dataset = internals.root_dataset(collection)
    try:
        check_target(collection)
    except InputError as e:
        errors["view_target"] = e

    basics, bad = coerce_all((METHOD,) + OUTPUT_PARAMS + EXECUTION_PARAMS, values)
    errors.update(bad)
    overwrite = bool(basics.get("overwrite"))

    run_key = values.get("run_key")
    try:
        runs.check_new_key(dataset, run_key, overwrite, RUN_KEY)
    except ParameterError as e:
        errors["run_key"] = e
    if basics.get("map", "none") != "none" and "run_key" not in errors:
        try:
            layout.check_key(dataset, run_key, overwrite)
        except ParameterError as e:
            errors["map"] = e

    patches, bad = coerce_all((units.PATCHES,), values)
    errors.update(bad)
    patches_field = patches.get("patches_field")
    if patches_field:
        try:
            units.check_field(collection, patches_field)
        except ParameterError as e:
            errors["patches_field"] = e
    embeddings = values.get("embeddings")
    try:
        if patches_field and "patches_field" not in errors:
            check_attribute(collection, patches_field, embeddings)
        elif not patches_field:
            check_field(collection, embeddings)
    except ParameterError as e:
        errors["embeddings"] = e
    if errors.get("patches_field"):
        return None, errors
    on = units.Units(collection, patches_field)

    if "method" in errors:
        return None, errors
    method = get_method(basics["method"])
    params, bad = coerce_all(method.params, values, prefix=method.name + "__")
    errors.update(bad)
    if not bad:
        errors.update(method.check_params(params))
    prepare, bad = coerce_all(PREPARE_PARAMS, values)
    errors.update(bad)
    extra, bad = coerce_all(RUN_PARAMS, values)
    errors.update(bad)

    cluster_field = basics.get("cluster_field") or f"{run_key}_cluster"
    distance_field = basics.get("distance_field")
    for key, name in (("cluster_field", cluster_field), ("distance_field", distance_field)):
        if name and "run_key" not in errors and key not in errors:
            try:
                runs.check_output_field(dataset, declared(key), name, run_key, overwrite,
                                        on.root)
            except ParameterError as e:
                errors[key] = e
    group_field = groups.field(run_key)
    for key, name in (("cluster_field", cluster_field), ("distance_field", distance_field)):
        if name == group_field and key not in errors:
            errors[key] = declared(key).error(
                f"must differ from the field of the run's groups, '{group_field}'.")
    if "run_key" not in errors:
        try:
            runs.check_output_field(dataset, RUN_KEY, group_field, run_key, overwrite, on.root)
        except ParameterError as e:
            errors["run_key"] = e
    asked_k = params.get("n_clusters")
    if extra.get("n_groups") and asked_k and extra["n_groups"] > asked_k:
        errors["n_groups"] = groups.N_GROUPS.error(
            f"must be at most the number of clusters ({method.key('n_clusters')} = "
            f"{asked_k}); got {extra['n_groups']}.")
    if distance_field and distance_field == cluster_field:
        errors["distance_field"] = declared("distance_field").error(
            "must differ from the cluster field.")

    ground_truth = basics.get("ground_truth")
    if ground_truth and "ground_truth" not in errors:
        try:
            check_ground_truth(collection, ground_truth, patches_field)
        except ParameterError as e:
            errors["ground_truth"] = e

    if count_samples and "embeddings" not in errors and "view_target" not in errors:
        total = len(collection)
        n = 0 if not total else units.count(collection, patches_field, embeddings) \
            if patches_field else count_with_embeddings(collection, embeddings)
        try:
            check_found(embeddings, total, n)
            check_enough(embeddings, n)
        except InputError as e:
            errors["view_target" if total == 0 else "embeddings"] = e
        else:
            if not any(k.startswith(method.name + "__") for k in errors):
                errors.update(method.check(params, n))

    if errors:
        return None, errors
    return ClusteringRequest(
        run_key=run_key, embeddings=embeddings, method=method, params=params,
        prepare=prepare, cluster_field=on.stored(cluster_field),
        distance_field=on.stored(distance_field), ground_truth=ground_truth,
        overwrite=overwrite, random_state=extra["random_state"],
        n_groups=extra["n_groups"], map=basics["map"], patches_field=patches_field,
    ), {}


def check_attribute(collection, patches_field, attribute):
    """Raises ParameterError (naming the embeddings field) unless objects of
    ``patches_field`` hold vectors in ``attribute``."""
    found = ", ".join(units.vector_attributes(collection, patches_field)) or "none found"
    if not attribute:
        raise EMBEDDINGS.error(
            f"is required: name the attribute of each object of '{patches_field}' that "
            f"holds its vector: {found}.")
    if not isinstance(attribute, str) or not units.count(collection, patches_field, attribute):
        raise EMBEDDINGS.error(
            f"names {attribute!r}, which no object of '{patches_field}' has; compute patch "
            "embeddings first (e.g. dataset.compute_patch_embeddings(model, "
            f"'{patches_field}', embeddings_field=...)) or pick one of: {found}.")


def check_enough(path, n):
    """Raises InputError when too few samples have a vector to cluster."""
    if n < MIN_SAMPLES:
        raise InputError(
            f"Only {n} sample{'s' * (n != 1)} of the target {'has' if n == 1 else 'have'} "
            f"a vector in field '{path}'; clustering needs at least {MIN_SAMPLES}. "
            "Run it on a larger view or compute embeddings for more samples.")
