"""The map's quality against its UMAP epochs: how faithfully the 2-D map
keeps each sample's neighbours (trustworthiness, 10 neighbours) and how
well the true classes stay apart on it (5-NN accuracy, 5-fold), with the
time of the map, on the feature sets of real images of bench/defaults.py
and 20k blobs; means of 3 seeds, timings their median.

    python bench/map.py [--epochs 50,100,200,500] [--seeds 3]
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def scored(layout, Z, y, seed):
    """``(trustworthiness, 5-NN accuracy, seconds)`` of the map of ``Z``,
    scored on at most 2,000 of its samples."""
    from sklearn.manifold import trustworthiness
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    start = time.perf_counter()
    points, _ = layout.compute(Z, "umap", seed)
    seconds = time.perf_counter() - start
    scored_rows = np.random.default_rng(seed).choice(len(Z), min(len(Z), 2000), replace=False)
    P, Q, labels = Z[scored_rows], points[scored_rows], y[scored_rows]
    accuracy = cross_val_score(KNeighborsClassifier(5), Q, labels, cv=5).mean()
    return trustworthiness(P, Q, n_neighbors=10), accuracy, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", default="50,100,200,500")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    from bench import data, defaults
    from bench.clustering import plugin

    layout = plugin()("clustering.layout")
    chosen = layout.UMAP_SETTINGS["n_epochs"]
    sets = defaults.feature_sets()
    sets["blobs 20k"] = data.blobs(20_000, 512, 50, seed=0)
    print(f"Map: UMAP of up to {layout.FIT_MAX:,} samples of the normalised vectors; "
          f"the plugin uses {chosen} epochs.\n")
    print("| feature set | epochs | trustworthiness | 5-NN accuracy | map time |")
    print("|---|---|---|---|---|")
    for name, (X, y) in sets.items():
        Z = (X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        for epochs in (int(e) for e in args.epochs.split(",")):
            layout.UMAP_SETTINGS = dict(layout.UMAP_SETTINGS, n_epochs=epochs)
            runs = [scored(layout, Z, y, seed) for seed in range(args.seeds)]
            mark = " (plugin)" if epochs == chosen else ""
            print(f"| {name} | {epochs}{mark} | {np.mean([r[0] for r in runs]):.4f} | "
                  f"{np.mean([r[1] for r in runs]):.3f} | "
                  f"{statistics.median(r[2] for r in runs):.2f} s |", flush=True)


if __name__ == "__main__":
    main()
