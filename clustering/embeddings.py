"""Embeddings in: which fields hold vectors, and reading them fast.

The reader streams raw BSON batches of the target view straight into one
preallocated float32 matrix: no per-sample Python lists of arrays and no
float64 copy, which is what makes ``values()`` slow and memory-hungry.
"""

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import collector, cores, internals
from .params import InputError, Param

_BATCH = 2000


@dataclass
class Embeddings:
    """Vectors of the samples that have one, with their ids."""

    ids: list
    X: np.ndarray
    num_skipped: int


def vector_fields(collection):
    """Paths of sample fields that hold vectors, sorted by name."""
    import fiftyone as fo

    paths = []
    for path, field in collection.get_field_schema(flat=True).items():
        if path.startswith("_") or path == "id":
            continue
        if isinstance(field, (fo.VectorField, fo.ArrayField)):
            paths.append(path)
        elif isinstance(field, fo.ListField) and isinstance(
            field.field, (fo.FloatField, fo.IntField)
        ):
            paths.append(path)
    return sorted(p for p in paths if not _inside_list_or_label(collection, p))


def _inside_list_or_label(collection, path):
    """Vectors inside lists, or inside labels (e.g. logits), are not embeddings."""
    import fiftyone as fo

    parts = path.split(".")
    for i in range(1, len(parts)):
        field = collection.get_field(".".join(parts[:i]))
        if isinstance(field, fo.ListField) or (
            isinstance(field, fo.EmbeddedDocumentField)
            and issubclass(field.document_type, fo.Label)
        ):
            return True
    return False


EMBEDDINGS = Param("embeddings", str, None,
                   "The sample field holding the vectors to cluster (with a patches "
                   "field: the attribute of each object holding its vector)",
                   label="Embeddings field")


def check_field(collection, path, param=EMBEDDINGS):
    """Raises ParameterError unless ``path`` is a vector field of ``collection``."""
    choices = ", ".join(vector_fields(collection)) or "none found"
    if not path:
        raise param.error("is required: name the sample field that holds the "
                          "embedding vectors.")
    if isinstance(path, str) and _inside_list_or_label(collection, path):
        raise param.error(
            f"names '{path}', which holds vectors of labels (e.g. one per "
            "detected object), not one vector per sample. To cluster the objects, "
            "set 'Patches field' (patches_field) to their label field and give "
            "the attribute alone (e.g. 'embedding'); to cluster the samples, "
            f"choose a sample-level vector field: {choices}.")
    if not isinstance(path, str) or collection.get_field(path) is None:
        raise param.error(
            f"names field {path!r}, which does not exist on dataset "
            f"'{internals.root_dataset(collection).name}'. Compute embeddings first (e.g. "
            "dataset.compute_embeddings(model, embeddings_field=...)) or pick "
            f"one of: {choices}.")
    if path in vector_fields(collection):
        return
    kind = type(collection.get_field(path)).__name__
    raise param.error(
        f"names field '{path}', which is a {kind}, not a vector field. Choose a "
        f"VectorField, ArrayField or list-of-floats field: {choices}.")


def count_with_embeddings(collection, path):
    """Number of target samples that have a value in ``path``."""
    return collection.exists(path).count()


def check_found(path, total, found):
    """Raises InputError for a target without samples, or without any
    sample that has a vector in ``path``."""
    if total == 0:
        raise InputError(
            "The target is empty: it has no samples. Run on the whole "
            "dataset or on a view that contains samples."
        )
    if found == 0:
        raise InputError(
            f"No sample in the target has a value in field '{path}' "
            f"({total} samples checked). Compute embeddings for these "
            "samples first, or choose another field."
        )


def read_embeddings(collection, path, progress=None):
    """Reads ``path`` for every sample of ``collection`` into float32.

    The samples read are the run's snapshot: samples added while reading
    are read too, samples deleted are not. Samples without a value are
    skipped and counted. Raises InputError for an empty target, no vectors
    at all, vectors of different lengths and non-finite values, naming the
    field and what to do.
    """
    check_field(collection, path)
    return read_vectors(collection, path, progress)


