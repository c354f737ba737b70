"""Labels out: a run's per-sample fields written to the dataset.

These are the field steps a committed transaction applies (see
``transactions``); each is idempotent, so a crash in the middle is finished
by running it again. Strings are written with one ``update_many`` per
distinct value (k writes, not N), floats per sample, as a few concurrent
bulk writes; where FiftyOne's internals are unavailable, the same values go
through ``set_values()``. Written samples get ``last_modified_at`` as
FiftyOne's own writes stamp them. Each field the plugin creates is marked
in its ``info`` with the run that owns it, so fields left behind by runs
deleted outside the plugin can be found again.
"""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import numpy as np

from . import internals

_IDS_PER_UPDATE = 50_000
_OPS_PER_BULK = 5_000
_WRITERS = 4  # as fast as 2 on a 2-core machine, faster where the database has more
OWNER_INFO = "clusterlab_run"
# What each kind of field the plugin writes holds: FiftyOne's field type, Python's.
_KINDS = dict(str=("StringField", str), float=("FloatField", float), bool=("BooleanField", bool))


def ensure_field(dataset, field, kind, owner):
    """Adds field ``field`` of ``kind`` ("str", "float" or "bool") marked as
    owned by run ``owner``; an existing field is marked anew."""
    import fiftyone as fo

    ftype = getattr(fo, _KINDS[kind][0])
    internals.refresh_schema(dataset)
    existing = dataset.get_field(field)
    if existing is not None and not isinstance(existing, ftype):
        dataset.delete_sample_field(field)
        existing = None
    if existing is None:
        dataset.add_sample_field(field, ftype, info={OWNER_INFO: owner})
    elif (existing.info or {}).get(OWNER_INFO) != owner:
        existing.info = dict(existing.info or {}, **{OWNER_INFO: owner})
        existing.save()


def owner_of(dataset, field):
    """The run key recorded in ``field``'s info, or None."""
    found = dataset.get_field(field)
    return ((found.info or {}) if found is not None else {}).get(OWNER_INFO)


def write_field(dataset, field, kind, ids, values, replace, owner, derived=None):
    """Sets ``field`` to ``values`` on the samples ``ids``; with
    ``replace``, every other sample's value of it is removed first. Returns
    how many samples were written (fewer than ``ids`` when some were
    deleted meanwhile). ``derived`` maps other text fields to their value
    for each value of this one (a cluster's group): they are set in the same
    updates, so each document is rewritten once, not once per field."""
    derived = derived or {}
    ensure_field(dataset, field, kind, owner)
    for other in derived:
        ensure_field(dataset, other, "str", owner)
    coll = internals.samples_of(dataset)
    if coll is None:
        for other, of_value in derived.items():
            _write_public(dataset, other, "str", ids, [of_value[v] for v in values], replace)
        return _write_public(dataset, field, kind, ids, values, replace)
    stamp = _stamp(dataset)
    if replace:
        fields = [field, *derived]
        coll.update_many({"$or": [{f: {"$exists": True}} for f in fields]},
                         {"$unset": dict.fromkeys(fields, ""), **_touch(stamp)})
    if kind == "float":
        from pymongo import UpdateOne

        ops = [UpdateOne({"_id": _id}, {"$set": {field: float(v), **stamp}})
               for _id, v in zip(ids, values) if not np.isnan(v)]
    else:
        ops = _grouped_updates(ids, values, field, stamp, _KINDS[kind][1], derived)
    written = _bulk_write(coll, ops)
    internals.refresh_samples(dataset)
    return written


def write_per_cluster(dataset, field, cluster_field, values, owner):
    """Sets string ``field`` to ``values[cluster id]`` on each cluster's
    samples (matched on ``cluster_field``, which is only read), removing it
    from every other sample. Returns how many samples were written."""
    ensure_field(dataset, field, "str", owner)
    coll = internals.samples_of(dataset)
    if coll is None:
        from fiftyone import ViewField as F

        dataset.clear_sample_field(field)
        for cid, value in values.items():
            view = dataset.match(F(cluster_field) == cid)
            view.set_values(field, [value] * len(view))
        return sum(dataset.count_values(field).get(v, 0) for v in set(values.values()))
    from pymongo import UpdateMany

    stamp = _stamp(dataset)
    coll.update_many({field: {"$exists": True}},
                     {"$unset": {field: ""}, **_touch(stamp)})
    written = _bulk_write(coll, [
        UpdateMany({cluster_field: cid}, {"$set": {field: value, **stamp}})
        for cid, value in values.items()])
    internals.refresh_samples(dataset)
    return written


def _write_public(dataset, field, kind, ids, values, replace):
    """``write_field`` through FiftyOne's public API."""
    if replace:
        dataset.clear_sample_field(field)
    by_id = {str(i): v for i, v in zip(ids, values)}
    view = dataset.select(list(by_id))
    present = view.values("id")
    cast = _KINDS[kind][1]
    new = [None if kind == "float" and np.isnan(by_id[i]) else cast(by_id[i])
           for i in present]
    view.set_values(field, new)
    return len(present)


