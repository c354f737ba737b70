"""Benchmark: name 100 clusters against a local OpenAI-compatible server that
takes 1 s per call, through label_clusters_with_llm, and print a markdown
table next to the reference plugin's sequential loop (at least 100 s).

Builds its own throwaway dataset of tiny flat-colour PNGs (one colour per
cluster) and clusters it with compute_clusters first. Needs no internet.

    python bench/labeling.py [--clusters 100] [--latency 1.0] [--concurrency 8 32]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

URI = "@clusterlab/clustering/"
MODEL = "bench-vision"
KEY = "sk-bench-local"
TARGET = 15.0


def build(num_clusters, per_cluster, data_dir):
    """A dataset of ``num_clusters`` well-separated blobs, clustered by kmeans
    into run 'bench'; each sample's file is an 8x8 PNG of its blob's colour."""
    from PIL import Image
    from sklearn.datasets import make_blobs

    import fiftyone as fo
    import fiftyone.operators as foo
    from llm_server import COLOURS

    X, y = make_blobs(num_clusters * per_cluster, n_features=16, centers=num_clusters,
                      cluster_std=0.05, random_state=0)
    palette = list(COLOURS.values())
    samples = []
    for i, (x, label) in enumerate(zip(X, y)):
        path = os.path.join(data_dir, f"{i}.png")
        Image.new("RGB", (8, 8), palette[label % len(palette)]).save(path)
        samples.append(fo.Sample(filepath=path, embedding=x))
    dataset = fo.Dataset()
    dataset.add_samples(samples, progress=False)
    foo.get_operator(URI + "compute_clusters")(
        dataset, run_key="bench", embeddings="embedding", method="kmeans",
        kmeans__n_clusters=num_clusters, reduce="none", random_state=0)
    return dataset


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per call")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32],
                        help="values to measure; 8 is the operator's default")
    args = parser.parse_args(argv)

    from demo.digits import link_plugin

    link_plugin(os.path.join(REPO, ".plugins"))
    os.environ["OPENAI_API_KEY"] = KEY  # the plugin secret, read by the operator
    import fiftyone.operators as foo

    label = foo.get_operator(URI + "label_clusters_with_llm")
    rows = []
    # the simulated model runs in a process of its own, so that its work
    # does not compete with the plugin's for this process's GIL
    server = subprocess.Popen(
        [sys.executable, os.path.join(REPO, "tests", "llm_server.py"), "--key", KEY,
         "--model", MODEL, "--delay", str(args.latency)],
        stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as data_dir:
            dataset = build(args.clusters, 5, data_dir)
            try:
                for concurrency in args.concurrency:
                    start = time.perf_counter()
                    summary = label(dataset, run_key="bench", model=MODEL, base_url=url,
                                    concurrency=concurrency, relabel=True, delegate=False)
                    seconds = time.perf_counter() - start
                    assert summary["num_named"] == args.clusters, summary["failed"]
                    rows.append((f"label_clusters_with_llm, concurrency {concurrency}"
                                 + (" (default)" if concurrency == 8 else ""),
                                 summary["num_requested"], f"{seconds:.1f}",
                                 f"{args.clusters * args.latency / seconds:.1f}x"))
            finally:
                dataset.delete()
    finally:
        server.terminate()
        server.wait()

    lower_bound = args.clusters * args.latency
    rows.append(("reference plugin: sequential loop (lower bound)", args.clusters,
                 f"≥ {lower_bound:.0f}", "1.0x"))
    print(f"\nNaming {args.clusters} clusters, {args.latency:g} s per call "
          f"(target with the default concurrency: ≤ {TARGET:g} s)\n")
    print("| run | clusters asked | wall time (s) | speed-up vs sequential |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(str(v) for v in row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
