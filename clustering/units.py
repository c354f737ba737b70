"""What a run clusters: the samples, or the objects of a label field.

With ``patches_field`` (as FiftyOne Brain takes it) a run clusters the
objects of that field (detections, polylines) by a vector attribute each
object carries, and writes its cluster id onto each object. The rest is the
same run: its ids are the objects' ids and its output fields are paths under
the objects (``ground_truth.detections.<run_key>_cluster``). The run is
read back through FiftyOne's patches view, whose rows are the objects, each
with its object's id, so what reads a sample run reads a patch run.
"""

from types import SimpleNamespace

from . import internals
from .params import Param

PATCH_TYPES = ("Detection", "Detections", "Polyline", "Polylines")
PATCHES = Param("patches_field", str, None,
                "A detections or polylines field whose objects are clustered instead of "
                "the samples; 'Embeddings field' then names the attribute of each object "
                "holding its vector", empty="none: cluster the samples",
                label="Patches field")
# Entries of a run's config holding paths (its names' are in ``labels``).
_PATH_ENTRIES = ("cluster_field", "distance_field", "group_field")


def label_fields(collection):
    """Label fields whose objects can be clustered, sorted by name."""
    import fiftyone as fo

    return sorted(name for name, field in collection.get_field_schema().items()
                  if isinstance(field, fo.EmbeddedDocumentField)
                  and field.document_type.__name__ in PATCH_TYPES)


def check_field(collection, name):
    """Raises ParameterError unless ``name`` is a label field of objects."""
    fields = label_fields(collection)
    if name not in fields:
        found = collection.get_field(name) if isinstance(name, str) else None
        what = f"a {type(found).__name__}" if found is not None else "no field of the dataset"
        raise PATCHES.error(
            f"names {name!r}, which is {what}; give a field of detections or "
            f"polylines: {', '.join(fields) or 'none found'}, or leave it empty to "
            "cluster the samples.")


def vector_attributes(collection, patches_field, probe=50):
    """Attributes of the field's objects holding vectors: vector fields the
    schema declares, and undeclared attributes holding vectors on the first
    ``probe`` objects (embeddings set on objects are usually not declared;
    declared lists such as ``bounding_box`` are no embeddings)."""
    import fiftyone as fo
    import numpy as np

    root = internals.label_root(collection, patches_field)[0]
    declared = {path[len(root) + 1:]: field for path, field in collection.get_field_schema(
        flat=True).items() if path.startswith(root + ".")}
    names = {n for n, f in declared.items() if isinstance(f, fo.VectorField)}  # not masks
    for obj in collection.limit(probe).values(root, unwind=True)[:probe]:
        for name, value in (obj.iter_fields() if obj is not None else ()):
            if name not in declared and (isinstance(value, np.ndarray) and value.ndim == 1 or (
                    isinstance(value, list) and value and all(
                        isinstance(v, (int, float)) for v in value))):
                names.add(name)
    return sorted(n for n in names if "." not in n)


def count(collection, patches_field, attribute):
    """Number of objects of the target with a value in ``attribute``."""
    root = internals.label_root(collection, patches_field)[0]
    return collection.count(f"{root}.{attribute}")


class Units:
    """The target's units (samples, or objects of ``patches_field``): the
    collection whose rows they are, and paths in it and in storage."""

    def __init__(self, collection, patches_field=None):
        self.collection, self.patches_field = collection, patches_field
        self.root = patches_field and internals.label_root(collection, patches_field)[0]

    @property
    def noun(self):
        return f"objects of '{self.patches_field}'" if self.patches_field else "samples"

    def stored(self, name):
        """Where output field ``name`` is stored: on the samples, or on each object."""
        return f"{self.root}.{name}" if self.patches_field and name else name

    def row(self, path):
        """``path`` (a stored path, or an attribute of the objects) as the
        rows name it."""
        if not self.patches_field or not path:
            return path
        if path.startswith(self.root + "."):
            path = path[len(self.root) + 1:]
        return f"{self.patches_field}.{path}"

    def rows(self):
        """The collection whose rows are the units: the target itself, or a
        patches view of it (a snapshot: made anew for each read)."""
        if not self.patches_field:
            return self.collection
        return self.collection.to_patches(self.patches_field)

    def read(self, config):
        """Run ``config`` with its paths as the rows name them (a sample
        run's config as it is)."""
        if not self.patches_field:
            return config
        read = SimpleNamespace(**{k: getattr(config, k, None) for k in config.attributes()})
        for entry in _PATH_ENTRIES:
            setattr(read, entry, self.row(getattr(config, entry, None)))
        read.embeddings_field = self.row(config.embeddings_field)
        read.labels = {k: self.row(v) if k.endswith("field") else v
                       for k, v in (getattr(config, "labels", None) or {}).items()} or None
        return read

    def present(self, ids):
        """Which of the units ``ids`` (text) still exist."""
        if not self.patches_field:
            return set(self.collection.select(ids).values("id"))
        return set(self.collection.select_labels(ids=ids, fields=self.patches_field).values(
            f"{self.root}.id", unwind=True)) & set(ids)


def beside(config, name):
    """Where a run's further output ``name`` (names, marks, tags) is: beside
    its cluster field, on the samples or on each object of a patch run."""
    parent = config.cluster_field.rpartition(".")[0]
    return f"{parent}.{name}" if parent else name


def for_run(collection, config):
    """The units of ``collection`` that run ``config`` clusters."""
    return Units(collection, getattr(config, "patches_field", None))


def of_run(dataset, config):
    """``(rows, config)`` for reading run ``config``: the collection whose
    rows the run clustered, and the config as those rows name its fields."""
    units = for_run(dataset, config)
    return units.rows(), units.read(config)
