"""Labels out: bulk writes of a run's per-sample fields, all or nothing.

Cluster ids are written with one ``update_many`` per cluster (k writes, not
N). A field that already exists (the run being overwritten) is written under
a temporary name and swapped in only once every write succeeded, so a
failure leaves the old values intact and no new field behind.
"""

import numpy as np

_IDS_PER_UPDATE = 50_000
_OPS_PER_BULK = 5_000
_TMP_PREFIX = "clusterlab_tmp_"


def write_fields(dataset, ids, fields, progress=None):
    """Writes ``fields`` (``{name: (fiftyone field class, values)}``) on ``ids``.

    String values (a numpy array of str) are grouped and written per
    distinct value; float values per sample, skipping NaN. Returns the names
    written.
    """
    from pymongo import UpdateMany, UpdateOne

    coll = dataset._sample_collection
    staged = {}
    try:
        for i, (name, (ftype, values)) in enumerate(fields.items()):
            target = _TMP_PREFIX + name if dataset.has_sample_field(name) else name
            staged[name] = target
            dataset.add_sample_field(target, ftype)
            if ftype.__name__ == "StringField":
                ops = _grouped_updates(ids, values, target, UpdateMany)
            else:
                ops = [
                    UpdateOne({"_id": _id}, {"$set": {target: float(v)}})
                    for _id, v in zip(ids, values) if not np.isnan(v)
                ]
            for start in range(0, len(ops), _OPS_PER_BULK):
                coll.bulk_write(ops[start:start + _OPS_PER_BULK], ordered=False)
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


def _grouped_updates(ids, values, field, UpdateMany):
    ids = np.asarray(ids, dtype=object)
    distinct, codes = np.unique(values, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(distinct) + 1))
    ops = []
    for value, lo, hi in zip(distinct, bounds[:-1], bounds[1:]):
        for start in range(lo, hi, _IDS_PER_UPDATE):
            chunk = list(ids[order[start:min(hi, start + _IDS_PER_UPDATE)]])
            ops.append(UpdateMany({"_id": {"$in": chunk}}, {"$set": {field: str(value)}}))
    return ops


def delete_fields(dataset, names):
    """Deletes whichever of ``names`` exist on ``dataset``."""
    existing = [n for n in names if n and dataset.has_sample_field(n)]
    if existing:
        dataset.delete_sample_fields(existing)
