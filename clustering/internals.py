"""Every use of FiftyOne's private API, in one place.

Each function feature-detects what it needs and falls back to FiftyOne's
public API where one exists, so a FiftyOne release that moves an internal
costs speed, not correctness. ``CLUSTERLAB_PUBLIC_API=1`` in the environment
forces the public paths (the tests run both and compare).
"""

import os


def public_only():
    """Whether to use only FiftyOne's public API (read at each call)."""
    return os.environ.get("CLUSTERLAB_PUBLIC_API") == "1"


def root_dataset(collection):
    """The dataset behind a dataset or view."""
    import fiftyone as fo

    if isinstance(collection, fo.Dataset):
        return collection
    return getattr(collection, "_root_dataset", None) or collection._dataset


def dataset_id(dataset):
    """The dataset's database id, stable across renames."""
    return str(dataset._doc.id)


def view_kind(collection):
    """``"patches"``, ``"frames"``, ``"clips"`` or None for a view whose
    rows are samples."""
    for kind in ("patches", "frames", "clips"):
        if getattr(collection, f"_is_{kind}", False):
            return kind
    return None


def label_root(collection, label_field):
    """``(path, is_list)``: where the objects of ``label_field`` are stored
    (``ground_truth.detections`` for Detections, the field itself for one
    Detection), and whether that path holds a list."""
    found = getattr(collection, "_get_label_field_root", None)
    if found is not None and not public_only():
        return found(label_field)
    list_field = getattr(collection.get_field(label_field).document_type,
                         "_LABEL_LIST_FIELD", None)
    return (f"{label_field}.{list_field}", True) if list_field else (label_field, False)


def label_of(dataset, path):
    """``(label field, objects path, is_list)`` when ``path`` names an
    attribute of the objects of a label field (``ground_truth.detections.x``),
    else None: the path is a sample field."""
    import fiftyone as fo

    parts = path.split(".")
    for i in range(1, len(parts)):
        field = dataset.get_field(".".join(parts[:i]))
        if isinstance(field, fo.EmbeddedDocumentField) and issubclass(
                field.document_type, fo.Label):
            label_field = ".".join(parts[:i])
            root, is_list = label_root(dataset, label_field)
            return (label_field, root, is_list) if path.startswith(root + ".") else None
    return None


def view_stages(collection):
    """The view's stages, serialized as FiftyOne stores a run's view."""
    import fiftyone as fo

    if isinstance(collection, fo.Dataset):
        return []
    return collection._serialize(include_uuids=False)


def build_view(dataset, stages):
    """The view ``stages`` (from :func:`view_stages`) describe."""
    import fiftyone as fo

    return fo.DatasetView._build(dataset, stages) if stages else dataset.view()


def describe_view(collection):
    """The target as readable stages (each cut short: selections can be long)."""
    stages = getattr(collection, "_stages", None) or []
    if not stages:
        return "dataset"
    text = []
    for stage in stages:
        s = repr(stage)
        text.append(s if len(s) <= 200 else s[:197] + "...")
    return text


def database():
    """FiftyOne's MongoDB database (pymongo), where the plugin keeps its
    transaction journal beside the datasets."""
    from fiftyone.core.odm import get_db_conn

    return get_db_conn()


def samples_of(dataset):
    """The pymongo collection holding ``dataset``'s samples, or None when
    only the public API may be used."""
    if public_only():
        return None
    coll = getattr(dataset, "_sample_collection", None)
    return coll if hasattr(coll, "bulk_write") else None


def count_stored(dataset):
    """The exact number of documents in ``dataset``'s samples collection,
    counted on its ``_id`` index (``len()`` is MongoDB's estimate, which a
    crash can leave off); None when only the public API may be used."""
    coll = samples_of(dataset)
    return None if coll is None else coll.count_documents({}, hint="_id_")


def raw_batches(collection, path, batch_size):
    """Raw BSON batches of ``{_id, path}`` for the target's samples, or None
    when the private aggregation helpers are missing (use ``values()``)."""
    if public_only():
        return None
    # the documents of a patches view live in its own dataset, not the root's
    coll = samples_of(getattr(collection, "_dataset", collection))
    if coll is None or not hasattr(coll, "aggregate_raw_batches") or not all(
            hasattr(collection, a) for a in ("_pipeline", "_handle_db_field")):
        return None
    db_path = collection._handle_db_field(path)
    pipeline = collection._pipeline(pipeline=[{"$project": {"_id": 1, db_path: 1}}])
    return db_path, coll.aggregate_raw_batches(
        pipeline, batchSize=batch_size, allowDiskUse=True)


def refresh_schema(dataset):
    """Reloads ``dataset``'s document (schema, runs) from the database, so
    a change saved next does not overwrite what another process saved."""
    reload_doc = getattr(dataset, "_reload", None)
    if reload_doc is not None and not public_only():
        reload_doc(hard=True)
    else:
        dataset.reload()


def refresh_samples(dataset):
    """Makes in-memory samples show values written to the database directly."""
    reload_docs = getattr(dataset, "_reload_docs", None)
    if reload_docs is not None and not public_only():
        reload_docs()
    else:
        dataset.reload()


def from_app(ctx):
    """Whether the App sent this request: its body names the operator
    (``operator_uri``), which ``foo.execute_operator`` from Python never
    puts among the request's parameters."""
    params = getattr(ctx, "request_params", None) or {}
    return "operator_uri" in params


def scheduling_enabled():
    """Whether the App offers to schedule delegated runs for
    ``fiftyone delegated launch`` (``FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS``)."""
    import fiftyone as fo

    return bool(getattr(fo.config, "allow_legacy_orchestrators", True))


def queue_operation(uri, collection, params):
    """Queues operator ``uri`` on ``collection`` for ``fiftyone delegated
    launch`` through FiftyOne's operator machinery; returns the queued
    operation. Works the same where an event loop runs (Jupyter), where
    ``foo.execute_operator`` would hand back an unfinished task."""
    import asyncio
    import threading

    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import execute_or_delegate_operator

    request = dict(dataset_name=root_dataset(collection).name,
                   view=collection.view()._serialize(), params=params,
                   request_delegation=True)
    outcome = {}

    def queue():
        try:
            outcome["result"] = asyncio.run(execute_or_delegate_operator(uri, request))
        except BaseException as e:  # handed to the caller's thread
            outcome["error"] = e

    worker = threading.Thread(target=queue, name="clusterlab-queue")
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    result = outcome["result"]
    result.raise_exceptions()
    if not result.delegated:
        raise RuntimeError(f"FiftyOne ran {uri} instead of queueing it")
    op_id = result.result["id"]
    return DelegatedOperationService().get(op_id)


def operation_id(ctx):
    """The id of the delegated operation ``ctx`` executes, or None."""
    op_id = getattr(ctx, "_delegated_operation_id", None) if ctx.delegated else None
    return str(op_id) if op_id else None


def fail_operation(op_id, message):
    """Marks delegated operation ``op_id`` failed with ``message`` if it is
    still recorded as running (its worker was killed)."""
    from bson import ObjectId
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionResult

    service = DelegatedOperationService()
    try:
        op = service.get(ObjectId(op_id))
    except Exception:
        return
    if op is not None and op.run_state == "running":
        service.set_failed(op.id, result=ExecutionResult(error=message,
                                                         error_message=message))