def read_vectors(collection, path, progress=None):
    """:func:`read_embeddings` without checking that ``path`` is a vector
    field of the samples: the rows of a patches view hold theirs in a label."""
    total = collection.count()
    check_found(path, total, total)
    raw = internals.raw_batches(collection, path, _BATCH)
    with collector.paused():
        if raw is None:
            ids, X, seen = _read_public(collection, path)
        else:
            ids, X, seen = _read_raw(raw, path, total, progress)
    check_found(path, max(total, seen), len(ids))
    bad = _non_finite_rows(X)
    if len(bad):
        raise InputError(
            f"Field '{path}' has NaN or infinite values in {len(bad)} "
            f"sample(s), e.g. {ids[bad[0]]}. Recompute those embeddings or "
            "exclude those samples from the view."
        )
    return Embeddings(ids=ids, X=X, num_skipped=seen - len(ids))


def _non_finite_rows(X, chunk=8192):
    """Indices of the rows of ``X`` holding a NaN or an infinity, checked a
    chunk at a time: no temporary the size of ``X`` (its fresh memory costs
    more than the check)."""
    return np.concatenate([start + np.flatnonzero(~np.isfinite(X[start:start + chunk]).all(
        axis=1)) for start in range(0, len(X), chunk)] or [np.empty(0, dtype=int)])


def _read_raw(raw, path, total, progress):
    """Decodes raw BSON batches into one preallocated matrix, in threads."""
    import bson

    db_path, cursor = raw
    keys = db_path.split(".")
    decode = _Decoder(path)
    workers, ids, X, seen, pending = cores.count(), [], None, 0, deque()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for batch in _fetched_ahead(cursor):
            docs = bson.decode_all(batch)
            seen += len(docs)
            values = [(doc["_id"], v) for doc in docs
                      if (v := _walk(doc, keys)) is not None]
            if values:
                if X is None:
                    X = np.empty((total, len(decode(*values[0][::-1]))), dtype=np.float32)
                if len(ids) + len(values) > len(X):  # samples added while reading
                    while pending:
                        pending.popleft().result()
                    X = _grown(X, len(ids), len(ids) + len(values))
                pending.append(pool.submit(decode.into, X, len(ids), values))
                ids.extend(_id for _id, _ in values)
            while len(pending) > 2 * workers:  # bounded: batches wait in RAM
                pending.popleft().result()
            if progress:
                progress(min(1.0, seen / total))
        for future in pending:
            future.result()
    if X is None:
        return ids, np.empty((0, 0), dtype=np.float32), seen
    return ids, X[: len(ids)], seen


