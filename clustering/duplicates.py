"""Near-duplicates within each cluster of a run.

Two samples are near-duplicates when the cosine similarity of their
embeddings reaches the threshold. Only samples of the same cluster are
compared: each cluster's normalised vectors are multiplied block by block
(a few rows against the rest at a time), never an N x N matrix, which is
what makes it scale. Within a cluster, samples are visited most typical
first (as open_cluster orders them); a sample not yet marked that has
unmarked near-duplicates is kept and they are marked as its duplicates. So
each duplicate group keeps its most typical sample, and every duplicate is
within the threshold of the sample it is marked as duplicating.

Marks, replacing an earlier search's: ``<run_key>_duplicate`` is True on
duplicates and False on the kept sample of each group, ``<run_key>_dup_of``
holds the kept sample's id on its duplicates; the run records the counts
per cluster.
"""

import datetime

import numpy as np

from . import runs, units
from .actions import (NOISE, acting_on, check_run_field, object_ids, read_members, stage_text,
                      validate)
from .features import l2_normalize
from .params import Param, raise_errors
from .progress import PROGRESS

PARAMS = (
    Param("threshold", float, 0.9,
          "Cosine similarity of embeddings from which two samples of a cluster "
          "are near-duplicates", low=0.5, high=1.0, label="Similarity threshold"),
    Param("include_noise", bool, False,
          "Also look for duplicates among HDBSCAN's noise samples (-1)"),
)
EXECUTION_PARAMS = (
    Param("delegate", bool, False, "Queue the search for `fiftyone delegated launch`"),
    PROGRESS,
)
# Similarities computed at once (64 MB of float32): rows per block = this / cluster size.
_BLOCK = 1 << 24
# float32 rounding: identical vectors may score 1 - 1e-7.
_ROUNDING = 1e-6


def fields(key, config):
    """``(dup_of_field, duplicate_field)`` of run ``key``: those recorded
    by an earlier search (renamed with the run), else named after the run."""
    recorded = getattr(config, "duplicates", None) or {}
    return (recorded.get("dup_of_field") or units.beside(config, f"{key}_dup_of"),
            recorded.get("duplicate_field") or units.beside(config, f"{key}_duplicate"))


def check(dataset, values):
    """The search's parameters, checked; raises the first error."""
    request, run, errors = validate(dataset, values, PARAMS)
    raise_errors(errors)
    for name in fields(values["run_key"], run[0].config):
        check_run_field(dataset, values["run_key"], name)
    return request


def find_duplicates(dataset, values, report=None, operation=None):
    """Marks the near-duplicates within each cluster of the run; returns the counts."""
    key = values.get("run_key")
    with acting_on(dataset, values, check, "duplicate search", operation) as (
            tx, request, info, results):
        if report:
            report(0.0, "read")
        members = read_members(dataset, info.config, results, request["include_noise"],
                               vectors=True)
        kept, dups, dup_of, counts = [], [], [], {}
        clusters = members.groups()
        for done, (cluster, where) in enumerate(clusters):
            if report:
                report(0.1 + 0.8 * done / len(clusters),
                       f"compare ({done}/{len(clusters)} clusters)")
            keeper = mark(l2_normalize(members.vectors(where)), request["threshold"])
            ids, marked = members.ids[where], keeper >= 0
            keepers = np.unique(keeper[marked])
            dups.extend(ids[marked])
            dup_of.extend(ids[keeper[marked]])
            kept.extend(ids[keepers])
            counts[cluster] = dict(groups=len(keepers), duplicates=int(marked.sum()))
        if report:
            report(0.9, "write")
        outcome = _commit(tx, key, info.config, results, request, kept, dups, dup_of, counts)
    if report:
        report(1.0, "done")
    return outcome


def mark(X, threshold):
    """For each row of ``X`` (unit vectors, most typical first) the row it
    duplicates, or -1: visited in order, an unmarked row keeps its unmarked
    later rows at similarity >= ``threshold``."""
    n = len(X)
    keeper = np.full(n, -1, dtype=np.int64)
    kept = np.zeros(n, dtype=bool)
    step = max(1, _BLOCK // max(n, 1))
    for start in range(0, n, step):
        hits = (X[start:start + step] @ X[start:].T) >= threshold - _ROUNDING
        for r in np.flatnonzero(hits.sum(axis=1) > 1):  # more than itself
            row = start + r
            if keeper[row] >= 0:
                continue
            later = start + np.flatnonzero(hits[r])
            later = later[(later > row) & (keeper[later] < 0) & ~kept[later]]
            if len(later):
                kept[row] = True
                keeper[later] = row
    return keeper


def _commit(tx, key, config, results, request, kept, dups, dup_of, counts):
    """Stages the marks and the counts, commits them and applies them."""
    dup_of_field, duplicate_field = fields(key, config)
    tx.stage_ids("marked", object_ids(kept + dups))
    tx.stage_array("is_duplicate", np.r_[np.zeros(len(kept), bool), np.ones(len(dups), bool)])
    tx.stage_ids("duplicates", object_ids(dups))
    found_at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    stored = runs.results_dict(results)
    stored["duplicates"] = dict(threshold=request["threshold"], found_at=found_at,
                                num_groups=len(kept), num_duplicates=len(dups),
                                clusters=counts)
    tx.stage_json("results", stored)
    tx.commit([
        dict(op="write_field", field=duplicate_field, kind="bool", ids="marked",
             values="is_duplicate", replace=True, owner=key),
        stage_text(tx, "dup_of", dup_of_field, "duplicates", dup_of, key, replace=True),
        dict(op="update_run", key=key, results="results", config=dict(duplicates=dict(
            dup_of_field=dup_of_field, duplicate_field=duplicate_field,
            threshold=request["threshold"], include_noise=request["include_noise"],
            found_at=found_at))),
    ])
    noise = counts.get(NOISE, {}).get("duplicates", 0)
    return dict(
        run_key=key, threshold=request["threshold"], num_groups=len(kept),
        num_duplicates=len(dups), clusters=counts, dup_of_field=dup_of_field,
        duplicate_field=duplicate_field,
        summary=f"**{len(dups):,} near-duplicates** (cosine similarity >= "
                f"{request['threshold']}) in {len(kept):,} groups, across "
                f"{sum(c['groups'] > 0 for c in counts.values())} clusters"
                + (f" ({noise:,} among the noise)" if noise else "")
                + f". Each group keeps its most typical sample (`{duplicate_field}` "
                f"False); the others have `{duplicate_field}` True and "
                f"`{dup_of_field}` = the kept sample's id.")
