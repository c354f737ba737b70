"""Benchmark of compute_clusters at scale; prints a markdown table.

Each case runs in a fresh process (so peak RSS is that case's own): the
operator as users run it, then, in the same process, the bare algorithm with
identical parameters on an in-memory copy of the same vectors. Overhead is
the difference of the two, measured in one run.

    python bench/clustering.py                 # 20k and 100k x 512
    python bench/clustering.py --million       # adds 1M x 512
    python bench/clustering.py --cases kmeans,io --sizes 100000
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

K = 50
SEED = 0
CASES = {
    # case: (method, params, sizes it runs at by default); k-means runs are
    # seeded so the bare fit starts from the same centres; HDBSCAN runs use
    # every default, random_state included (unseeded UMAP uses both cores)
    "kmeans": ("kmeans", {"kmeans__n_clusters": K, "random_state": SEED},
               (20_000, 100_000, 1_000_000)),
    "minibatch_kmeans": ("minibatch_kmeans",
                         {"minibatch_kmeans__n_clusters": K, "random_state": SEED},
                         (100_000, 1_000_000)),
    "hdbscan": ("hdbscan", {}, (20_000, 100_000)),
}


# cases that take seconds at N <= 100k: run several times, since a fit of a
# few seconds on a shared 2-core machine varies by a second or two
QUICK = ("kmeans", "minibatch_kmeans", "io")


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakRSS:
    """Samples this process's RSS while a block runs; reports the peak rise."""

    def __init__(self):
        import psutil

        self.process = psutil.Process()

    def __enter__(self):
        self.start = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.rise_mb = (self.peak - self.start) / 2**20


