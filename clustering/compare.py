"""Comparing two clustering runs on the samples both clustered."""

import numpy as np

from . import runs
from .params import InputError, Param

RUN_A = Param("run_a", str, None, "The first clustering run", label="First run")
RUN_B = Param("run_b", str, None, "The second clustering run", label="Second run")


def compare(dataset, key_a, key_b):
    """ARI and NMI between runs ``key_a`` and ``key_b``, and which cluster of
    A maps to which of B (the B cluster holding most of it)."""
    from sklearn import metrics

    field_a = runs.get(dataset, key_a, RUN_A)[0].config.cluster_field
    field_b = runs.get(dataset, key_b, RUN_B)[0].config.cluster_field
    both = dataset.exists(field_a).exists(field_b)
    a, b = both.values([field_a, field_b])
    if not a:
        raise InputError(
            f"Runs '{key_a}' and '{key_b}' have no clustered sample in common; "
            "compare runs computed on overlapping samples."
        )
    a, b = np.array(a), np.array(b)
    clusters_a, codes_a = np.unique(a, return_inverse=True)
    clusters_b, codes_b = np.unique(b, return_inverse=True)
    table = np.zeros((len(clusters_a), len(clusters_b)), dtype=np.int64)
    np.add.at(table, (codes_a, codes_b), 1)
    mapping = []
    for i in sorted(range(len(clusters_a)), key=lambda i: int(clusters_a[i])):
        j = int(np.argmax(table[i]))
        size = int(table[i].sum())
        mapping.append(dict(
            cluster_a=str(clusters_a[i]), size_a=size, cluster_b=str(clusters_b[j]),
            overlap=int(table[i, j]), share=round(float(table[i, j] / size), 4),
        ))
    return dict(
        run_a=key_a, run_b=key_b, num_samples=int(len(a)),
        ari=round(float(metrics.adjusted_rand_score(a, b)), 4),
        nmi=round(float(metrics.normalized_mutual_info_score(a, b)), 4),
        mapping=mapping,
    )
