"""Acting on a run's clusters: a few samples of each (sample_clusters), a
sample tag on whole clusters (tag_clusters), and what they share with
find_cluster_duplicates and reassign_noise: the run found and the
parameters checked, the run's members read cluster by cluster, most
typical first (as open_cluster shows them).

Each writes through a transaction holding the run key's lease: saved
views and tags are staged, committed, then applied, like a run's fields.
"""

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from . import runs, transactions, units
from .params import InputError, Param, ParameterError, coerce_all, raise_errors
from .typical import typicality

NOISE = "-1"

CLUSTERS = Param("clusters", list, None,
                 "Clusters of the run whose samples get or lose the tag (-1 is "
                 "HDBSCAN's noise)", label="Clusters")
TAG_PARAMS = (
    CLUSTERS,
    Param("tag", str, None, "The sample tag to add or remove", label="Tag"),
    Param("action", str, "add", "Add the tag to the clusters' samples, or remove it",
          choices=("add", "remove")),
)
NAME = Param("name", str, None, "Name of the saved view or of the tag",
             empty="<run_key>_sample")
SAMPLE_PARAMS = (
    Param("num_samples", int, 10, "Samples taken from each cluster", low=1, high=10_000,
          label="Samples per cluster"),
    Param("order", str, "typical",
          "'typical': each cluster's most typical samples; 'spread': its most "
          "typical, then each next one far from those taken (no near-duplicates, "
          "outliers not first)", choices=("typical", "spread")),
    Param("include_noise", bool, False, "Also take samples of HDBSCAN's noise (-1)"),
    Param("save_as", str, "view", "Keep the samples as a saved view or as a sample tag",
          choices=("view", "tag"), label="Save as"),
    NAME,
    Param("overwrite", bool, False,
          "Replace the saved view of this name, or take this tag off the samples "
          "that have it first"),
)


def validate(dataset, values, params):
    """``(effective, run, errors)``: ``values`` coerced by ``params``, the
    run named by ``run_key`` as ``(info, results)`` (None if it is not a
    clustering run) and ``{key: ParameterError}``."""
    effective, errors = coerce_all(params, values)
    try:
        run = runs.get(dataset, values.get("run_key"))
    except ParameterError as e:
        errors = {"run_key": e, **errors}
        run = None
    return effective, run, errors


def cluster_ids(results):
    """The run's cluster ids, noise last when it has noise."""
    ids = [c["id"] for c in results.clusters]
    return ids + [NOISE] if results.noise is not None else ids


@contextmanager
def acting_on(dataset, values, check, what, operation=None):
    """``with acting_on(...) as (tx, request, info, results):`` checks
    ``values`` (``check(dataset, values)`` returns the request), takes the
    transaction of run ``values["run_key"]`` and checks again under its
    lease, where another process can no longer change the run."""
    check(dataset, values)
    key = values.get("run_key")
    with transactions.transaction(dataset, [key], what, operation) as tx:
        dataset.reload()
        request = check(dataset, values)
        yield (tx, request) + runs.get(dataset, key)


def check_run_field(dataset, key, name):
    """Raises InputError unless run ``key`` may (re)write field ``name``: a
    new field, or one it wrote (or left behind when deleted outside the plugin)."""
    if not dataset.has_sample_field(name):
        return
    owner = runs.field_owner(dataset, name) or runs.leftovers(dataset).get(name)
    if owner != key:
        written = f"by clustering run '{owner}'" if owner else "by you or another tool"
        raise InputError(
            f"Field '{name}' already exists, written {written}, and run '{key}' "
            "would overwrite it; rename or delete that field first.")


@dataclass
class Members:
    """A run's clustered samples, cluster by cluster, each cluster most
    typical first: ids (text), cluster ids and, when read, the rows of
    ``X`` holding their vectors."""

    ids: np.ndarray
    labels: np.ndarray
    X: np.ndarray = None
    rows: np.ndarray = None

    def groups(self):
        """``(cluster id, slice of its members)`` in cluster order, noise last."""
        if not len(self.labels):
            return []
        starts = np.flatnonzero(np.r_[True, self.labels[1:] != self.labels[:-1]])
        ends = np.r_[starts[1:], len(self.labels)]
        found = [(str(self.labels[s]), slice(s, e)) for s, e in zip(starts, ends)]
        return sorted(found, key=lambda g: (g[0] == NOISE, int(g[0])))

    def vectors(self, members):
        """The vectors of the members in slice ``members``."""
        return self.X[self.rows[members]]


