"""A clustering run, stage by stage: read embeddings, prepare features, fit
the method, measure, write labels, record the run.

The run holds its key's lease from start to end, so no other process writes
that key meanwhile. Labels and the run record are written as one
transaction (see ``transactions``): staged, committed, applied. Nothing the
user had changes before the commit; a crash after it is completed by the
next call.
"""

import time
from contextlib import contextmanager

import numpy as np

from . import (autok, choice, collector, features, groups, internals, layout, quality,
               runs, transactions, umap_process)
from .embeddings import read_vectors
from .methods import Fit
from .params import ParameterError, raise_errors
from .request import RUN_KEY, check_enough, declared

# Share of the overall progress bar each stage takes.
_STAGES = dict(read=0.15, prepare=0.25, fit=0.3, measure=0.05, map=0.05, write=0.2)
# Datasets from this size start the map's UMAP helper: smaller runs end before it is ready.
_HELPED = 20_000
# Vectors whose spread is below this share of their magnitude are identical.
_IDENTICAL = 1e-6


class _Progress:
    """Reports overall progress as stages advance, and times each stage."""

    def __init__(self, report):
        self.report = report
        self.timings = {}
        self.done = 0.0

    @contextmanager
    def stage(self, name):
        start = time.perf_counter()
        self.current = name
        self.update(0.0)
        yield self.update
        self.timings[name] = round(time.perf_counter() - start, 3)
        self.done += _STAGES[name]

    def update(self, fraction, detail=None):
        if self.report:
            label = self.current + (f" ({detail})" if detail else "")
            self.report(min(1.0, self.done + _STAGES[self.current] * fraction), label)


def run(collection, request, report=None, operation=None):
    """Runs the clustering ``request`` on ``collection``; returns a summary.
    ``operation`` is the delegated operation executing it, if any."""
    dataset = internals.root_dataset(collection)
    # the map's UMAP is made ready in a helper process while the run reads and fits
    with transactions.transaction(dataset, [request.run_key], "clustering run",
                                  operation) as tx, \
            umap_process.ready(_helped(dataset, request.map)) as helper, \
            collector.paused():
        _check_still_valid(dataset, request)
        return _run(collection, dataset, request, tx, report, helper)


def expect(collection, map):
    """Readies this process for a run of ``collection`` drawing ``map``,
    about to come (its form is open): starts the map's UMAP helper where
    the run would, so a first run does not load UMAP while it reads and fits."""
    if _helped(internals.root_dataset(collection), map):
        umap_process.start()


def _helped(dataset, map):
    """Whether a run of ``dataset`` drawing ``map`` uses the UMAP helper."""
    return map == "umap" and len(dataset) >= _HELPED


def _check_still_valid(dataset, request):
    """The key and fields checked when the request was validated, checked
    again under the lease: another process may have used them since."""
    dataset.reload()
    errors = {}
    try:
        runs.check_new_key(dataset, request.run_key, request.overwrite, RUN_KEY)
    except ParameterError as e:
        errors["run_key"] = e
    on = request.units(dataset)
    for key in ("cluster_field", "distance_field"):
        path = getattr(request, key)
        if path and not errors:
            try:
                runs.check_output_path(dataset, declared(key), path, request.run_key,
                                       request.overwrite)
            except ParameterError as e:
                errors[key] = e
    if not errors:
        try:
            runs.check_output_path(dataset, RUN_KEY, on.stored(groups.field(request.run_key)),
                                   request.run_key, request.overwrite)
        except ParameterError as e:
            errors["run_key"] = e
    if request.map != "none" and not errors:
        try:
            layout.check_key(dataset, request.run_key, request.overwrite)
        except ParameterError as e:
            errors["map"] = e
    raise_errors(errors)


