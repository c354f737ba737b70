"""Clustering runs, stored the way FiftyOne stores its own runs.

A run is a custom run: FiftyOne's own ``RunConfig`` and ``RunResults``
classes holding plain JSON, so any Python process reads it with
``dataset.get_run_info(key)`` and ``dataset.load_run_results(key)`` without
this plugin installed. ``plugin`` and ``kind`` in the config mark our runs.
Nothing stored grows with the number of samples: labels live in fields, and
each field the plugin writes names its run in its ``info``, so fields that a
run deleted with FiftyOne's own tools left behind are still found.
"""

import threading
import time

import gridfs
import fiftyone.constants as foc

from . import PLUGIN, RUN_KIND, VERSION, layout, transactions
from .params import Param
from .writeback import OWNER_INFO

RUN_CHOICE = Param("run_key", str, None, "A clustering run of this dataset",
                   label="Clustering run")
NEW_RUN_KEY = Param("new_run_key", str, None,
                    "The run's new key; fields named after the run "
                    "(<key>_cluster, ...) are renamed with it", label="New run key")
STAGE_ORDER = ("read", "prepare", "fit", "measure", "map", "write", "total")
_RESULTS_READ = threading.Lock()
_RESULTS_TRIES = 5
# Entries of a run's config that name fields written after the clustering
# (names, duplicate marks, reassigned noise), and their keys that do.
FIELD_ENTRIES = dict(labels=("label_field", "group_label_field"), duplicates=("dup_of_field", "duplicate_field"),
                     noise_reassigned=("field",))


def list_runs(dataset):
    """Keys of this plugin's clustering runs on ``dataset``."""
    return dataset.list_runs(plugin=PLUGIN, kind=RUN_KIND)


def is_clustering_run(dataset, key):
    return key in list_runs(dataset)


def check_new_key(dataset, key, overwrite, param):
    """Raises ParameterError unless ``key`` can name a new run."""
    if not key:
        raise param.error("is required: name this run, e.g. 'clip_kmeans'.")
    if not isinstance(key, str) or not key.isidentifier():
        raise param.error(
            f"must be a valid Python identifier (letters, digits, '_', not "
            f"starting with a digit); got {key!r}. Try {_suggest(key)!r}.")
    if key in dataset.list_runs() + dataset.list_brain_runs() + dataset.list_evaluations():
        if not is_clustering_run(dataset, key):
            raise param.error(
                f"'{key}' is already used by another run that is not a "
                "clustering run; choose another key.")
        if not overwrite:
            hint = ("set 'Overwrite' (overwrite) to replace that run"
                    if param.name == "run_key" else "delete that run first")
            raise param.error(f"'{key}' already exists; choose a new key or {hint}.")


def _suggest(key):
    import re

    key = re.sub(r"\W+", "_", str(key or "")).strip("_") or "run"
    return "_" + key if key[0].isdigit() else key