def _grown(X, used, needed):
    bigger = np.empty((max(needed, len(X) + len(X) // 4), X.shape[1]), dtype=X.dtype)
    bigger[:used] = X[:used]
    return bigger


def _read_public(collection, path):
    """The same read through ``values()`` (one aggregation, so the ids and
    vectors are one snapshot); slower, used where internals are missing."""
    all_ids, stored = collection.values(["_id", path])
    decode = _Decoder(path)
    pairs = [(i, v) for i, v in zip(all_ids, stored) if v is not None]
    if not pairs:
        return [], np.empty((0, 0), dtype=np.float32), len(all_ids)
    X = np.empty((len(pairs), len(decode(pairs[0][1], pairs[0][0]))), dtype=np.float32)
    decode.into(X, 0, pairs)
    return [i for i, _ in pairs], X, len(all_ids)


def _fetched_ahead(cursor, depth=4):
    """The cursor's raw batches, fetched by a thread while the caller decodes
    the previous ones: the database works while we do."""
    import queue
    import threading

    batches, stop = queue.Queue(maxsize=depth), threading.Event()

    def fetch():
        try:
            for raw in cursor:
                while not stop.is_set():
                    try:
                        batches.put(raw, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
            batches.put(None)
        except BaseException as e:  # handed to the consumer, which raises it
            batches.put(e)
        finally:
            cursor.close()

    threading.Thread(target=fetch, name="clusterlab-fetch", daemon=True).start()
    try:
        while (item := batches.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _walk(doc, keys):
    for key in keys:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


class _Decoder:
    """Turns a stored value (compressed .npy bytes or a list) into a 1-D row.

    The .npy header is parsed once per distinct header and reused; a batch
    of same-shaped vectors is decompressed and copied into ``X`` as one
    block, in a worker thread, while the next batch is fetched and decoded
    (about 25% faster than one loop on 2 cores). FiftyOne stores vectors
    zlib-compressed; ISA-L inflates them 1.6x faster than zlib (a million
    512-d vectors read in 18.5 s instead of 22). Each thread gathers its
    batches in one block it keeps: a new block per batch is fresh memory
    each time, which on a machine that hands freed memory back to its host
    cost more than the copy (a 100k read faulted in 560 MB, now 220).
    """

    def __init__(self, path):
        import threading

        from isal.isal_zlib import decompress

        self.path = path
        self.header = None
        self.decompress = decompress
        self.blocks = threading.local()

    def into(self, X, start, values):
        """Decodes ``values`` (``(id, value)`` pairs) into rows of ``X``.

        The common case, a batch of same-shaped arrays, is decompressed and
        copied into ``X`` as one block; anything else goes row by row.
        """
        if all(isinstance(v, bytes) for _, v in values):
            raws = [self.decompress(v) for _, v in values]
            prefix, dtype = self.header or self._parse_header(raws[0], values[0][0])
            width = len(prefix) + X.shape[1] * dtype.itemsize
            if all(len(r) == width and r.startswith(prefix) for r in raws):
                block = self._block(len(raws), width)
                block[:] = raws
                rows = block.view(np.uint8).reshape(len(raws), width)
                X[start:start + len(raws)] = rows[:, len(prefix):].view(dtype)
                return
        for i, (sample_id, value) in enumerate(values, start):
            row = self(value, sample_id)
            if len(row) != X.shape[1]:
                raise InputError(
                    f"Field '{self.path}' holds vectors of different lengths: "
                    f"sample {sample_id} has {len(row)} values, others have "
                    f"{X.shape[1]}. All embeddings must come from one model; "
                    "recompute them or cluster a view of samples whose "
                    "vectors match."
                )
            X[i] = row

    def _block(self, count, width):
        """This thread's block of ``count`` raw values of ``width`` bytes."""
        block = getattr(self.blocks, "block", None)
        if block is None or block.dtype.itemsize != width or len(block) < count:
            block = self.blocks.block = np.empty(count, dtype=f"S{width}")
        return block[:count]

    def __call__(self, value, sample_id):
        if isinstance(value, bytes):
            raw = self.decompress(value)
            if self.header is None or not raw.startswith(self.header[0]):
                self.header = self._parse_header(raw, sample_id)
            prefix, dtype = self.header
            return np.frombuffer(raw, dtype=dtype, offset=len(prefix))
        if isinstance(value, np.ndarray) and value.ndim == 1:
            return value
        if isinstance(value, list):
            try:
                return np.asarray(value, dtype=np.float32)
            except (TypeError, ValueError):
                raise InputError(
                    f"Field '{self.path}' of sample {sample_id} holds a list "
                    "that is not all numbers; embeddings must be numeric "
                    "vectors."
                ) from None
        raise InputError(
            f"Field '{self.path}' of sample {sample_id} holds a "
            f"{type(value).__name__}, not a vector."
        )

    def _parse_header(self, raw, sample_id):
        import io

        with io.BytesIO(raw) as f:
            read = {(1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0}
            shape, _, dtype = read[np.lib.format.read_magic(f)](f)
            offset = f.tell()
        if len(shape) != 1 or dtype.kind not in "fiu" or dtype.hasobject:
            raise InputError(
                f"Field '{self.path}' of sample {sample_id} holds an array of "
                f"shape {shape} and type {dtype}; embeddings must be 1-D "
                "numeric vectors."
            )
        return raw[:offset], dtype