def unset_values(dataset, field, ids):
    """Removes ``field``'s value from the samples ``ids``, if it has one."""
    internals.refresh_schema(dataset)
    if not ids or not dataset.has_sample_field(field):
        return
    coll = internals.samples_of(dataset)
    if coll is None:
        view = dataset.select([str(i) for i in ids]).exists(field)
        view.set_values(field, [None] * len(view))
        return
    from pymongo import UpdateMany

    stamp = _stamp(dataset)
    _bulk_write(coll, [
        UpdateMany({"_id": {"$in": chunk}, field: {"$exists": True}},
                   {"$unset": {field: ""}, **_touch(stamp)})
        for chunk in _chunks(ids)])
    internals.refresh_samples(dataset)


def edit_tags(dataset, ids, tag, remove=False, replace=False):
    """Adds sample tag ``tag`` to the samples ``ids``, or with ``remove``
    takes it off them; ``replace`` first takes it off every sample. Returns
    how many of ``ids`` changed."""
    coll = internals.samples_of(dataset)
    if coll is None:
        return _edit_tags_public(dataset, ids, tag, remove, replace)
    from pymongo import UpdateMany

    stamp = _stamp(dataset)
    if replace:
        coll.update_many({"tags": tag}, {"$pull": {"tags": tag}, **_touch(stamp)})
    if remove:
        which, change = {"tags": tag}, {"$pull": {"tags": tag}}
    else:  # $addToSet cannot add to a null list
        _bulk_write(coll, [UpdateMany({"_id": {"$in": chunk}, "tags": None},
                                      {"$set": {"tags": []}}) for chunk in _chunks(ids)])
        which, change = {"tags": {"$ne": tag}}, {"$addToSet": {"tags": tag}}
    changed = _bulk_write(coll, [
        UpdateMany({"_id": {"$in": chunk}, **which}, {**change, **_touch(stamp)})
        for chunk in _chunks(ids)])
    internals.refresh_samples(dataset)
    return changed


def _edit_tags_public(dataset, ids, tag, remove, replace):
    """``edit_tags`` through FiftyOne's public API."""
    if replace:
        dataset.untag_samples(tag)
    changing = dataset.select([str(i) for i in ids]).match_tags(tag, bool=remove)
    changed = changing.count()
    if remove:
        changing.untag_samples(tag)
    else:
        changing.tag_samples(tag)
    return changed


def _stamp(dataset):
    """``last_modified_at`` as FiftyOne's own writes set it, where the dataset has it."""
    now = datetime.now(timezone.utc)
    return {"last_modified_at": now} if dataset.has_sample_field("last_modified_at") else {}


def _touch(stamp):
    """The ``$set`` of ``stamp`` for an update (MongoDB refuses an empty one)."""
    return {"$set": stamp} if stamp else {}


def _chunks(ids):
    """``ids`` in lists short enough for one ``$in``."""
    return [list(ids[i:i + _IDS_PER_UPDATE]) for i in range(0, len(ids), _IDS_PER_UPDATE)]


def _bulk_write(coll, ops):
    """Sends ``ops`` as a few concurrent bulk writes (the database applies
    each one on a single core, and rewriting documents is what costs);
    returns the number of documents matched."""
    if not ops:
        return 0
    size = min(_OPS_PER_BULK, max(1, -(-len(ops) // _WRITERS)))
    batches = [ops[i:i + size] for i in range(0, len(ops), size)]
    with ThreadPoolExecutor(_WRITERS) as pool:
        results = pool.map(lambda batch: coll.bulk_write(batch, ordered=False), batches)
        return sum(r.matched_count for r in results)


def _grouped_updates(ids, values, field, stamp, cast, derived):
    """One ``update_many`` per distinct value (per ``$in`` chunk), setting
    ``field`` and the ``derived`` fields that follow from the value."""
    from pymongo import UpdateMany

    ids = np.asarray(ids, dtype=object)
    distinct, codes = np.unique(values, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(distinct) + 1))
    ops = []
    for value, lo, hi in zip(distinct, bounds[:-1], bounds[1:]):
        for start in range(lo, hi, _IDS_PER_UPDATE):
            chunk = list(ids[order[start:min(hi, start + _IDS_PER_UPDATE)]])
            also = {other: of_value[value] for other, of_value in derived.items()}
            ops.append(UpdateMany({"_id": {"$in": chunk}},
                                  {"$set": {field: cast(value), **also, **stamp}}))
    return ops


def delete_fields(dataset, names):
    """Deletes whichever of ``names`` exist on ``dataset``."""
    internals.refresh_schema(dataset)
    existing = [n for n in names if n and dataset.has_sample_field(n)]
    if existing:
        dataset.delete_sample_fields(existing)


def rename_field(dataset, old, new, owner):
    """Renames field ``old`` to ``new`` (done already if only ``new``
    exists; never over an existing ``new``) and marks it as owned by run
    ``owner``."""
    internals.refresh_schema(dataset)
    if dataset.has_sample_field(old) and not dataset.has_sample_field(new):
        dataset.rename_sample_field(old, new)
        internals.refresh_schema(dataset)
    field = dataset.get_field(new)
    if field is not None and (field.info or {}).get(OWNER_INFO) != owner:
        field.info = dict(field.info or {}, **{OWNER_INFO: owner})
        field.save()
