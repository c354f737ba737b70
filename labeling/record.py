"""How cluster names are recorded, whoever gives them (the model or a
person): per cluster in the run results, and in the label field for each
cluster's samples, committed as one transaction of the run. Group names go
the same way, into ``<group_field>_label``; a group of one cluster bears
that cluster's name."""

NOISE_ID = "-1"


def entries(stored):
    """``[(cluster id, entry)]`` of a run's stored results (a plain dict):
    its clusters in order, then the noise when it has samples. The entries
    are the results' own dicts, so changing them changes ``stored``."""
    found = [(c["id"], c) for c in stored["clusters"]]
    if stored.get("noise") and stored["noise"].get("size"):
        found.append((NOISE_ID, stored["noise"]))
    return found


def commit(tx, run_key, config, stored, label_field, labels):
    """Commits ``stored`` (names in its entries), ``label_field`` holding
    each named cluster's name, the group label field each named group's,
    and the run config's ``labels`` (``labels`` plus the fields and counts)
    through ``tx``. No label field when nothing has a name; a previous label
    field of another name is deleted."""
    named = entries(stored)
    values = {cid: e["name"] for cid, e in named if e.get("name")}
    label_field = label_field if values else None
    group_values = _group_names(stored)
    group_label_field = group_label_field_of(config) if group_values else None
    recorded = getattr(config, "labels", None) or {}
    steps = []
    for field, by, names in ((label_field, config.cluster_field, values),
                             (group_label_field, getattr(config, "group_field", None),
                              group_values)):
        if names:
            steps.append(dict(op="write_per_cluster", field=field, cluster_field=by,
                              values=names, owner=run_key))
    stale = [recorded.get(k) for k in ("label_field", "group_label_field")
             if recorded.get(k) not in (None, label_field, group_label_field)]
    if stale:
        steps.append(dict(op="delete_fields", fields=stale))
    tx.stage_json("results", stored)
    steps.append(dict(op="update_run", key=run_key, results="results", config=dict(
        labels=dict(labels, label_field=label_field, group_label_field=group_label_field,
                    num_named=sum(bool(e.get("name")) for _, e in named),
                    failed=[cid for cid, e in named if e.get("error")]))))
    tx.commit(steps)


def group_label_field_of(config):
    """The field holding the names of the run's groups."""
    return f"{config.group_field}_label"


def _group_names(stored):
    """``{group id: name}`` of the named groups, a group of one cluster
    first given its cluster's name and description."""
    clusters = {c["id"]: c for c in stored["clusters"]}
    for group in stored.get("groups") or []:
        if len(group["clusters"]) == 1:
            own = clusters[group["clusters"][0]]
            group.update(name=own.get("name"), description=own.get("description"),
                         naming="cluster")
    return {g["id"]: g["name"] for g in stored.get("groups") or [] if g.get("name")}
