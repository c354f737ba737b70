"""Benchmark data: L2-normalised Gaussian blobs with known truth, as a
persistent FiftyOne dataset built once and reused.

Samples are inserted as raw documents in bulk (a million through
``add_samples`` would take ~10 minutes); the result is an ordinary dataset
with a ``VectorField`` ``embedding`` and a ``truth`` string field.
"""

import datetime

import numpy as np

CHUNK = 20_000


def blobs(n, d=512, k=50, seed=0, cluster_std=1.0):
    """``(X float32 unit rows, y)``: k Gaussian blobs, generated in chunks so
    a million 512-d rows never exist as float64."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)).astype(np.float32)
    y = rng.integers(k, size=n)
    X = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        block = centres[y[start:stop]] + cluster_std * rng.standard_normal(
            (stop - start, d), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        X[start:stop] = block
    return X, y


def dataset(n, d=512, k=50, seed=0, persistent=True):
    """The benchmark dataset for these parameters, built if needed; with
    ``persistent=False`` a new temporary one (for the tests)."""
    import fiftyone as fo
    import fiftyone.core.utils as fou
    from bson import ObjectId

    name = f"clusterlab-bench-{n}x{d}-k{k}-s{seed}" if persistent else None
    if persistent and fo.dataset_exists(name):
        ds = fo.load_dataset(name)
        if len(ds) == n and ds.has_field("embedding") and ds.has_field("truth"):
            return ds
        ds.delete()
    X, y = blobs(n, d, k, seed)
    ds = fo.Dataset(name, persistent=persistent)
    ds.add_sample_field("embedding", fo.VectorField)
    ds.add_sample_field("truth", fo.StringField)
    coll = ds._sample_collection
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    rng = np.random.default_rng(seed)
    for start in range(0, n, CHUNK):
        coll.insert_many([
            dict(_id=ObjectId(), filepath=f"/bench/{i}.png", tags=[],
                 _media_type="image", _rand=float(rng.random()),
                 embedding=fou.serialize_numpy_array(X[i]), truth=str(y[i]),
                 _dataset_id=ds._doc.id, created_at=now, last_modified_at=now)
            for i in range(start, min(n, start + CHUNK))
        ], ordered=False)
    return ds