def check_output_field(dataset, param, name, run_key, overwrite, within=None):
    """Raises ParameterError unless the run may write field ``name`` (an
    attribute of the objects at path ``within``, for a patch run).

    A field may be written if it does not exist yet, if it belongs to the
    run being overwritten, or if it was left behind by this key's run after
    that run was deleted outside the plugin (with overwrite); never over
    user data such as ``ground_truth``.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise param.error(f"must be a plain field name (letters, digits, '_'); got {name!r}.")
    if name.startswith("_"):
        raise param.error(f"must not start with '_'; got {name!r}.")
    name = f"{within}.{name}" if within else name
    if not dataset.has_sample_field(name):
        return
    owner = field_owner(dataset, name)
    if owner == run_key and overwrite:
        return
    if owner is not None:
        raise param.error(
            f"'{name}' holds the results of clustering run '{owner}'; choose "
            "another field name or delete that run first.")
    left_by = leftovers(dataset).get(name)
    if left_by is not None:
        if left_by == run_key and overwrite:
            return
        raise param.error(
            f"'{name}' was left behind by clustering run '{left_by}', which was "
            "deleted outside the plugin; set 'Overwrite' (overwrite) to replace "
            f"it with run '{left_by}', or remove it with delete_clustering_run "
            f"(run '{left_by}').")
    raise param.error(
        f"'{name}' is an existing field of the dataset that this run does "
        "not own; choose a new field name so existing data is not overwritten.")


def check_output_path(dataset, param, path, run_key, overwrite):
    """:func:`check_output_field` for a path the plugin made from a checked
    name: beside the samples' fields, or under a patch run's objects."""
    within, _, name = path.rpartition(".")
    check_output_field(dataset, param, name, run_key, overwrite, within or None)


def field_owner(dataset, name):
    """The clustering run that wrote field ``name``, or None."""
    for key in list_runs(dataset):
        if name in run_fields(dataset.get_run_info(key).config):
            return key
    return None


def leftovers(dataset):
    """``{field: run key}`` of fields the plugin wrote whose run no longer
    exists (deleted with ``dataset.delete_run`` or the App's runs list)."""
    owned = {f for key in list_runs(dataset)
             for f in run_fields(dataset.get_run_info(key).config)}
    found = {}
    for name, field in dataset.get_field_schema(flat=True).items():
        key = (getattr(field, "info", None) or {}).get(OWNER_INFO)
        if key and name not in owned:
            found[name] = key
    return found


def run_fields(config):
    """Every sample field a run wrote."""
    fields = [config.cluster_field, getattr(config, "distance_field", None),
              getattr(config, "group_field", None)]
    for entry, keys in FIELD_ENTRIES.items():
        recorded = getattr(config, entry, None) or {}
        fields.extend(recorded.get(k) for k in keys)
    return [f for f in fields if f]


def count_sizes(dataset, cluster_field, results):
    """Sets the sizes in ``results`` (a plain dict) to what ``cluster_field``
    holds; returns how many samples it holds."""
    counts = dataset.count_values(cluster_field)
    counts.pop(None, None)
    for cluster in results["clusters"]:
        cluster["size"] = counts.get(cluster["id"], 0)
    if results.get("noise") is not None:
        results["noise"]["size"] = counts.get("-1", 0)
    sizes = {c["id"]: c["size"] for c in results["clusters"]}
    for group in results.get("groups") or []:
        group["size"] = sum(sizes[c] for c in group["clusters"])
    return sum(counts.values())


def load_results(dataset, key):
    """Run ``key``'s results (None if it has none), read one thread at a
    time: FiftyOne reads them through a file handle that the threads of a
    process share (the App server answers a panel's events concurrently),
    and two reads at once corrupt each other. FiftyOne replaces results by
    deleting the old file first, so a read racing another process's save
    is tried again on the new file."""
    for attempt in range(_RESULTS_TRIES):
        with _RESULTS_READ:
            try:
                return dataset.load_run_results(key, cache=False)
            except (AttributeError, gridfs.errors.GridFSError):
                if attempt == _RESULTS_TRIES - 1:
                    raise
        time.sleep(0.05 * (attempt + 1))
        dataset.reload()


def get(dataset, key, param=RUN_CHOICE):
    """``(info, results)`` of clustering run ``key``, or a ParameterError."""
    if not key:
        raise param.error("is required: choose a clustering run.")
    runs = ", ".join(list_runs(dataset)) or "none yet"
    if key not in dataset.list_runs():
        raise param.error(f"dataset '{dataset.name}' has no run '{key}'. "
                          f"Clustering runs: {runs}.")
    if not is_clustering_run(dataset, key):
        raise param.error(f"run '{key}' is not a clustering run of this plugin. "
                          f"Clustering runs: {runs}.")
    results = load_results(dataset, key)
    if results is None:
        raise param.error(
            f"run '{key}' has no results: an older version of the plugin was "
            "interrupted while recording it. Delete it with delete_clustering_run "
            "and compute it again.")
    return dataset.get_run_info(key), results


def register(collection, key, config):
    """Registers run ``key`` on ``collection`` with ``config`` (a plain dict)."""
    config = collection.init_run(
        plugin=PLUGIN, kind=RUN_KIND, plugin_version=VERSION, **plain(config)
    )
    collection.register_run(key, config, overwrite=True)


def save_results(dataset, key, results):
    """Stores ``results`` (a plain dict) as the results of run ``key``."""
    dataset.save_run_results(
        key, dataset.init_run_results(key, **plain(results)), overwrite=True, cache=False
    )


def results_dict(results):
    """A run's stored results as a plain dict, to amend and save again."""
    stored = results.serialize()
    stored.pop("cls", None)
    return stored


def config_dict(config):
    """A run's config as a plain dict, without FiftyOne's class markers."""
    stored = config.serialize()
    stored.pop("cls", None)
    stored.pop("type", None)
    return stored


def update_config(dataset, key, **changes):
    """Updates entries of run ``key``'s config."""
    config = dataset.get_run_info(key).config
    for name, value in plain(changes).items():
        setattr(config, name, value)
    dataset.update_run_config(key, config)


def delete(dataset, key, operation=None):
    """Deletes run ``key``, every field it wrote and its map; returns those
    fields. A key that is no run but left fields behind (its run was deleted
    outside the plugin) has those fields and its map deleted."""
    with transactions.transaction(dataset, [key], "deletion", operation) as tx:
        dataset.reload()
        left = [f for f, owner in leftovers(dataset).items() if owner == key]
        brain_key = layout.brain_key(key)
        if left and key not in dataset.list_runs():
            fields, steps = left, []
        else:
            run_info, _ = get(dataset, key)
            fields = [f for f in run_fields(run_info.config)
                      if dataset.has_sample_field(f)] + left
            steps = [dict(op="delete_run", key=key)]
            brain_key = layout.recorded_key(run_info.config) or brain_key
        if layout.is_map(dataset, brain_key):
            steps.insert(0, dict(op="delete_map", key=brain_key))
        tx.commit([dict(op="delete_fields", fields=fields)] + steps)
    return fields


def renamed_fields(config, key, new_key):
    """``{old: new}`` for the run's fields named after its key (on the
    samples, or on the objects of a patch run)."""
    prefix, renamed = key + "_", {}
    for field in run_fields(config):
        parent, dot, name = field.rpartition(".")
        if name.startswith(prefix):
            renamed[field] = parent + dot + new_key + "_" + name[len(prefix):]
    return renamed


def check_rename(dataset, key, new_key):
    """Raises ParameterError unless ``key`` can become ``new_key``."""
    run_info, _ = get(dataset, key)
    check_new_key(dataset, new_key, overwrite=False, param=NEW_RUN_KEY)
    for old, new in renamed_fields(run_info.config, key, new_key).items():
        if dataset.has_sample_field(new):
            raise NEW_RUN_KEY.error(
                f"would rename field '{old}' to '{new}', which already exists; "
                "choose another key.")
    if layout.recorded_key(run_info.config):
        layout.check_key(dataset, new_key, overwrite=False, param=NEW_RUN_KEY)


def rename(dataset, key, new_key, operation=None):
    """Renames run ``key``, the fields named after it and its map; returns
    ``{old: new}`` of the fields."""
    with transactions.transaction(dataset, [key, new_key], "rename", operation) as tx:
        dataset.reload()
        check_rename(dataset, key, new_key)
        config = dataset.get_run_info(key).config
        fields = renamed_fields(config, key, new_key)
        changes = dict(cluster_field=fields.get(config.cluster_field, config.cluster_field))
        if getattr(config, "group_field", None):
            changes["group_field"] = fields.get(config.group_field, config.group_field)
        if config.distance_field:
            changes["distance_field"] = fields.get(config.distance_field,
                                                   config.distance_field)
        for entry, keys in FIELD_ENTRIES.items():
            recorded = dict(getattr(config, entry, None) or {})
            named = [k for k in keys if recorded.get(k)]
            if named:
                changes[entry] = dict(recorded, **{k: fields.get(recorded[k], recorded[k])
                                                   for k in named})
        steps = [dict(op="rename_field", old=old, new=new, owner=new_key)
                 for old, new in fields.items()]
        old_map = layout.recorded_key(config)
        if old_map:
            changes["map"] = dict(config.map, brain_key=layout.brain_key(new_key))
            steps.append(dict(op="rename_map", old=old_map, new=changes["map"]["brain_key"]))
        tx.commit(steps + [dict(op="rename_run", old=key, new=new_key, config=changes)])
    return fields


def info(dataset, key):
    """Everything about run ``key`` as a JSON-ready dict, numbers rounded
    for reading; ``dataset.get_run_info`` has them unrounded."""
    run_info, results = get(dataset, key)
    config = config_dict(run_info.config)
    timings = results.timings or {}
    clusters = [
        dict(id=c["id"], size=c["size"], name=c.get("name"),
             description=c.get("description"), naming=c.get("naming"),
             representatives=c.get("representatives", [])[:5])
        for c in results.clusters
    ]
    return dict(
        run_key=key,
        timestamp=run_info.timestamp.strftime("%Y-%m-%d %H:%M:%S UTC"),
        fiftyone_version=run_info.version,
        plugin_version=config.get("plugin_version"),
        current_fiftyone_version=foc.VERSION,
        config=rounded(config),
        clusters=clusters,
        groups=group_tree(results),
        noise=results.noise,
        metrics=rounded(results.metrics),
        sweep=rounded(results.sweep),
        timings=[dict(stage=s, seconds=round(timings[s], 2))
                 for s in STAGE_ORDER if s in timings],
        failed=[c["id"] for c in results.clusters if c.get("error")],
        leftovers=leftovers(dataset),
    )


def group_tree(results):
    """The run's groups, each with its clusters' ids, sizes and names
    (empty for runs recorded before groups existed)."""
    clusters = {c["id"]: c for c in results.clusters}
    return [dict(id=g["id"], size=g["size"], name=g.get("name"),
                 description=g.get("description"), naming=g.get("naming"),
                 clusters=[dict(id=c, size=clusters[c]["size"], name=clusters[c].get("name"))
                           for c in g["clusters"]])
            for g in getattr(results, "groups", None) or []]


def plain(value, digits=None):
    """``value`` with numpy scalars and arrays made plain Python (what
    FiftyOne stores in run configs and results on every version) and, with
    ``digits``, floats rounded for reading."""
    import numpy as np

    if isinstance(value, dict):
        return {k: plain(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, digits) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist(), digits)
    if isinstance(value, np.generic):
        value = value.item()
    if digits is not None and isinstance(value, float):
        return float(f"{value:.{digits}g}") if abs(value) >= 1 else round(value, digits)
    return value


def rounded(value, digits=4):
    """``value`` made plain, its floats rounded to ``digits`` decimals (or
    significant digits above 1), for display."""
    return plain(value, digits)
