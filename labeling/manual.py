"""Naming a cluster by hand: the name is cleaned and made distinct as the
model's names are, recorded on the run marked ``naming="manual"``, and
written to the label field, in one transaction of the run."""

from ..clustering import runs, transactions
from ..clustering.params import Param
from ..clustering.typical import CLUSTER
from . import names, record
from .prompts import ReplyError
from .request import check_label_field

NAME = Param("name", str, None,
             f"The cluster's name: at most {names.MAX_WORDS} words and "
             f"{names.MAX_NAME} characters", label="Name")
DESCRIPTION = Param("description", str, None, "A sentence about the cluster",
                    empty="no description", label="Description")
# what a name given by the model carries that a name given by hand does not
_MODEL_ENTRIES = ("model", "shown", "unreadable", "usage", "error")


def check(values):
    """``(name, description)`` cleaned, or ParameterError naming the
    parameter. Names are taken as given: "Auto" or "None" name a cluster."""
    name, description = values.get("name"), values.get("description")
    if not isinstance(name, str) or not name.strip():
        raise NAME.error(f"is required: give {NAME.describe()}; got {name!r}.")
    if description is not None and not isinstance(description, str):
        raise DESCRIPTION.error(f"must be text; got {description!r}.")
    words = names.plain_line(name).split()
    if len(words) > names.MAX_WORDS or len(" ".join(words)) > names.MAX_NAME:
        raise NAME.error(f"must be at most {names.MAX_WORDS} words and {names.MAX_NAME} "
                         f"characters; got {name!r}.")
    try:
        name = names.clean_name(name, None)
    except ReplyError:
        raise NAME.error(f"has no text once markup and control characters are "
                         f"removed; got {name!r}.") from None
    if description and len(names.plain_line(description)) > names.MAX_DESCRIPTION:
        raise DESCRIPTION.error(f"must be at most {names.MAX_DESCRIPTION} characters; "
                                f"got {len(description)}.")
    return name, names.clean_description(description, None) or None


def name_cluster(dataset, values, operation=None):
    """Names cluster ``values["cluster"]`` of run ``values["run_key"]``;
    returns what was recorded (the name as made distinct)."""
    name, description = check(values)
    key, cluster = values.get("run_key"), values.get("cluster")
    runs.get(dataset, key)  # a run to name, before its key is leased
    with transactions.transaction(dataset, [key], "naming", operation) as tx:
        dataset.reload()
        info, results = runs.get(dataset, key)
        stored = runs.results_dict(results)
        named = record.entries(stored)
        by_id = dict(named)
        if cluster not in by_id:
            raise CLUSTER.error(f"names no cluster of run '{key}': its clusters are "
                                f"{', '.join(by_id)}; got {cluster!r}.")
        labels = dict(getattr(info.config, "labels", None) or {})
        label_field = labels.get("label_field") or f"{info.config.cluster_field}_label"
        check_label_field(dataset, key, info.config, label_field)
        others = [(cid, e["name"]) for cid, e in named if e.get("name") and cid != cluster]
        name = names.make_distinct(others + [(cluster, name)])[cluster]
        entry = by_id[cluster]
        for stale in _MODEL_ENTRIES:
            entry.pop(stale, None)
        entry.update(name=name, description=description, naming="manual")
        record.commit(tx, key, info.config, stored, label_field, labels)
    return dict(run_key=key, cluster=cluster, name=name, description=description,
                naming="manual", label_field=label_field)

