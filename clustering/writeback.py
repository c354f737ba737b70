"""Labels out: a run's per-sample fields written to the dataset.

These are the field steps a committed transaction applies (see
``transactions``); each is idempotent, so a crash in the middle is finished
by running it again. A field is on the samples, or on the objects of a
label field (a patch run's ``ground_truth.detections.x``): then the ids are
the objects' ids and each update reaches them through an array filter.
Strings are written with one ``update_many`` per distinct value in each
window of stored documents, floats per unit, as concurrent bulk writes;
where FiftyOne's internals are unavailable, the same values go through
``set_values()`` (or ``set_label_values()``). Written samples get
``last_modified_at`` as FiftyOne's own writes stamp them. Each field the
plugin creates is marked in its ``info`` with the run that owns it, so
fields left behind by runs deleted outside the plugin can be found again.
"""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import numpy as np

from . import internals

_IDS_PER_UPDATE = 50_000
_OPS_PER_BULK = 5_000
# Ids per window of a grouped write (see _grouped_updates), and the
# documents one bulk write of grouped updates rewrites.
_WINDOW = 5_000
_DOCS_PER_BULK = 2_000
# Concurrent bulk writes. With writes grouped by window, a run's labels on a
# 2-core machine took 14-15 s per million with 2 or 4, 17 with 8, 19-20 with
# 16 and 20.5 with 1 (100k: 1.4-1.6 s with 2 or 4, 1.8 with 16): more writers
# only contend for the pages being rewritten.
_WRITERS = 4
OWNER_INFO = "clusterlab_run"
# What each kind of field the plugin writes holds: FiftyOne's field type, Python's.
_KINDS = dict(str=("StringField", str), float=("FloatField", float), bool=("BooleanField", bool))