def read_members(dataset, config, results, include_noise, vectors=False):
    """The run's clustered samples (or objects; noise only if
    ``include_noise``) as :class:`Members`; with ``vectors``, only those
    with an embedding, and their embeddings."""
    from fiftyone import ViewField as F

    from .embeddings import read_vectors

    rows, config = units.of_run(dataset, config)
    view = rows.exists(config.cluster_field)
    if not include_noise:
        view = view.match(F(config.cluster_field) != NOISE)
    fields = ["id", config.cluster_field] + (
        [config.distance_field] if config.distance_field else [])
    columns = view.values(fields)
    ids, labels = np.array(columns[0], dtype=str), np.array(columns[1], dtype=str)
    distances = np.array(columns[2], dtype=float) if config.distance_field else None
    X = rows = None
    if vectors and len(ids):
        emb = read_vectors(view, config.embeddings_field)
        at = {str(i): r for r, i in enumerate(emb.ids)}
        keep = np.array([i in at for i in ids], dtype=bool)
        ids, labels = ids[keep], labels[keep]
        distances = distances[keep] if distances is not None else None
        X, rows = emb.X, np.array([at[i] for i in ids], dtype=np.int64)
    order = np.lexsort((ids, typicality(ids, config, results, distances), labels))
    return Members(ids[order], labels[order], X, rows[order] if rows is not None else None)


def object_ids(ids):
    """Sample ids (text) as the ObjectIds a transaction stages."""
    from bson import ObjectId

    return [ObjectId(i) for i in ids]


def stage_text(tx, name, field, ids, values, key, replace=False):
    """Stages text ``values`` (one per staged sample of ``ids``) as codes
    named ``name``; returns the step writing them to run ``key``'s ``field``."""
    categories, codes = np.unique(np.asarray(values, dtype=str), return_inverse=True)
    tx.stage_array(name, codes.astype(np.int32))
    return dict(op="write_field", field=field, kind="str", ids=ids, values=name,
                categories=[str(c) for c in categories], replace=replace, owner=key)


def group_steps(tx, config, results, ids, labels, key):
    """Steps giving the samples ``ids`` (their clusters ``labels``) their
    cluster's group and, where the run's groups are named, its name: the
    group field keeps agreeing with the cluster field. No steps for runs
    recorded before groups existed."""
    if not getattr(config, "group_field", None):
        return []
    found = getattr(results, "groups", None) or []
    group_of = {c: g["id"] for g in found for c in g["clusters"]}
    group_ids = np.array([group_of.get(label, NOISE) for label in labels], dtype=str)
    tx.stage_ids("group_ids", ids)
    steps = [stage_text(tx, "groups", config.group_field, "group_ids", group_ids, key)]
    label_field = (getattr(config, "labels", None) or {}).get("group_label_field")
    if label_field:
        steps += name_steps(tx, "group_", label_field, ids, group_ids,
                            {g["id"]: g.get("name") for g in found}, key)
    return steps


def name_steps(tx, prefix, field, ids, owners, names, key):
    """Steps setting text ``field`` of the samples ``ids`` to the name of
    their cluster or group (``owners``, one each; ``names`` by id), and
    removing it where that has none; staged under names led by ``prefix``."""
    owners = np.asarray(owners, dtype=str)
    named = np.array([names.get(o) is not None for o in owners], dtype=bool)
    tx.stage_ids(prefix + "named", [i for i, n in zip(ids, named) if n])
    tx.stage_ids(prefix + "unnamed", [i for i, n in zip(ids, named) if not n])
    return [dict(op="unset_field", field=field, ids=prefix + "unnamed"),
            stage_text(tx, prefix + "names", field, prefix + "named",
                       [names[o] for o in owners[named]], key)]