def _run(collection, dataset, request, tx, report, helper):
    progress = _Progress(report)
    seed = request.random_state
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    notes = []

    on = request.units(collection)
    with progress.stage("read") as update:
        rows = on.rows()
        emb = read_vectors(rows, on.row(request.embeddings), progress=update)
        truth = _read_truth(rows, on.row(request.ground_truth), emb.ids)

    method = request.method
    check_enough(request.embeddings, len(emb.ids))
    raise_errors(method.check(request.params, len(emb.ids)))
    identical = _identical(emb.X)

    with progress.stage("prepare"):
        if identical:
            prepare = features.resolve(dict(request.prepare, reduce="none"), method,
                                       *emb.X.shape)
        else:
            prepare = choice.choose(request.prepare, method, emb.X, request.params, seed)
        Z = features.prepare(emb.X, prepare, random_state=seed)

    with progress.stage("fit") as update:
        sweep = None
        if identical:
            fit = Fit(np.zeros(len(Z), dtype=int), centers=Z[:1].copy(),
                      params=dict(request.params))
            notes.append(
                f"All {len(Z):,} vectors are identical (or nearly): they form one "
                "cluster, as there is nothing to separate.")
        elif method.needs_k and request.params["n_clusters"] is None:
            fit, sweep = autok.sweep(method, Z, request.params, seed, rng, update)
            if len(Z) > autok.SAMPLE:
                notes.append(f"k was chosen on {autok.SAMPLE:,} samples drawn at random, "
                             f"then fitted on all {len(Z):,}.")
        else:
            fit = method.fit(Z, request.params, seed)
            # record what ran: the request with the method's own resolutions
            fit.params = {**request.params, **fit.params}

    with progress.stage("measure"):
        reduced = prepare["reduce"] != "none"
        measured = quality.measure(Z, emb.X, fit, reduced, truth, rng)
        asked = fit.params.get("n_clusters")
        if asked and not identical and measured.num_clusters < asked:
            notes.append(
                f"{method.label} found {measured.num_clusters} clusters where "
                f"{asked} were asked: the data holds too few distinct vectors.")
        grouping = groups.find(Z, measured.labels, measured.sizes, request.n_groups)
        notes.extend(groups.notes(grouping, request.n_groups))

    mapped = made = None
    if request.map != "none":
        with progress.stage("map"):
            rows = layout.shown(len(emb.ids), seed)
            points, made = layout.compute(Z, request.map, seed, rows, helper)
            if rows is not None:
                made["shown"] = len(rows)
            mapped = (rows, points)

    k, noise = measured.num_clusters, measured.noise
    config = dict(
        method=method.name,
        params=runs.plain(fit.params),
        prepare=prepare,
        random_state=seed,
        embeddings_field=request.embeddings,
        patches_field=request.patches_field,
        cluster_field=request.cluster_field,
        distance_field=request.distance_field,
        map=made and dict(made, brain_key=layout.brain_key(request.run_key)),
        ground_truth_field=request.ground_truth,
        view=internals.describe_view(collection),
        num_samples=len(emb.ids),
        num_skipped=emb.num_skipped,
        num_clusters=k,
        k_chosen_automatically=sweep is not None,
        group_field=on.stored(groups.field(request.run_key)),
        n_groups=request.n_groups,
        num_groups=grouping.num_groups,
    )
    results = dict(
        clusters=measured.clusters(emb.ids, reduced),
        groups=grouping.records(measured.sizes),
        grouping=grouping.info(),
        noise=dict(size=noise) if method.noise else None,
        metrics=measured.metrics,
        sweep=sweep,
        fit=fit.info,
        notes=notes,
    )
    with progress.stage("write") as update:
        written = _commit(dataset, collection, request, tx, emb.ids, measured, grouping,
                          config, results, progress, start, update, mapped)

    sizes, noise, found = [int(s) for s in measured.sizes], noise, results["groups"]
    num_lost = len(emb.ids) - written
    num_added = _count_added(dataset, collection, on, request, written)
    if num_added:
        notes.append(f"{num_added:,} {on.noun} added while the run computed have no "
                     "cluster; assign_to_clusters gives them one.")
    if num_lost:
        stored = runs.load_results(dataset, request.run_key)
        sizes = [c["size"] for c in stored.clusters]
        noise = (stored.noise or {}).get("size", 0)
        found = stored.groups
        notes.append(f"{num_lost:,} {on.noun} were deleted while the run computed; "
                     "the recorded sizes count only the samples that remain.")
    if report:
        report(1.0, "done")
    return dict(
        run_key=request.run_key,
        method=method.name,
        cluster_field=request.cluster_field,
        num_clusters=k,
        sizes=sizes,
        group_field=config["group_field"],
        groups=found,
        noise=int(noise),
        noise_fraction=round(noise / max(written, 1), 4),
        num_samples=written,
        num_skipped=emb.num_skipped,
        num_lost=num_lost,
        num_added=num_added,
        k_chosen_automatically=sweep is not None,
        map=config["map"],
        params=config["params"],
        prepare=prepare,
        metrics=runs.rounded(measured.metrics),
        sweep=runs.rounded(sweep),
        notes=notes,
        timings=_timings(progress, start),
    )