class _Place:
    """Where a field's values are stored: on the samples, matched by their
    id, or on the objects of a label field, matched by theirs (through the
    array filter ``unit`` when the objects are a list)."""

    def __init__(self, dataset, field):
        found = internals.label_of(dataset, field)
        self.root, self.is_list = found[1:] if found else (None, False)
        self.id = f"{self.root}._id" if self.root else "_id"

    def each(self, field):
        """``field`` as an update sets it on the units its filter matches."""
        return f"{self.root}.$[unit]{field[len(self.root):]}" if self.is_list else field

    def every(self, field):
        """``field`` as an update sets it on every unit of a document."""
        return f"{self.root}.$[]{field[len(self.root):]}" if self.is_list else field

    def filters(self, conditions):
        """The array filters matching the units on ``{stored path: condition}``."""
        if not self.is_list:
            return None
        return [{"unit" + path[len(self.root):]: c for path, c in conditions.items()}]

    def update(self, ids, change, where=None):
        """An ``UpdateMany`` of ``change`` for the units ``ids`` (those of
        them matching ``where``, ``{stored path: condition}``)."""
        from pymongo import UpdateMany

        within, where = {"$in": ids}, where or {}
        # a document of objects is matched if any of them is; the filter picks them
        matched = {self.id: within, **({} if self.is_list else where)}
        return UpdateMany(matched, change, array_filters=self.filters({self.id: within, **where}))


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
    ``replace``, every other sample's value of it is removed. Returns
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
    stamp, place = _stamp(dataset), _Place(dataset, field)
    fields = [field, *derived]
    # a sample run's written samples carry this write's stamp (or a later
    # one, if edited meanwhile): older ones' values are removed after, so no
    # document is rewritten twice
    clean_after = replace and stamp and not place.root
    if replace and not clean_after:
        _unset_all(coll, place, fields, stamp)
    if kind == "float":
        from pymongo import UpdateOne

        ops = [UpdateOne({place.id: _id}, {"$set": {place.each(field): float(v), **stamp}},
                         array_filters=place.filters({place.id: _id}))
               for _id, v in zip(ids, values) if not np.isnan(v)]
        size = None
    else:
        ops = _grouped_updates(place, ids, values, field, stamp, _KINDS[kind][1], derived)
        # writers take neighbouring slices of the windows, moving through the collection together
        size = max(1, _DOCS_PER_BULK * len(ops) // max(1, len(ids)))
    written = _bulk_write(coll, ops, size)
    if clean_after:
        _unset_all(coll, place, fields, stamp, {"last_modified_at": {"$lt": stamp[
            "last_modified_at"]}})
    internals.refresh_samples(dataset)
    return _count_units(coll, place, ids) if place.root else written


def _unset_all(coll, place, fields, stamp, where=None):
    """Removes ``fields`` from every unit holding one (of the documents
    matching ``where``)."""
    coll.update_many({"$or": [{f: {"$exists": True}} for f in fields], **(where or {})},
                     {"$unset": {place.every(f): "" for f in fields}, **_touch(stamp)})


def write_per_cluster(dataset, field, cluster_field, values, owner):
    """Sets string ``field`` to ``values[cluster id]`` on each cluster's
    samples (found by reading ``cluster_field`` once, then written as
    ``write_field`` writes), removing it from every other sample. Returns
    how many samples were written. (One update per cluster matched on the
    unindexed field scanned the collection k times: 5-7 s for 50 clusters
    of 100k samples.)"""
    ids, clusters = _values_public(dataset, cluster_field, "_id")
    named = [(i, values[c]) for i, c in zip(ids, clusters) if c in values]
    return write_field(dataset, field, "str", [i for i, _ in named], [v for _, v in named],
                       replace=True, owner=owner)


def _write_public(dataset, field, kind, ids, values, replace):
    """``write_field`` through FiftyOne's public API."""
    if replace:
        _clear_public(dataset, field)
    cast = _KINDS[kind][1]
    return _set_public(dataset, field, {
        str(i): None if kind == "float" and np.isnan(v) else cast(v)
        for i, v in zip(ids, values)})


def _values_public(dataset, field, id_field="id"):
    """``(ids, values)`` of ``field`` for every unit (sample or object)
    holding it: ids as strings, or with ``id_field="_id"`` as ObjectIds."""
    found = internals.label_of(dataset, field)
    ids, values = dataset.values([f"{found[1]}.{id_field}" if found else id_field, field],
                                 unwind=bool(found))
    held = [(i, v) for i, v in zip(ids, values) if v is not None]
    return [i for i, _ in held], [v for _, v in held]


def _clear_public(dataset, field):
    """Removes ``field``'s value from every unit, through the public API."""
    if internals.label_of(dataset, field):
        _set_public(dataset, field, dict.fromkeys(_values_public(dataset, field)[0]))
    else:
        dataset.clear_sample_field(field)


def _set_public(dataset, field, by_id):
    """Sets ``field`` of the units of ids ``by_id`` to their values; returns
    how many of them still exist."""
    found = internals.label_of(dataset, field)
    if found:
        existing = set(dataset.values(f"{found[1]}.id", unwind=True))
        present = {i: v for i, v in by_id.items() if i in existing}
        dataset.set_label_values(field, present)
        return len(present)
    view = dataset.select(list(by_id))
    present = view.values("id")
    view.set_values(field, [by_id[i] for i in present])
    return len(present)


def unset_values(dataset, field, ids):
    """Removes ``field``'s value from the samples ``ids``, if it has one."""
    internals.refresh_schema(dataset)
    if not ids or not dataset.has_sample_field(field):
        return
    coll = internals.samples_of(dataset)
    if coll is None:
        _set_public(dataset, field, dict.fromkeys(map(str, ids)))
        return
    stamp, place = _stamp(dataset), _Place(dataset, field)
    _bulk_write(coll, [place.update(chunk, {"$unset": {place.each(field): ""}, **_touch(stamp)})
                       for chunk in _chunks(ids)])
    internals.refresh_samples(dataset)


def edit_tags(dataset, ids, tag, remove=False, replace=False, tags="tags"):
    """Adds tag ``tag`` to the units ``ids`` (samples, or with ``tags`` the
    tags path of a label field's objects), or with ``remove`` takes it off
    them; ``replace`` first takes it off every unit. Returns how many of
    ``ids`` changed."""
    coll = internals.samples_of(dataset)
    if coll is None:
        return _edit_tags_public(dataset, ids, tag, remove, replace, tags)
    stamp, place = _stamp(dataset), _Place(dataset, tags)
    if replace:
        coll.update_many({tags: tag}, {"$pull": {place.every(tags): tag}, **_touch(stamp)})
    changed = _count_units(coll, place, ids, {tags: tag if remove else {"$ne": tag}})
    if remove:
        which, change = {tags: tag}, {"$pull": {place.each(tags): tag}}
    else:  # $addToSet cannot add to a null list
        _bulk_write(coll, [place.update(chunk, {"$set": {place.each(tags): []}}, {tags: None})
                           for chunk in _chunks(ids)])
        which, change = {tags: {"$ne": tag}}, {"$addToSet": {place.each(tags): tag}}
    _bulk_write(coll, [place.update(chunk, {**change, **_touch(stamp)}, which)
                       for chunk in _chunks(ids)])
    internals.refresh_samples(dataset)
    return changed


def _count_units(coll, place, ids, which=None):
    """How many of the units ``ids`` exist (and match ``which``, ``{stored
    path: condition}``)."""
    which = which or {}
    if not place.root:
        return sum(coll.count_documents({"_id": {"$in": chunk}, **which})
                   for chunk in _chunks(ids))
    unwind = [{"$unwind": "$" + place.root}] if place.is_list else []
    return sum(next(coll.aggregate([{"$match": {place.id: {"$in": chunk}}}, *unwind,
                                    {"$match": {place.id: {"$in": chunk}, **which}},
                                    {"$count": "n"}]), {}).get("n", 0)
               for chunk in _chunks(ids))


def _edit_tags_public(dataset, ids, tag, remove, replace, tags):
    """``edit_tags`` through FiftyOne's public API."""
    found = internals.label_of(dataset, tags)
    if found:
        fields = found[0]
        if replace:
            dataset.untag_labels(tag, label_fields=fields)
        view = dataset.select_labels(ids=[str(i) for i in ids], fields=fields)
        before = view.count_label_tags(label_fields=fields).get(tag, 0)
        (view.untag_labels if remove else view.tag_labels)(tag, label_fields=fields)
        after = view.count_label_tags(label_fields=fields).get(tag, 0)
        return abs(after - before)
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


def _bulk_write(coll, ops, size=None):
    """Sends ``ops`` as concurrent bulk writes of ``size`` ops, taken in
    order (by default at least _WRITERS of them, of at most _OPS_PER_BULK):
    the database applies each one on a single core, and rewriting documents
    is what costs. Returns the number of documents matched."""
    if not ops:
        return 0
    size = size or min(_OPS_PER_BULK, max(1, -(-len(ops) // _WRITERS)))
    batches = [ops[i:i + size] for i in range(0, len(ops), size)]
    with ThreadPoolExecutor(_WRITERS) as pool:
        results = pool.map(lambda batch: coll.bulk_write(batch, ordered=False), batches)
        return sum(r.matched_count for r in results)


def _grouped_updates(place, ids, values, field, stamp, cast, derived):
    """Updates setting ``field``, and the ``derived`` fields that follow from
    its value: the ids in the order their documents are stored, and for each
    window of _WINDOW of them one ``update_many`` per distinct value. Each
    page of the collection is then rewritten within one window's updates,
    not once per value as one update per value did: at a million samples
    that rewrote pages 3x over (6-13 GB written from the database's cache
    for a 2.3 GB collection) and took 26-37 s instead of 17-23."""
    if not len(ids):
        return []
    stored = np.argsort(np.array([i.binary for i in ids], dtype="S12"), kind="stable")
    distinct, codes = np.unique(np.asarray(values)[stored], return_inverse=True)
    # one key per (window, value), in that order
    key = np.arange(len(stored)) // _WINDOW * len(distinct) + codes
    order = np.argsort(key, kind="stable")
    ids, key = np.asarray(ids, dtype=object)[stored[order]], key[order]
    runs = np.flatnonzero(np.diff(key)) + 1
    ops = []
    for lo, hi in zip([0, *runs], [*runs, len(ids)]):
        value = distinct[key[lo] % len(distinct)]
        also = {place.each(other): of_value[value] for other, of_value in derived.items()}
        ops.append(place.update(list(ids[lo:hi]), {
            "$set": {place.each(field): cast(value), **also, **stamp}}))
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
