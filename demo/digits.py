"""The demo: cluster scikit-learn's 1,797 handwritten digits in FiftyOne.

Installs this repository as a plugin in FiftyOne's plugins directory (so
any Python, notebook or ``fiftyone delegated launch`` of this environment
finds it), writes the digits as PNG files, builds a persistent dataset with
each image's 64 pixel values as the ``pixels`` embedding and the true digit
as ``ground_truth``, runs ``compute_clusters`` (seeded: the same clusters at
every run), prints the clusters, and opens the App with scheduling enabled
for ``fiftyone delegated launch``. Needs no internet.

    python demo/digits.py [--no-app] [--rebuild] [--method hdbscan]
"""

import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASET = "clusterlab-digits"
RUN_KEY = "digits"
PLUGIN = "@clusterlab/clustering"


def link_plugin(plugins_dir):
    """Makes ``plugins_dir`` hold this repository as a FiftyOne plugin and
    points FiftyOne (and any App server it starts) at it."""
    os.makedirs(plugins_dir, exist_ok=True)
    link = os.path.join(plugins_dir, "clusterlab")
    if os.path.realpath(link) != REPO:
        if os.path.islink(link):
            os.remove(link)
        os.symlink(REPO, link)
    os.environ["FIFTYONE_PLUGINS_DIR"] = plugins_dir


def install_plugin():
    """Links this repository into FiftyOne's plugins directory
    (``fo.config.plugins_dir``, ``~/fiftyone/__plugins__`` unless set), as
    ``fiftyone plugins download`` would place it; returns the directory. An
    installed copy of the plugin elsewhere in it is left alone."""
    import fiftyone as fo
    import fiftyone.plugins as fop

    plugins_dir = fo.config.plugins_dir
    found = [p for p in fop.list_plugins(enabled="all") if p.name == PLUGIN]
    elsewhere = [p for p in found if os.path.realpath(p.directory) != REPO]
    if elsewhere:
        print(f"Using the {PLUGIN} already installed in {elsewhere[0].directory}")
        return plugins_dir
    link_plugin(plugins_dir)
    return plugins_dir


def write_images(data_dir):
    """Writes the digits as 64x64 grey PNGs (8x8 scaled up); returns paths,
    pixel vectors and labels."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    os.makedirs(data_dir, exist_ok=True)
    paths = []
    for i, image in enumerate(digits.images):
        path = os.path.join(data_dir, f"digit_{i:04d}.png")
        if not os.path.exists(path):
            pixels = (255 - image * 255 / 16).astype(np.uint8)
            Image.fromarray(pixels).resize((64, 64), Image.NEAREST).save(path)
        paths.append(path)
    return paths, digits.data.astype(np.float32), digits.target


def build_dataset(name=DATASET, data_dir=None, rebuild=False, persistent=True):
    """The digits dataset, reused when it is already complete."""
    import fiftyone as fo

    data_dir = data_dir or os.path.join(REPO, "demo", "data", "digits")
    paths, pixels, labels = write_images(data_dir)
    if fo.dataset_exists(name):
        dataset = fo.load_dataset(name)
        if not rebuild and len(dataset) == len(paths) and dataset.has_field("pixels"):
            return dataset
        dataset.delete()
    dataset = fo.Dataset(name, persistent=persistent)
    dataset.add_samples([
        fo.Sample(filepath=p, pixels=v, ground_truth=fo.Classification(label=str(y)))
        for p, v, y in zip(paths, pixels, labels)
    ])
    return dataset


def print_clusters(dataset, cluster_field):
    """A table of clusters: id, size and the digit most of them show."""
    from collections import Counter

    rows = Counter(zip(dataset.values(cluster_field),
                       dataset.values("ground_truth.label")))
    by_cluster = {}
    for (cluster, digit), n in rows.items():
        by_cluster.setdefault(cluster, Counter())[digit] = n
    print(f"\n{'cluster':>8} {'size':>6} {'majority digit':>15} {'purity':>7}")
    for cluster in sorted(by_cluster, key=lambda c: int(c)):
        counts = by_cluster[cluster]
        digit, n = counts.most_common(1)[0]
        size = sum(counts.values())
        print(f"{cluster:>8} {size:>6} {digit:>15} {n / size:>7.0%}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-app", action="store_true", help="do not launch the App")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the dataset")
    parser.add_argument("--method", default="hdbscan", help="clustering method")
    parser.add_argument("--port", type=int, default=5151)
    args = parser.parse_args(argv)

    # the App offers Schedule for `fiftyone delegated launch` (FiftyOne's
    # legacy orchestrator); set before FiftyOne reads its config
    os.environ.setdefault("FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS", "true")
    import fiftyone as fo
    import fiftyone.operators as foo

    plugins_dir = install_plugin()
    print(f"Plugin {PLUGIN} installed in {plugins_dir}")
    dataset = build_dataset(rebuild=args.rebuild)
    print(f"Dataset '{dataset.name}': {len(dataset)} digit images")
    compute = foo.get_operator(f"{PLUGIN}/compute_clusters")
    summary = compute(
        dataset, run_key=RUN_KEY, embeddings="pixels", method=args.method,
        ground_truth="ground_truth", overwrite=True, random_state=0,
    )
    print(summary["summary"].replace("**", "").replace("`", ""))
    print_clusters(dataset, summary["cluster_field"])

    if args.no_app:
        return 0
    print(f"\nOpening the App at http://localhost:{args.port} (Ctrl-C to stop); "
          "press ` and type compute_clusters to cluster again. To run what you "
          "schedule there: .venv/bin/fiftyone delegated launch")
    session = fo.launch_app(dataset, port=args.port, auto=False)
    session.wait(-1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