def _commit(dataset, collection, request, tx, ids, measured, grouping, config, results,
            progress, start, update, mapped):
    """Stages the clusters, groups, distances and run record, commits them
    and applies them; returns how many samples were written."""
    tx.stage_ids("ids", ids)
    categories, codes = np.unique(measured.labels, return_inverse=True)
    tx.stage_array("codes", codes.astype(np.int32))
    steps = [dict(op="write_field", field=request.cluster_field, kind="str", ids="ids",
                  values="codes", categories=[str(c) for c in categories], replace=True,
                  owner=request.run_key, derived={config["group_field"]: [
                      str(g) for g in grouping.labels(categories)]})]
    if request.distance_field:
        tx.stage_array("distances", measured.distances)
        steps.append(dict(op="write_field", field=request.distance_field, kind="float",
                          ids="ids", values="distances", replace=True,
                          owner=request.run_key))
    steps.append(dict(op="delete_fields", fields=_fields_to_replace(dataset, request)))
    steps += _map_steps(dataset, collection, request, tx, ids, mapped)
    update(0.2, "staged")
    tx.stage_json("results", dict(results, timings=_timings(progress, start)))
    steps.append(dict(op="save_run", key=request.run_key, config=config,
                      results="results", stages=internals.view_stages(collection),
                      cluster_field=request.cluster_field, num_staged=len(ids),
                      written_by=0))
    return tx.commit(steps)[len(steps) - 1]


def _map_steps(dataset, collection, request, tx, ids, mapped):
    """Stages the run's map (``(rows of ids, points)``: rows None when it
    shows every unit), to be recorded on the run's ``collection``, and
    returns the step recording it; without a map, the step deleting the map
    of the run being overwritten."""
    key = layout.brain_key(request.run_key)
    if mapped is not None:
        rows, points = mapped
        if rows is not None:
            tx.stage_ids("map_ids", [ids[r] for r in rows])
        tx.stage_array("map", points)
        return [dict(op="save_map", key=key, ids="ids" if rows is None else "map_ids",
                     points="map", stages=internals.view_stages(collection),
                     patches_field=request.patches_field)]
    if request.overwrite and layout.is_map(dataset, key):
        return [dict(op="delete_map", key=key)]
    return []


def _count_added(dataset, collection, on, request, written):
    """How many units with a vector and no cluster were added while the run
    computed. A run of a whole dataset's samples settles it with a count
    where it can (the scan took 0.1-0.2 s at 100k): none was added if the
    dataset holds no document besides the samples just written."""
    if (not on.patches_field and not internals.view_stages(collection)
            and internals.count_stored(dataset) == written):
        return 0
    return on.rows().exists(on.row(request.embeddings)).exists(
        on.row(request.cluster_field), False).count()


def _timings(progress, start):
    """The stage timings so far and the total, in pipeline order."""
    return dict(progress.timings, total=round(time.perf_counter() - start, 3))


def _identical(X):
    """Whether every vector is the same (within float noise)."""
    head = X[: min(len(X), 10_000)]
    scale = max(float(np.abs(head).max()), 1e-12)
    if float(np.ptp(head, axis=0).max()) > _IDENTICAL * scale:
        return False
    return float(np.ptp(X, axis=0).max()) <= _IDENTICAL * scale


def _fields_to_replace(dataset, request):
    """Fields of the run being overwritten that the new run will not reuse."""
    if not request.overwrite or not runs.is_clustering_run(dataset, request.run_key):
        return []
    old = runs.run_fields(dataset.get_run_info(request.run_key).config)
    group_field = request.units(dataset).stored(groups.field(request.run_key))
    return [f for f in old if f not in (request.cluster_field, request.distance_field,
                                        group_field)]


def _read_truth(collection, field, ids):
    if not field:
        return None
    values = dict(zip(*collection.values(["_id", field])))
    return [getattr(values.get(i), "label", values.get(i)) for i in ids]