def bare(method, n, prepare, params, seed):
    """The libraries alone on an in-memory array, called as a user would,
    with the parameters the plugin's run recorded."""
    import warnings

    import numpy as np

    from bench import data

    X, _ = data.blobs(n, seed=SEED)
    start = time.perf_counter()
    if prepare["reduce"] == "umap":
        import umap
        from sklearn.decomposition import PCA

        settings = dict(prepare["umap"])
        pca_first = settings.pop("pca_first")
        if pca_first:
            X = PCA(pca_first, random_state=seed).fit_transform(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            X = umap.UMAP(n_components=prepare["n_components"], random_state=seed,
                          **settings).fit_transform(X)
        X[~np.isfinite(X).all(axis=1)] = 0  # the plugin places these points
    if method == "kmeans":
        from sklearn.cluster import KMeans

        labels = KMeans(params["n_clusters"], init=params["init"], n_init="auto",
                        max_iter=params["max_iter"], tol=params["tol"],
                        algorithm=params["algorithm"], random_state=seed).fit_predict(X)
    elif method == "minibatch_kmeans":
        from sklearn.cluster import MiniBatchKMeans

        labels = MiniBatchKMeans(
            params["n_clusters"], init=params["init"], n_init="auto",
            batch_size=params["batch_size"], max_iter=params["max_iter"],
            max_no_improvement=params["max_no_improvement"],
            reassignment_ratio=params["reassignment_ratio"], random_state=seed,
        ).fit_predict(X)
    else:
        import hdbscan

        labels = hdbscan.HDBSCAN(
            min_cluster_size=params["min_cluster_size"], min_samples=params["min_samples"],
            core_dist_n_jobs=-1).fit_predict(np.ascontiguousarray(X))
    return time.perf_counter() - start, labels


def warm_up_jit():
    """Compiles pynndescent (UMAP's own neighbour search: the plugin uses it
    above 50k samples, bare UMAP above 4k), ~30 s once in every new process;
    returns the seconds, reported on their own so the timed runs compare
    like with like."""
    import warnings

    import numpy as np
    import umap

    X = np.random.default_rng(0).normal(size=(5000, 16)).astype(np.float32)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        umap.UMAP(n_neighbors=10, n_epochs=5).fit(X)
    return time.perf_counter() - start


def warm_up_process(ds):
    """Settles the database (earlier writes flushed) and starts the
    BLAS/OpenMP thread pools, so neither the plugin's run nor the bare fit
    pays for it."""
    import numpy as np
    from sklearn.cluster import KMeans

    ds._sample_collection.database.client.admin.command("fsync")
    _wait_until_idle("mongod")
    KMeans(2, n_init=1).fit(np.random.default_rng(0).random((2000, 8)))


def _wait_until_idle(name, quiet=0.05, limit=60):
    """Waits (at most ``limit`` s) until processes called ``name`` use less
    than ``quiet`` of a core: the previous case's deletes and writes are
    still being applied in the background for a while."""
    import psutil

    procs = [p for p in psutil.process_iter(["name"]) if p.info["name"] == name]
    for p in procs:
        p.cpu_percent(interval=None)  # starts each process's measurement
    deadline = time.monotonic() + limit
    while procs and time.monotonic() < deadline:
        time.sleep(1.0)
        if sum(p.cpu_percent(interval=None) for p in procs) / 100 < quiet:
            return


def run_case(case, n):
    """One case in this process; returns a dict of measurements."""
    from demo.digits import link_plugin

    link_plugin(os.path.join(REPO, ".plugins"))
    import fiftyone.operators as foo
    from sklearn.metrics import adjusted_rand_score

    from bench import data

    ds = data.dataset(n, seed=SEED)
    key = f"bench_{case}"
    if key in ds.list_runs():
        foo.get_operator("@clusterlab/clustering/delete_clustering_run")(ds, key)
    method, params, _ = CASES[case]
    compute = foo.get_operator("@clusterlab/clustering/compute_clusters")
    # cases that reduce with UMAP: every HDBSCAN run, the others up to 20k
    jit = warm_up_jit() if case == "hdbscan" or n <= 20_000 else None
    warm_up_process(ds)
    before = rss_mb()
    start = time.perf_counter()
    summary = compute(ds, run_key=key, embeddings="embedding", method=method,
                      progress=False, **params)
    wall = time.perf_counter() - start
    peak = rss_mb()
    ari = adjusted_rand_score(ds.values("truth"), ds.values(summary["cluster_field"]))
    _wait_until_idle("mongod")  # the run's writes are still being applied
    with PeakRSS() as bare_mem:
        bare_time, bare_labels = bare(method, n, summary["prepare"], summary["params"],
                                      params.get("random_state"))
    _, y = data.blobs(n, seed=SEED)
    timings = summary["timings"]
    reduced = summary["prepare"]["reduce"] != "none"
    algorithm = timings["fit"] + (timings["prepare"] if reduced else 0)
    return dict(
        case=case, n=n, wall=wall, stages=timings, peak_rss_mb=peak,
        rss_before_mb=before, ari=ari, clusters=summary["num_clusters"],
        bare=bare_time, bare_ari=adjusted_rand_score(y, bare_labels),
        bare_rss_rise_mb=bare_mem.rise_mb, overhead=wall - bare_time,
        outside=wall - algorithm, prepare=summary["prepare"]["reduce"], jit=jit,
    )


def run_io(n):
    """Our reader and writer against FiftyOne's values() and set_values()."""
    from demo.digits import link_plugin

    link_plugin(os.path.join(REPO, ".plugins"))
    import importlib

    import numpy as np
    import fiftyone.operators as foo

    from bench import data

    foo.get_operator("@clusterlab/clustering/compute_clusters")
    pkg = "fiftyone.plugins.orgs.clusterlab.clustering.clustering."
    embeddings = importlib.import_module(pkg + "embeddings")
    writeback = importlib.import_module(pkg + "writeback")
    ds = data.dataset(n, seed=SEED)
    ds.delete_sample_fields([f for f in ("io_ours", "io_fo") if ds.has_field(f)])

    start = time.perf_counter()
    emb = embeddings.read_embeddings(ds, "embedding")
    read_ours = time.perf_counter() - start
    start = time.perf_counter()
    values = np.asarray(ds.values("embedding"), dtype=np.float32)
    read_fo = time.perf_counter() - start
    assert np.array_equal(values, emb.X)
    labels = (np.arange(n) % K).astype(str)
    start = time.perf_counter()
    writeback.write_fields(ds, emb.ids, {"io_ours": labels})
    write_ours = time.perf_counter() - start
    start = time.perf_counter()
    ds.set_values("io_fo", list(labels), progress=False)
    write_fo = time.perf_counter() - start
    ds.delete_sample_fields(["io_ours", "io_fo"])
    return dict(case="io", n=n, read_ours=read_ours, read_fo=read_fo,
                write_ours=write_ours, write_fo=write_fo)


def child(args):
    result = run_io(args.n) if args.case == "io" else run_case(args.case, args.n)
    print("RESULT " + json.dumps(result))


def table(rows):
    lines = [
        "| case | N x d | prep | end-to-end s | bare s | ratio | overhead vs bare s | "
        "outside the algorithm s | read | prepare | fit | measure | write | record | "
        "RSS before MB | peak RSS MB | bare RSS rise MB | ARI | bare ARI | clusters | "
        "one-time JIT s | runs |",
        "|" + "---|" * 22,
    ]
    for r in rows:
        if r["case"] == "io":
            continue
        s = r["stages"]
        jit = "-" if r["jit"] is None else f"{r['jit']:.1f}"
        lines.append(
            f"| {r['case']} | {r['n']:,} x 512 | {r['prepare']} | {r['wall']:.1f} | "
            f"{r['bare']:.1f} | {r['wall'] / r['bare']:.2f} | {r['overhead']:.1f} | "
            f"{r['outside']:.1f} | "
            f"{s['read']:.1f} | {s['prepare']:.1f} | {s['fit']:.1f} | {s['measure']:.1f} | "
            f"{s['write']:.1f} | {s['record']:.2f} | {r['rss_before_mb']:.0f} | "
            f"{r['peak_rss_mb']:.0f} | {r['bare_rss_rise_mb']:.0f} | {r['ari']:.3f} | "
            f"{r['bare_ari']:.3f} | {r['clusters']} | {jit} | {r['runs']} |"
        )
    io = [r for r in rows if r["case"] == "io"]
    if io:
        lines += ["", "| N x 512 | read (ours) s | values() s | speed-up | write (ours) s | "
                  "set_values() s | speed-up |", "|---|---|---|---|---|---|---|"]
        for r in io:
            lines.append(
                f"| {r['n']:,} | {r['read_ours']:.1f} | {r['read_fo']:.1f} | "
                f"{r['read_fo'] / r['read_ours']:.1f}x | {r['write_ours']:.1f} | "
                f"{r['write_fo']:.1f} | {r['write_fo'] / r['write_ours']:.1f}x |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="kmeans,minibatch_kmeans,hdbscan,io")
    parser.add_argument("--sizes", help="comma-separated N (default: each case's own)")
    parser.add_argument("--million", action="store_true", help="include N = 1,000,000")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each quick case (N <= 100k, not HDBSCAN); "
                        "the table shows the run of median wall time")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        return child(args)

    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else None
    plan = []
    for case in args.cases.split(","):
        defaults = CASES[case][2] if case in CASES else (100_000,)
        for n in sizes or defaults:
            if n >= 1_000_000 and not (args.million or sizes):
                continue
            plan.append((case, n))
    if args.million and "io" in args.cases:
        plan.append(("io", 1_000_000))

    rows = []
    os.environ.setdefault("FIFTYONE_DATABASE_NAME", "clusterlab_bench")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")  # mongod version notice
    env = dict(os.environ)
    # this process stays connected, so the database keeps running (and its
    # cache warm) between cases, as it does for a user with the App open
    import fiftyone as fo

    fo.list_datasets()
    for case, n in plan:
        repeats = args.repeat if n <= 100_000 and case in QUICK else 1
        results = [run_child(case, n, env, i, repeats) for i in range(repeats)]
        results.sort(key=lambda r: r.get("wall", r.get("read_ours")))
        rows.append(dict(results[len(results) // 2], runs=repeats))
    print(table(rows))


def run_child(case, n, env, i, repeats):
    """One case in a fresh process; returns its measurements."""
    print(f"running {case} at N={n:,} ({i + 1}/{repeats}) ...", file=sys.stderr, flush=True)
    proc = subprocess.run([sys.executable, __file__, "--case", case, "--n", str(n)],
                          env=env, capture_output=True, text=True)
    found = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not found:
        print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"case {case} at N={n} failed")
    return json.loads(found[0][len("RESULT "):])


if __name__ == "__main__":
    main()
