"""The steps a committed transaction applies, by name.

A step is a plain dict (``{"op": name, ...}``) recorded in the journal at
commit, so that a process which never saw the run can finish it. Every step
is idempotent; staged data is referred to by name and fetched with
``load``. ``context`` holds the reports of the steps applied before it in
the same process (empty in a recovery, which then measures again).
"""

import time

from . import internals, layout, runs, units, writeback


def write_field(dataset, load, context, field, kind, ids, values, replace, owner,
                categories=None, derived=None):
    """A field of the run: cluster ids (codes into ``categories``) or floats;
    ``derived`` fields hold one value per category (each cluster's group)."""
    values = load(values)
    if categories is not None:
        import numpy as np

        values = np.asarray(categories, dtype=object)[np.asarray(values)]
    derived = {other: dict(zip(categories, of_category))
               for other, of_category in (derived or {}).items()}
    return writeback.write_field(dataset, field, kind, load(ids), values, replace, owner,
                                 derived)


def write_per_cluster(dataset, load, context, field, cluster_field, values, owner):
    """One value per cluster (names), matched on the cluster field."""
    return writeback.write_per_cluster(dataset, field, cluster_field, values, owner)


def delete_fields(dataset, load, context, fields):
    writeback.delete_fields(dataset, fields)


def rename_field(dataset, load, context, old, new, owner):
    writeback.rename_field(dataset, old, new, owner)


def save_run(dataset, load, context, key, config, results, stages, cluster_field,
             num_staged, written_by):
    """Registers run ``key`` with its results; sizes are those the field
    holds (samples deleted while the run computed are counted as lost)."""
    results = load(results)
    written = context.get(written_by)
    if written != num_staged:
        written = runs.count_sizes(dataset, cluster_field, results)
        if written < num_staged:
            present = units.Units(dataset, config.get("patches_field")).present(
                [r for c in results["clusters"] for r in c["representatives"]])
            for cluster in results["clusters"]:
                cluster["representatives"] = [
                    r for r in cluster["representatives"] if r in present]
    timings = results.get("timings")
    if timings is not None and "clock" in context:
        spent = time.perf_counter() - context["clock"]
        timings["write"] = round(spent, 3)
        timings["total"] = round(timings["total"] + spent, 3)
        results["timings"] = {s: timings[s] for s in runs.STAGE_ORDER if s in timings}
    config = dict(config, num_samples=written, num_lost=num_staged - written)
    runs.register(internals.build_view(dataset, stages), key, config)
    runs.save_results(dataset, key, results)
    return written


def update_run(dataset, load, context, key, config=None, results=None, recount=False):
    """Amends run ``key``: entries of its config, and its results;
    ``recount`` records as sizes what its cluster field holds now."""
    if config:
        runs.update_config(dataset, key, **config)
    if results is None and not recount:
        return
    stored = load(results) if results is not None else runs.results_dict(
        runs.load_results(dataset, key))
    if recount:
        runs.count_sizes(dataset, dataset.get_run_info(key).config.cluster_field, stored)
    runs.save_results(dataset, key, stored)


def unset_field(dataset, load, context, field, ids):
    """Removes ``field``'s value from the staged samples ``ids``."""
    writeback.unset_values(dataset, field, load(ids))


def edit_tags(dataset, load, context, ids, tag, remove=False, replace=False, tags="tags"):
    """Adds tag ``tag`` to the staged units ``ids`` (samples, or objects
    whose tags are at ``tags``) or takes it off; returns how many changed."""
    return writeback.edit_tags(dataset, load(ids), tag, remove, replace, tags)


def save_view(dataset, load, context, name, ids, patches_field=None):
    """Saves the staged samples ``ids`` (or objects of ``patches_field``, as
    a patches view), in their order, as saved view ``name`` (replacing one
    of that name)."""
    rows = dataset.to_patches(patches_field) if patches_field else dataset
    view = rows.select([str(i) for i in load(ids)], ordered=True)
    dataset.save_view(name, view, overwrite=True)


def delete_run(dataset, load, context, key):
    if key in dataset.list_runs():
        dataset.delete_run(key)


def rename_run(dataset, load, context, old, new, config):
    """Renames the run and points its config at its renamed fields."""
    if old in dataset.list_runs() and new not in dataset.list_runs():
        dataset.rename_run(old, new)
    runs.update_config(dataset, new, **config)


def save_map(dataset, load, context, key, ids, points, stages, patches_field=None):
    """Records the run's map as brain run ``key`` (replacing one of that key)
    for the App's Embeddings panel; a patch run's points are its objects'."""
    # the dataset itself when the map is of all of it: FiftyOne Brain then
    # knows every point is in it, without reading back each id
    shown = internals.build_view(dataset, stages) if stages else dataset
    layout.save(shown, key, load(ids), load(points), patches_field)


def delete_map(dataset, load, context, key):
    if key in dataset.list_brain_runs():
        dataset.delete_brain_run(key)


def rename_map(dataset, load, context, old, new):
    if old in dataset.list_brain_runs() and new not in dataset.list_brain_runs():
        dataset.rename_brain_run(old, new)


APPLY = dict(
    write_field=write_field, write_per_cluster=write_per_cluster,
    delete_fields=delete_fields, rename_field=rename_field, save_run=save_run,
    update_run=update_run, delete_run=delete_run, rename_run=rename_run,
    unset_field=unset_field, edit_tags=edit_tags, save_view=save_view,
    save_map=save_map, delete_map=delete_map, rename_map=rename_map,
)
