"""How cluster names are recorded, whoever gives them (the model or a
person): per cluster in the run results, and in the label field for each
cluster's samples, committed as one transaction of the run."""

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
    each named cluster's name, and the run config's ``labels`` (``labels``
    plus the field and counts) through ``tx``. No label field when no
    cluster has a name; a previous label field of another name is deleted."""
    named = entries(stored)
    values = {cid: e["name"] for cid, e in named if e.get("name")}
    previous = (getattr(config, "labels", None) or {}).get("label_field")
    label_field = label_field if values else None
    steps = []
    if values:
        steps.append(dict(op="write_per_cluster", field=label_field,
                          cluster_field=config.cluster_field, values=values,
                          owner=run_key))
    if previous and previous != label_field:
        steps.append(dict(op="delete_fields", fields=[previous]))
    tx.stage_json("results", stored)
    steps.append(dict(op="update_run", key=run_key, results="results", config=dict(
        labels=dict(labels, label_field=label_field,
                    num_named=sum(bool(e.get("name")) for _, e in named),
                    failed=[cid for cid, e in named if e.get("error")]))))
    tx.commit(steps)
