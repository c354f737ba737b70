"""Labels out: bulk writes of a run's per-sample fields, all or nothing.

Cluster ids are written with one ``update_many`` per cluster (k writes, not
N). A field that already exists (the run being overwritten) is written under
a temporary name and swapped in only once every write succeeded, so a
failure leaves the old values intact and no new field behind.
"""

from datetime import datetime, timezone

import numpy as np

_IDS_PER_UPDATE = 50_000
_OPS_PER_BULK = 5_000
_WRITERS = 4  # as fast as 2 on a 2-core machine, faster where the database has more
_TMP_PREFIX = "clusterlab_tmp_"


def write_fields(dataset, ids, fields, progress=None):
    """Writes ``fields`` (``{name: numpy array of str or float}``) on ``ids``,
    replacing any previous content of those fields, and stamps the samples'
    ``last_modified_at`` as FiftyOne's own writes do.

    Strings are grouped and written per distinct value; floats per sample,
    skipping NaN. Returns the names written.
    """
    coll = dataset._sample_collection
    staged = {}
    try:
        for i, (name, values) in enumerate(fields.items()):
            target = _TMP_PREFIX + name if dataset.has_sample_field(name) else name
            staged[name] = target
            dataset.add_sample_field(target, _field_type(values))
            _write(coll, target, ids, values)
            if progress:
                progress((i + 1) / len(fields))
        for name, target in staged.items():
            if target != name:
                dataset.delete_sample_field(name)
                dataset.rename_sample_field(target, name)
    except BaseException:
        delete_fields(dataset, [t for t in staged.values()])
        raise
    dataset._reload_docs()
    return list(staged)


def fill_fields(dataset, ids, fields):
    """Writes ``fields`` on ``ids`` only, keeping every other sample's values;
    on failure the values written are removed again."""
    coll = dataset._sample_collection
    try:
        for name, values in fields.items():
            if not dataset.has_sample_field(name):
                dataset.add_sample_field(name, _field_type(values))
            _write(coll, name, ids, values)
    except BaseException:
        for start in range(0, len(ids), _IDS_PER_UPDATE):
            coll.update_many({"_id": {"$in": list(ids[start:start + _IDS_PER_UPDATE])}},
                             {"$unset": {name: "" for name in fields}})
        raise
    dataset._reload_docs()


def _field_type(values):
    import fiftyone as fo

    return fo.StringField if values.dtype.kind in "US" else fo.FloatField


def _write(coll, field, ids, values):
    from pymongo import UpdateMany, UpdateOne

    now = datetime.now(timezone.utc)
    if values.dtype.kind in "US":
        ops = _grouped_updates(ids, values, field, now, UpdateMany)
    else:
        ops = [
            UpdateOne({"_id": _id}, {"$set": {field: float(v), "last_modified_at": now}})
            for _id, v in zip(ids, values) if not np.isnan(v)
        ]
    _bulk_write(coll, ops)


def _bulk_write(coll, ops):
    """Sends ``ops`` as a few concurrent bulk writes: the database applies
    each one on a single core, and rewriting documents is what costs."""
    from concurrent.futures import ThreadPoolExecutor

    size = min(_OPS_PER_BULK, max(1, -(-len(ops) // _WRITERS)))
    batches = [ops[i:i + size] for i in range(0, len(ops), size)]
    with ThreadPoolExecutor(_WRITERS) as pool:
        list(pool.map(lambda batch: coll.bulk_write(batch, ordered=False), batches))


def _grouped_updates(ids, values, field, now, UpdateMany):
    ids = np.asarray(ids, dtype=object)
    distinct, codes = np.unique(values, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(distinct) + 1))
    ops = []
    for value, lo, hi in zip(distinct, bounds[:-1], bounds[1:]):
        for start in range(lo, hi, _IDS_PER_UPDATE):
            chunk = list(ids[order[start:min(hi, start + _IDS_PER_UPDATE)]])
            ops.append(UpdateMany({"_id": {"$in": chunk}},
                                  {"$set": {field: str(value), "last_modified_at": now}}))
    return ops


def delete_fields(dataset, names):
    """Deletes whichever of ``names`` exist on ``dataset``."""
    existing = [n for n in names if n and dataset.has_sample_field(n)]
    if existing:
        dataset.delete_sample_fields(existing)


def write_per_cluster(dataset, cluster_field, field, values):
    """Sets string ``field`` to ``values[cluster id]`` on each cluster's
    samples: one ``update_many`` per cluster, matched on ``cluster_field``,
    which is only read."""
    import fiftyone as fo
    from pymongo import UpdateMany

    if not dataset.has_sample_field(field):
        dataset.add_sample_field(field, fo.StringField)
    now = datetime.now(timezone.utc)
    ops = [UpdateMany({cluster_field: cid}, {"$set": {field: value, "last_modified_at": now}})
           for cid, value in values.items()]
    if ops:
        dataset._sample_collection.bulk_write(ops, ordered=False)
    dataset._reload_docs()
