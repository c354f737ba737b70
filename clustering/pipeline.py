"""A clustering run, stage by stage: read embeddings, prepare features, fit
the method, measure, write labels, record the run.

Nothing is written before the fit succeeded; the fields and the run are
written last and rolled back together on failure.
"""

import time
from contextlib import contextmanager

import numpy as np

from . import autok, features, quality, runs, writeback
from .embeddings import read_embeddings
from .params import InputError

# Share of the overall progress bar each stage takes.
_STAGES = dict(read=0.15, prepare=0.25, fit=0.35, measure=0.05, write=0.15, record=0.05)


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


def run(collection, request, report=None):
    """Runs the clustering ``request`` on ``collection``; returns a summary."""
    dataset = collection._root_dataset
    progress = _Progress(report)
    seed = request.random_state
    rng = np.random.default_rng(seed)
    start = time.perf_counter()

    with progress.stage("read") as update:
        emb = read_embeddings(collection, request.embeddings, progress=update)
        truth = _read_truth(collection, request.ground_truth, emb.ids)

    method = request.method
    check = method.check(request.params, len(emb.ids))
    if check:
        raise InputError(" ".join(check.values()))

    with progress.stage("prepare"):
        prepare = features.resolve(request.prepare, method, *emb.X.shape)
        Z = features.prepare(emb.X, prepare, random_state=seed)

    with progress.stage("fit") as update:
        sweep = None
        if method.needs_k and request.params["n_clusters"] is None:
            fit, sweep = autok.sweep(method, Z, request.params, seed, rng, update)
        else:
            fit = method.fit(Z, request.params, seed)
            # record what ran: the request with the method's own resolutions
            fit.params = {**request.params, **fit.params}

    with progress.stage("measure"):
        reduced = prepare["reduce"] != "none"
        measured = quality.measure(Z, emb.X, fit, reduced, truth, rng)
        labels = measured.labels

    old_fields = _fields_to_replace(dataset, request)
    with progress.stage("write") as update:
        fields = {request.cluster_field: labels.astype(str)}
        if request.distance_field:
            fields[request.distance_field] = measured.distances
        writeback.write_fields(dataset, emb.ids, fields, progress=update)

    k, noise = measured.num_clusters, measured.noise
    config = dict(
        method=method.name,
        params=_jsonable(fit.params),
        prepare=prepare,
        random_state=seed,
        embeddings_field=request.embeddings,
        cluster_field=request.cluster_field,
        distance_field=request.distance_field,
        ground_truth_field=request.ground_truth,
        view=_describe_view(collection),
        num_samples=len(emb.ids),
        num_skipped=emb.num_skipped,
        num_clusters=k,
    )
    try:
        with progress.stage("record"):
            runs.register(collection, request.run_key, config)
            writeback.delete_fields(dataset, old_fields)
        progress.timings["total"] = round(time.perf_counter() - start, 3)
        runs.save_results(dataset, request.run_key, dict(
            clusters=measured.clusters(emb.ids, reduced),
            noise=dict(size=noise) if method.noise else None,
            metrics=measured.metrics,
            sweep=sweep,
            timings=progress.timings,
        ))
        if report:
            report(1.0, "done")
    except BaseException:
        if request.run_key in dataset.list_runs():
            dataset.delete_run(request.run_key)
        writeback.delete_fields(dataset, list(fields))
        raise

    return dict(
        run_key=request.run_key,
        method=method.name,
        cluster_field=request.cluster_field,
        num_clusters=k,
        sizes=[int(s) for s in measured.sizes],
        noise=noise,
        noise_fraction=round(noise / len(labels), 4),
        num_samples=len(emb.ids),
        num_skipped=emb.num_skipped,
        params=config["params"],
        prepare=prepare,
        metrics=measured.metrics,
        sweep=sweep,
        timings=progress.timings,
    )


def _fields_to_replace(dataset, request):
    """Fields of the run being overwritten that the new run will not reuse."""
    if not request.overwrite or not runs.is_clustering_run(dataset, request.run_key):
        return []
    old = runs.run_fields(dataset.get_run_info(request.run_key).config)
    return [f for f in old if f not in (request.cluster_field, request.distance_field)]


def _read_truth(collection, field, ids):
    if not field:
        return None
    values = dict(zip(collection.values("_id"), collection.values(field)))
    return [getattr(values.get(i), "label", values.get(i)) for i in ids]


def _describe_view(collection):
    """The target as readable stages (each cut short: selections can be long)."""
    stages = getattr(collection, "_stages", [])
    if not stages:
        return "dataset"
    text = []
    for stage in stages:
        s = repr(stage)
        text.append(s if len(s) <= 200 else s[:197] + "...")
    return text


def _jsonable(params):
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in params.items()}

