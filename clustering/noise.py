"""HDBSCAN's noise given to the nearest cluster, and put back.

Each noise sample (``-1``) goes to the nearest cluster centre in the run's
input space, as assign_to_clusters places new samples, if it lies within
``max_distance`` times that cluster's radius (95% of the cluster's members
lie within its radius); the others stay noise. Moved samples are marked
True in ``<run_key>_reassigned`` (where they went is their cluster), get a
distance and a name as assigned samples do, and the run records how many
went to each cluster, its sizes recounted from the field. Reassigning again
starts from the noise as the run left it (earlier moves included), so the
last limit given holds; ``undo`` puts every moved sample back into noise,
with the values it had.
"""

import datetime

import numpy as np

from . import runs, units
from .actions import (NOISE, acting_on, check_run_field, group_steps, name_steps, stage_text,
                      validate)
from .assign import nearest, recorded_distances
from .embeddings import read_vectors
from .params import Param, raise_errors
from .progress import PROGRESS

PARAMS = (
    Param("max_distance", float, 1.0,
          "How far from the nearest cluster's centre a noise sample may lie to "
          "join that cluster, in multiples of the cluster's radius (95% of its "
          "members lie within it)", low=0.0, high=1000.0,
          empty="no limit: every noise sample joins its nearest cluster",
          label="Max distance (x radius)"),
    Param("undo", bool, False,
          "Put the samples that an earlier reassignment moved back into noise"),
)
EXECUTION_PARAMS = (
    Param("delegate", bool, False,
          "Queue the reassignment for `fiftyone delegated launch`"),
    PROGRESS,
)


def marker_field(key, config):
    """The field marking the samples moved out of noise: the one recorded
    (renamed with the run), else named after the run."""
    recorded = getattr(config, "noise_reassigned", None) or {}
    return recorded.get("field") or units.beside(config, f"{key}_reassigned")


def check(dataset, values):
    """The reassignment's parameters, checked; raises the first error."""
    request, run, errors = validate(dataset, values, PARAMS)
    key = values.get("run_key")
    if run is not None:
        info, results = run
        if results.noise is None:
            errors["run_key"] = runs.RUN_CHOICE.error(
                f"names run '{key}' ({info.config.method}), which has no noise: every "
                "sample it clustered is in a cluster. Noise (-1) comes from HDBSCAN runs.")
    raise_errors(errors)
    check_run_field(dataset, key, marker_field(key, run[0].config))
    return request


def reassign(dataset, values, report=None, operation=None):
    """Moves the run's noise to the nearest clusters within the limit, or
    with ``undo`` back; returns what moved."""
    from fiftyone import ViewField as F

    key = values.get("run_key")
    with acting_on(dataset, values, check, "noise reassignment", operation) as (
            tx, request, info, results):
        config = info.config
        marker = marker_field(key, config)
        on = units.for_run(dataset, config)
        rows, read = on.rows(), on.read(config)
        moved = F(on.row(marker)) == True  # noqa: E712
        had_moved = dataset.has_sample_field(marker)
        if report:
            report(0.0, "read")
        if request["undo"]:
            ids = rows.match(moved).values("_id") if had_moved else []
            labels, own = np.full(len(ids), NOISE), np.full(len(ids), np.nan)
        else:
            noise = F(read.cluster_field) == NOISE
            candidates = rows.match(noise | moved if had_moved else noise).exists(
                read.embeddings_field)
            ids, labels, own = [], np.array([], dtype=str), np.array([])
            if len(candidates):
                emb = read_vectors(candidates, read.embeddings_field)
                labels, own = nearest(emb, results, config, key, request["max_distance"])
                ids = emb.ids
        if not had_moved and not (labels != NOISE).any():
            return _outcome(dataset, key, config, request, {}, 0)
        if report:
            report(0.5, "write")
        placed = rows.match(~moved) if had_moved else rows
        counts = _commit(tx, key, config, results, request, marker, (placed, read), ids,
                         labels, own)
    if report:
        report(1.0, "done")
    return _outcome(dataset, key, config, request, counts, len(ids))


def _commit(tx, key, config, results, request, marker, placed, ids, labels, own):
    """Stages each candidate's cluster, distance, name and mark, commits
    them with the run's record and applies them; returns the moves per
    cluster. ``placed`` are the units the run placed itself, and the run's
    config as they name its fields."""
    moving = labels != NOISE
    tx.stage_ids("ids", ids)
    tx.stage_ids("moved", [i for i, m in zip(ids, moving) if m])
    tx.stage_ids("staying", [i for i, m in zip(ids, moving) if not m])
    steps = [stage_text(tx, "clusters", config.cluster_field, "ids", labels, key)]
    steps += group_steps(tx, config, results, ids, labels, key)
    if config.distance_field:
        tx.stage_array("distances", recorded_distances(*placed, labels[moving], own[moving]))
        steps += [dict(op="unset_field", field=config.distance_field, ids="staying"),
                  dict(op="write_field", field=config.distance_field, kind="float",
                       ids="moved", values="distances", replace=False, owner=key)]
    label_field = (getattr(config, "labels", None) or {}).get("label_field")
    if label_field:
        names = {c["id"]: c.get("name") for c in results.clusters}
        names[NOISE] = (results.noise or {}).get("name")
        steps += name_steps(tx, "", label_field, ids, labels, names, key)
    counts = {str(c): int(n) for c, n in zip(*np.unique(labels[moving], return_counts=True))}
    stored = runs.results_dict(results)
    stored.pop("noise_reassigned", None)
    recorded = None
    if moving.any():
        tx.stage_array("marks", np.ones(int(moving.sum()), dtype=bool))
        steps.append(dict(op="write_field", field=marker, kind="bool", ids="moved",
                          values="marks", replace=True, owner=key))
        at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        recorded = dict(field=marker, max_distance=request["max_distance"], reassigned_at=at)
        stored["noise_reassigned"] = dict(recorded, num_moved=int(moving.sum()),
                                          clusters=counts)
    else:
        steps.append(dict(op="delete_fields", fields=[marker]))
    tx.stage_json("results", stored)
    steps.append(dict(op="update_run", key=key, results="results", recount=True,
                      config=dict(noise_reassigned=recorded)))
    tx.commit(steps)
    return counts


def _outcome(dataset, key, config, request, counts, num_candidates):
    """What the call returns: the moves, and the noise and sizes after them."""
    _, results = runs.get(dataset, key)
    moved = sum(counts.values())
    noise = results.noise["size"]
    if request["undo"]:
        what = (f"Put {num_candidates:,} samples moved out of noise back: "
                f"{noise:,} noise samples (-1)." if num_candidates else
                f"Nothing to undo: no sample of run '{key}' is moved out of noise.")
    else:
        limit = request["max_distance"]
        within = "with no limit" if limit is None else f"within {limit:g} x radius"
        what = (f"**{moved:,} noise samples moved** to their nearest cluster ({within}) "
                f"in {len(counts)} clusters; {noise:,} remain noise (-1). Marked in "
                f"`{marker_field(key, config)}`; undo=True puts them back.")
    return dict(run_key=key, undo=request["undo"], max_distance=request["max_distance"],
                num_moved=moved, clusters=counts, noise=noise,
                sizes={c["id"]: c["size"] for c in results.clusters}, summary=what)
