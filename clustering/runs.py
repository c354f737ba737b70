"""Clustering runs, stored the way FiftyOne stores its own runs.

A run is a custom run: FiftyOne's own ``RunConfig`` and ``RunResults``
classes holding plain JSON, so any Python process reads it with
``dataset.get_run_info(key)`` and ``dataset.load_run_results(key)`` without
this plugin installed. ``plugin`` and ``kind`` in the config mark our runs.
Nothing stored grows with the number of samples: labels live in fields.
"""

import fiftyone.constants as foc

from . import PLUGIN, RUN_KIND, VERSION
from .params import InputError, ParameterError


def list_runs(dataset):
    """Keys of this plugin's clustering runs on ``dataset``."""
    return dataset.list_runs(plugin=PLUGIN, kind=RUN_KIND)


def is_clustering_run(dataset, key):
    return key in list_runs(dataset)


def check_new_key(dataset, key, overwrite, param="run_key"):
    """Raises ParameterError unless ``key`` can name a new run."""
    if not key:
        raise ParameterError(param, "is required: name this run, e.g. 'clip_kmeans'.")
    if not isinstance(key, str) or not key.isidentifier():
        raise ParameterError(
            param,
            f"must be a valid Python identifier (letters, digits, '_', not "
            f"starting with a digit); got {key!r}. Try {_suggest(key)!r}.",
        )
    if key in dataset.list_runs() + dataset.list_brain_runs() + dataset.list_evaluations():
        if not is_clustering_run(dataset, key):
            raise ParameterError(
                param,
                f"'{key}' is already used by another run that is not a "
                "clustering run; choose another key.",
            )
        if not overwrite:
            raise ParameterError(
                param,
                f"'{key}' already exists; choose a new key or set overwrite "
                "to replace that run.",
            )


def _suggest(key):
    import re

    key = re.sub(r"\W+", "_", str(key or "")).strip("_") or "run"
    return "_" + key if key[0].isdigit() else key


def check_output_field(dataset, param, name, run_key, overwrite):
    """Raises ParameterError unless the run may write field ``name``.

    A field may be written if it does not exist yet, or if it belongs to the
    run being overwritten; never over user data such as ``ground_truth``.
    """
    if not name.isidentifier():
        raise ParameterError(
            param, f"must be a plain field name (letters, digits, '_'); got {name!r}.")
    if name.startswith("_"):
        raise ParameterError(param, f"must not start with '_'; got {name!r}.")
    if not dataset.has_sample_field(name):
        return
    owner = field_owner(dataset, name)
    if owner == run_key and overwrite:
        return
    if owner is not None:
        raise ParameterError(
            param,
            f"'{name}' holds the results of clustering run '{owner}'; choose "
            "another field name or delete that run first.",
        )
    raise ParameterError(
        param,
        f"'{name}' is an existing field of the dataset that this run does "
        "not own; choose a new field name so existing data is not overwritten.",
    )


def field_owner(dataset, name):
    """The clustering run that wrote field ``name``, or None."""
    for key in list_runs(dataset):
        if name in run_fields(dataset.get_run_info(key).config):
            return key
    return None


def run_fields(config):
    """Every sample field a run wrote."""
    fields = [config.cluster_field, getattr(config, "distance_field", None)]
    labels = getattr(config, "labels", None) or {}
    fields.append(labels.get("label_field"))
    return [f for f in fields if f]


def get(dataset, key):
    """``(info, results)`` of clustering run ``key`` or an InputError."""
    if not key:
        raise InputError("Parameter 'run_key' is required: choose a clustering run.")
    if key not in dataset.list_runs():
        raise InputError(
            f"Parameter 'run_key': dataset '{dataset.name}' has no run '{key}'. "
            f"Clustering runs: {', '.join(list_runs(dataset)) or 'none yet'}."
        )
    if not is_clustering_run(dataset, key):
        raise InputError(
            f"Parameter 'run_key': run '{key}' is not a clustering run of this "
            f"plugin. Clustering runs: {', '.join(list_runs(dataset)) or 'none yet'}."
        )
    return dataset.get_run_info(key), dataset.load_run_results(key, cache=False)