def tag_clusters(dataset, values, operation=None):
    """Adds the tag to every sample of the chosen clusters, or removes it."""
    from fiftyone import ViewField as F

    key = values.get("run_key")
    with acting_on(dataset, values, check_tag, "tagging", operation) as (tx, request, info, _):
        on = units.for_run(dataset, info.config)
        ids = on.rows().match(F(on.read(info.config).cluster_field).is_in(
            request["clusters"])).values("_id")
        tx.stage_ids("ids", ids)
        remove = request["action"] == "remove"
        changed = tx.commit([dict(op="edit_tags", ids="ids", tag=request["tag"],
                                  remove=remove, tags=units.beside(info.config, "tags"))])[0]
    verb = "removed from" if remove else "added to"
    return dict(
        run_key=key, tag=request["tag"], action=request["action"],
        clusters=request["clusters"], num_samples=len(ids), num_changed=changed,
        summary=f"Tag `{request['tag']}` {verb} {changed:,} {on.noun} of cluster(s) "
                f"{', '.join(request['clusters'])} ({len(ids):,} in all; "
                f"{len(ids) - changed:,} already {'without' if remove else 'with'} it).")


def check_tag(dataset, values):
    """tag_clusters' parameters, checked; raises the first error."""
    request, run, errors = validate(dataset, values, TAG_PARAMS)
    if run is not None and "clusters" not in errors:
        known = cluster_ids(run[1])
        unknown = [c for c in request["clusters"] if c not in known]
        if unknown:
            errors["clusters"] = CLUSTERS.error(
                f"names no cluster of run '{values.get('run_key')}': {', '.join(unknown)}. "
                f"Its clusters: {', '.join(known)}.")
    raise_errors(errors)
    return request


def sample_clusters(dataset, values, operation=None):
    """Takes ``num_samples`` samples of each cluster, kept as a saved view or a tag."""
    key = values.get("run_key")
    with acting_on(dataset, values, check_sample, "sampling", operation) as (
            tx, request, info, results):
        spread = request["order"] == "spread"
        members = read_members(dataset, info.config, results, request["include_noise"],
                               vectors=spread)
        chosen, counts = [], {}
        for cluster, where in members.groups():
            picks = _pick(members, where, request["num_samples"], spread)
            chosen.extend(members.ids[where][picks])
            counts[cluster] = len(picks)
        tx.stage_ids("ids", object_ids(chosen))
        name = request["name"]
        if request["save_as"] == "view":
            step = dict(op="save_view", name=name, ids="ids",
                        patches_field=getattr(info.config, "patches_field", None))
        else:
            step = dict(op="edit_tags", ids="ids", tag=name, replace=True,
                        tags=units.beside(info.config, "tags"))
        tx.commit([step])
    kept = "saved view" if request["save_as"] == "view" else "tag"
    return dict(
        run_key=key, save_as=request["save_as"], name=name, order=request["order"],
        num_samples=len(chosen), counts=counts,
        summary=f"{len(chosen):,} samples from {len(counts)} clusters "
                f"({request['order']}, up to {request['num_samples']} each) in {kept} "
                f"`{name}`.")


def _pick(members, where, num, spread):
    """Positions within the cluster ``where`` of the samples to take."""
    size = where.stop - where.start
    if not spread:
        return np.arange(min(num, size))
    from ..labeling.selection import spread_order

    return np.array(spread_order(members.vectors(where), limit=num), dtype=np.int64)


def check_sample(dataset, values):
    """sample_clusters' parameters, checked, with the default name filled
    in; raises the first error."""
    request, _, errors = validate(dataset, values, SAMPLE_PARAMS)
    raise_errors(errors)
    request["name"] = request["name"] or f"{values['run_key']}_sample"
    _check_name(dataset, request)
    return request


def _check_name(dataset, request):
    """Raises ParameterError unless the saved view or tag ``name`` may be
    written: new, or replaced with ``overwrite``."""
    import fiftyone.core.utils as fou

    name, overwrite = request["name"], request["overwrite"]
    hint = "choose another name or set 'Overwrite' (overwrite) to replace it"
    if request["save_as"] == "tag":
        have = dataset.count_sample_tags().get(name, 0)
        if have and not overwrite:
            raise NAME.error(f"tag '{name}' is already on {have:,} samples; {hint}.")
        return
    try:
        slug = fou.to_slug(name)
    except ValueError:
        raise NAME.error(f"cannot name a saved view: {name!r} has no letter or "
                         "digit.") from None
    for other in dataset.list_saved_views():
        if other == name and not overwrite:
            raise NAME.error(f"saved view '{name}' already exists; {hint}.")
        if other != name and fou.to_slug(other) == slug:
            raise NAME.error(
                f"saved view '{other}' already has the address '{slug}' that "
                f"'{name}' would get; choose another name.")