def register(collection, key, config):
    """Registers run ``key`` on ``collection`` with ``config`` (a plain dict)."""
    config = collection.init_run(
        plugin=PLUGIN, kind=RUN_KIND, plugin_version=VERSION, **config
    )
    collection.register_run(key, config, overwrite=True)


def save_results(dataset, key, results):
    """Stores ``results`` (a plain dict) as the results of run ``key``."""
    dataset.save_run_results(
        key, dataset.init_run_results(key, **results), overwrite=True, cache=False
    )


def results_dict(results):
    """A run's stored results as a plain dict, to amend and save again."""
    stored = results.serialize()
    stored.pop("cls", None)
    return stored


def update_config(dataset, key, **changes):
    """Updates entries of run ``key``'s config."""
    config = dataset.get_run_info(key).config
    for name, value in changes.items():
        setattr(config, name, value)
    dataset.update_run_config(key, config)


def delete(dataset, key):
    """Deletes run ``key`` and every field it wrote; returns those fields."""
    run_info, _ = get(dataset, key)
    fields = [f for f in run_fields(run_info.config) if dataset.has_sample_field(f)]
    if fields:
        dataset.delete_sample_fields(fields)
    dataset.delete_run(key)
    return fields


def renamed_fields(config, key, new_key):
    """``{old: new}`` for the run's fields named after its key."""
    prefix = key + "_"
    return {f: new_key + "_" + f[len(prefix):]
            for f in run_fields(config) if f.startswith(prefix)}


def check_rename(dataset, key, new_key):
    """Raises ParameterError/InputError unless ``key`` can become ``new_key``."""
    run_info, _ = get(dataset, key)
    check_new_key(dataset, new_key, overwrite=False, param="new_run_key")
    for old, new in renamed_fields(run_info.config, key, new_key).items():
        if dataset.has_sample_field(new):
            raise ParameterError(
                "new_run_key",
                f"would rename field '{old}' to '{new}', which already exists; "
                "choose another key.",
            )


def rename(dataset, key, new_key):
    """Renames run ``key`` and the fields named after it; returns ``{old: new}``."""
    check_rename(dataset, key, new_key)
    config = dataset.get_run_info(key).config
    fields = renamed_fields(config, key, new_key)
    for old, new in fields.items():
        if dataset.has_sample_field(old):
            dataset.rename_sample_field(old, new)
    dataset.rename_run(key, new_key)
    config.cluster_field = fields.get(config.cluster_field, config.cluster_field)
    if config.distance_field:
        config.distance_field = fields.get(config.distance_field, config.distance_field)
    labels = getattr(config, "labels", None)
    if labels and labels.get("label_field"):
        labels["label_field"] = fields.get(labels["label_field"], labels["label_field"])
    dataset.update_run_config(new_key, config)
    return fields


def info(dataset, key):
    """Everything about run ``key`` as a JSON-ready dict."""
    run_info, results = get(dataset, key)
    config = run_info.config.serialize()
    config.pop("cls", None)
    config.pop("type", None)
    return dict(
        run_key=key,
        timestamp=run_info.timestamp.strftime("%Y-%m-%d %H:%M:%S UTC"),
        fiftyone_version=run_info.version,
        plugin_version=config.get("plugin_version"),
        current_fiftyone_version=foc.VERSION,
        config=config,
        clusters=[
            dict(id=c["id"], size=c["size"], name=c.get("name"),
                 description=c.get("description"),
                 representatives=c.get("representatives", [])[:5],
                 typical=", ".join(c.get("representatives", [])[:3]))
            for c in results.clusters
        ],
        noise=results.noise,
        metrics=results.metrics,
        sweep=results.sweep,
        timings=results.timings,
        failed=[c["id"] for c in results.clusters if c.get("error")],
    )
