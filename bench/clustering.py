"""Benchmark of compute_clusters at scale, against the machine's own limits
and the bare libraries, in one run; prints markdown tables.

Each case runs in a fresh process (so peak RSS and one-time compile costs
are that case's own): compute_clusters as users run it, then, in the same
process, the machine's matrix-product rate (a 4096 x 4096 float32 product)
and the bare library on an in-memory copy of the same vectors. K-means'
fit is compared with its BLAS bound: the Lloyd iterations it ran (each
counted as a full assignment of every sample, as plain Lloyd computes it)
times 2 N d k FLOPs, divided by that rate; and with the same iterations
timed as products at the fit's own shape (N x d by d x k, which reaches
less of the machine than a square product). Reading and writing are compared
with a bare cursor plus decode, and a bare bulk update of the same values
(with and without the indexed ``last_modified_at`` that FiftyOne's writes set).
Where both ran at one N, k-means' end-to-end time is set against its floor:
the read, the stamped bulk update and the fit's BLAS bound, which any run
that writes FiftyOne fields pays; and against its CPU floor: the CPU time
the read and the write cost this process and the database, over the
machine's cores, plus the fit. A run whose cores are all busy cannot beat
that floor by overlapping its stages. The bench also prints how fast the
machine fills fresh memory, the first time and at once again: a virtual
machine that returns freed memory to its host pays the first rate for
much of what a run allocates.

    python bench/clustering.py                 # 20k and 100k x 512
    python bench/clustering.py --million       # adds 1M x 512
    python bench/clustering.py --cases kmeans,io --sizes 100000
    python bench/clustering.py --cases map      # the map's cost at 20k
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

D = 512
K = 50
SEED = 0
SEEDS = range(5)
CASES = {
    # case: (method, params, sizes it runs at by default)
    "kmeans": ("kmeans", {"kmeans__n_clusters": K, "random_state": SEED},
               (20_000, 100_000, 1_000_000)),
    "kmeans_seeds": ("kmeans", {"kmeans__n_clusters": K}, (100_000,)),
    "minibatch_kmeans": ("minibatch_kmeans",
                         {"minibatch_kmeans__n_clusters": K, "random_state": SEED},
                         (100_000, 1_000_000)),
    "hdbscan": ("hdbscan", {}, (20_000, 100_000, 1_000_000)),
}
# end-to-end targets (seconds, peak RSS MB), where the issue sets them
TARGETS = {("kmeans", 100_000): (5, None), ("kmeans", 1_000_000): (60, 3072),
           ("hdbscan", 100_000): (40, None), ("hdbscan", 1_000_000): (600, 8192)}
# cases that take seconds at N <= 100k: run several times, since a run of a
# few seconds on a shared 2-core machine varies by a second or two
QUICK = ("kmeans", "minibatch_kmeans", "io")
# the bare library runs up to this N (UMAP + HDBSCAN alone on 1M ran past 30 min)
BARE_MAX = {"hdbscan": 100_000}
# the map's cost is measured at this size (its budget: +30% of the run)
MAP_N = 20_000


def peak_rss_mb():
    """This process's peak RSS plus its largest ended child's (the map's
    UMAP helper, ran beside it), in MB."""
    return sum(resource.getrusage(who).ru_maxrss
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024


def memory_rates(mb=512):
    """``{mb, first, again}``: how fast (MB/s) this machine fills ``mb`` of
    fresh memory, the first time and at once again. A virtual machine
    that hands freed memory back to its host (free page reporting: here
    within seconds) pays the first rate again for memory a run takes anew,
    which is much of the spread between runs of one case. Measured in a
    process of its own: a child process's peak RSS starts from its
    parent's."""
    import numpy as np

    rates = []
    for _ in range(2):
        start = time.perf_counter()
        block = np.ones(mb * 2**20, dtype=np.uint8)
        rates.append(mb / (time.perf_counter() - start))
        del block
    return dict(mb=mb, first=rates[0], again=rates[1])


def matmul_rate():
    """GFLOP/s of a 4096 x 4096 float32 matrix product here, best of 3."""
    import numpy as np

    A = np.random.default_rng(0).random((4096, 4096), dtype=np.float32)
    A @ A
    best = min(_timed(lambda: A @ A) for _ in range(3))
    return 2 * 4096 ** 3 / best / 1e9


def product_seconds(X, k, chunk):
    """Seconds of one assignment product at the fit's own shape: every row
    of ``X`` against ``k`` centres, ``chunk`` rows per product as the fit
    runs it, best of 3. Narrow products (k = 50) reach less of the machine
    than a square one: this is the rate the fit can reach here."""
    import numpy as np

    C = np.ascontiguousarray(X[:k])

    def product():
        for start in range(0, len(X), chunk):
            X[start:start + chunk] @ C.T
    product()
    return min(_timed(product) for _ in range(3))


def _timed(work):
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _cpu_timed(work):
    """``(seconds, core-seconds)`` of ``work``: its wall time, and the CPU
    time this process and the database spent meanwhile (all their threads).
    Core-seconds over the machine's cores is the least wall time the same
    work could take here, however it were overlapped."""
    db = database_processes()

    def used():
        return time.process_time() + sum(sum(p.cpu_times()[:2]) for p in db)
    cpu = used()
    wall = _timed(work)
    return wall, used() - cpu


def _written_by_database(coll, work):
    """``(seconds, core-seconds, GB)`` of ``work``: as ``_cpu_timed``, and
    what the database wrote from its cache to disk meanwhile (pages evicted
    or checkpointed), which grows when a write rewrites pages again."""
    def written():
        status = coll.database.client.admin.command("serverStatus")
        return status["wiredTiger"]["cache"]["bytes written from cache"]
    before = written()
    wall, cpu = _cpu_timed(work)
    return wall, cpu, (written() - before) / 1e9


def database_processes():
    """The running ``mongod`` processes (FiftyOne's database)."""
    import psutil

    return [p for p in psutil.process_iter(["name"]) if p.info["name"] == "mongod"]


def plugin():
    """The plugin loaded as FiftyOne loads it; returns ``import_module`` for
    its modules by their path in the repository (``clustering.api``)."""
    import importlib

    from demo.digits import link_plugin

    link_plugin(os.path.join(REPO, ".plugins"))
    import fiftyone.operators as foo

    foo.get_operator("@clusterlab/clustering/compute_clusters")
    return lambda name: importlib.import_module(
        "fiftyone.plugins.orgs.clusterlab.clustering." + name)


def compile_seconds(modules, method):
    """What a fresh process pays once before its first run: UMAP's numba
    functions (loaded from numba's cache after the first run ever) and the
    method, on 2,000 samples."""
    import numpy as np

    X = np.random.default_rng(0).normal(size=(2000, 64)).astype(np.float32)
    features, methods = modules("clustering.features"), modules("clustering.methods")
    chosen = methods.METHODS[method]
    params = {p.name: p.default for p in chosen.params}
    if chosen.needs_k:
        params["n_clusters"] = 5
    prepare = features.resolve(dict(normalize=None, reduce="umap", n_components=None),
                               chosen, *X.shape)
    return _timed(lambda: chosen.fit(features.prepare(X, prepare, 0), params, 0))


def bare(method, X, params, seed):
    """scikit-learn / hdbscan alone on the in-memory vectors, called as a
    user would; ``(seconds, labels)``."""
    import warnings

    start = time.perf_counter()
    if method == "kmeans":
        from sklearn.cluster import KMeans

        labels = KMeans(params["n_clusters"], n_init="auto", random_state=seed).fit_predict(X)
    elif method == "minibatch_kmeans":
        from sklearn.cluster import MiniBatchKMeans

        labels = MiniBatchKMeans(params["n_clusters"], n_init="auto",
                                 random_state=seed).fit_predict(X)
    else:
        import hdbscan
        import umap
        from sklearn.decomposition import PCA

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Z = umap.UMAP(n_components=10, random_state=seed).fit_transform(
                PCA(50, random_state=seed).fit_transform(X))
        labels = hdbscan.HDBSCAN(min_cluster_size=params["min_cluster_size"],
                                 core_dist_n_jobs=-1).fit_predict(Z)
    return time.perf_counter() - start, labels


def run_case(case, n):
    """One case in this process; returns a dict of measurements."""
    from sklearn.metrics import adjusted_rand_score

    from bench import data

    modules = plugin()
    import fiftyone.operators as foo

    ds = data.dataset(n, D, K, seed=SEED)
    compute = foo.get_operator("@clusterlab/clustering/compute_clusters")
    method, params, _ = CASES[case]
    reduce_with_umap = method == "hdbscan" or n <= 20_000
    compiled = compile_seconds(modules, method) if reduce_with_umap else None
    warm(ds)
    settle(ds)
    runs = []
    for seed in (SEEDS if case == "kmeans_seeds" else [params.get("random_state")]):
        wall, cpu = _cpu_timed(lambda: runs.append(compute(
            ds, run_key="bench", embeddings="embedding", method=method, overwrite=True,
            progress=False, **dict(params, random_state=seed))))
        summary = runs[-1]
        results = ds.load_run_results("bench", cache=False)
        runs[-1] = dict(seed=seed, wall=wall, cpu=cpu, stages=summary["timings"],
                        ari=adjusted_rand_score(ds.values("truth"), ds.values("bench_cluster")),
                        clusters=summary["num_clusters"], prepare=summary["prepare"],
                        iterations=(getattr(results, "fit", None) or {}).get(
                            "lloyd_iterations"))
    modules("clustering.umap_process").end_kept()  # ended, its peak RSS is counted
    peak = peak_rss_mb()
    rate = matmul_rate()
    X, y = data.blobs(n, D, K, seed=SEED)
    bare_time = bare_ari = None
    if n <= BARE_MAX.get(method, n):
        bare_time, bare_labels = bare(method, X, summary["params"],
                                      params.get("random_state", SEED))
        bare_ari = adjusted_rand_score(y, bare_labels)
    for run in runs:
        if run["iterations"] is not None:
            dim = run["prepare"]["n_components"] or D
            run["bound"] = run["iterations"] * 2 * n * dim * K / (rate * 1e9)
            if dim == D:
                run["at_shape"] = run["iterations"] * product_seconds(
                    X, K, modules("clustering.cores").rows_per_block(D))
    return dict(case=case, n=n, runs=runs, peak_rss_mb=peak, compile=compiled, rate=rate,
                cores=len(os.sched_getaffinity(0)),
                bare=bare_time, bare_ari=bare_ari)


def warm(ds):
    """Reads the vectors once untimed: the first read after other work
    evicted them from the database's cache pays the disk (a 1M read took
    47 s cold, 22 s warm), which is not what the case measures."""
    for _ in ds._sample_collection.find_raw_batches({}, {"embedding": 1}, batch_size=2000):
        pass


def settle(ds):
    """Waits until the database has applied earlier writes (the benchmark
    data, a previous case's deletes), so the run does not pay for them."""
    ds._sample_collection.database.client.admin.command("fsync")
    procs = database_processes()
    for p in procs:
        p.cpu_percent(interval=None)
    deadline = time.monotonic() + 60
    while procs and time.monotonic() < deadline:
        time.sleep(1.0)
        if sum(p.cpu_percent(interval=None) for p in procs) < 5:
            return


def run_io(n):
    """The plugin's reader and writer against a bare cursor plus decode and
    a bare bulk update of the same values."""
    import bson
    import numpy as np
    from pymongo import UpdateMany

    from bench import data

    modules = plugin()
    embeddings, writeback = modules("clustering.embeddings"), modules("clustering.writeback")
    ds = data.dataset(n, D, K, seed=SEED)
    coll = ds._sample_collection
    for field in ("io_ours", "io_bare"):
        if ds.has_field(field):
            ds.delete_sample_field(field)
    warm(ds)
    settle(ds)

    def bare_read():
        import zlib

        X = np.empty((n, D), dtype=np.float32)
        ids, row = [], 0
        for batch in coll.find_raw_batches({}, {"embedding": 1}, batch_size=2000):
            for doc in bson.decode_all(batch):
                raw = zlib.decompress(doc["embedding"])
                X[row] = np.frombuffer(raw, dtype=np.float32, offset=len(raw) - 4 * D)
                ids.append(doc["_id"])
                row += 1
        return ids, X

    read_bare, read_bare_cpu = _cpu_timed(bare_read)
    read_ours, read_ours_cpu = _cpu_timed(lambda: embeddings.read_embeddings(ds, "embedding"))
    ids = embeddings.read_embeddings(ds, "embedding").ids
    labels = (np.arange(n) % K).astype(str)
    settle(ds)
    write_ours, write_ours_cpu, written_ours = _written_by_database(coll, lambda: (
        writeback.write_field(ds, "io_ours", "str", ids, labels, replace=False,
                              owner="bench")))
    by_value = {}
    for _id, value in zip(ids, labels):
        by_value.setdefault(value, []).append(_id)

    def bare_write(stamp):
        """One bulk update of the same values; ``stamp`` also sets the
        indexed ``last_modified_at``, as FiftyOne's own writes and ours do."""
        coll.update_many({"io_bare": {"$exists": True}}, {"$unset": {"io_bare": ""}})
        settle(ds)
        extra = {"last_modified_at": datetime.now(timezone.utc)} if stamp else {}
        ops = [UpdateMany({"_id": {"$in": chunk[i:i + 50_000]}},
                          {"$set": {"io_bare": value, **extra}})
               for value, chunk in by_value.items() for i in range(0, len(chunk), 50_000)]
        return _written_by_database(coll, lambda: coll.bulk_write(ops, ordered=False))

    (write_bare, _, _), (write_stamped, write_stamped_cpu, written_stamped) = (
        bare_write(False), bare_write(True))
    ds.delete_sample_field("io_ours")
    coll.update_many({}, {"$unset": {"io_bare": ""}})
    return dict(case="io", n=n, read_ours=read_ours, read_bare=read_bare,
                write_ours=write_ours, write_bare=write_bare, write_stamped=write_stamped,
                written_ours=written_ours, written_stamped=written_stamped,
                read_cpu=min(read_ours_cpu, read_bare_cpu),
                write_cpu=min(write_ours_cpu, write_stamped_cpu))


def run_map(n, repeats=3):
    """The k-means case (every other setting at its default) without a map
    and with the default map, alternately in one process; medians of
    ``repeats`` pairs, the map's stage and the ratio of their wall times."""
    import statistics

    from bench import data

    modules = plugin()
    import fiftyone.operators as foo

    ds = data.dataset(n, D, K, seed=SEED)
    compute = foo.get_operator("@clusterlab/clustering/compute_clusters")
    default = modules("clustering.layout").MAP.default
    compile_seconds(modules, "kmeans")
    warm(ds)
    settle(ds)
    walls, stages = {"none": [], default: []}, []
    for _ in range(repeats):
        for choice, times in walls.items():
            summaries = []
            times.append(_timed(lambda: summaries.append(compute(
                ds, run_key="mapped", embeddings="embedding", method="kmeans",
                kmeans__n_clusters=K, random_state=SEED, map=choice, overwrite=True,
                progress=False))))
        stages.append(summaries[0]["timings"]["map"])
    foo.get_operator("@clusterlab/clustering/delete_clustering_run")(ds, "mapped")
    without, with_map = (statistics.median(t) for t in walls.values())
    return dict(case="map", n=n, default=default, runs=[dict(
        wall=with_map, without=without, map_stage=statistics.median(stages),
        ratio=with_map / without)])


def child(args):
    runner = dict(io=run_io, map=run_map, memory=lambda n: memory_rates()).get(args.case)
    result = runner(args.n) if runner else run_case(args.case, args.n)
    print("RESULT " + json.dumps(result))


def _target(case, n, wall, peak):
    target = TARGETS.get((case, n))
    if not target:
        return "-"
    seconds, mb = target

    def said(met):
        return " met" if met else " **missed**"
    return f"<= {seconds} s" + said(wall <= seconds) + (
        f", <= {mb / 1024:.0f} GB" + said(peak <= mb) if mb else "")


def _figure(value, digits):
    """``value`` rounded to ``digits``, or "-" for a figure not measured."""
    return "-" if value is None else f"{value:.{digits}f}"


def tables(rows, memory=None):
    """The markdown tables of ``rows``, after ``memory`` (as ``memory_rates``
    returns it) when given."""
    out = [
        "| fresh memory | first fill MB/s | filled again at once MB/s |",
        "|---|---|---|",
        f"| {memory['mb']:,} MB | {memory['first']:,.0f} | {memory['again']:,.0f} |",
        "",
    ] if memory else []
    out += [
        "| case | N x d | prep | end-to-end s | read | prepare | fit | measure | map | write | "
        "peak RSS MB | ARI | clusters | one-time compile s | bare s | bare ARI | target |",
        "|" + "---|" * 17,
    ]
    blas, seeds, io, maps = [], [], [], []
    for row in rows:
        if row["case"] == "io":
            io.append(row)
            continue
        if row["case"] == "map":
            maps.append(row)
            continue
        if row["case"] == "kmeans_seeds":
            seeds.append(row)
            continue
        run = row["runs"][0]
        s = run["stages"]
        compiled = "-" if row["compile"] is None else f"{row['compile']:.1f}"
        out.append(
            f"| {row['case']} | {row['n']:,} x {D} | {run['prepare']['reduce']} | "
            f"{run['wall']:.1f} | {s['read']:.1f} | {s['prepare']:.1f} | {s['fit']:.1f} | "
            f"{s['measure']:.1f} | {s.get('map', 0):.1f} | {s['write']:.1f} | "
            f"{row['peak_rss_mb']:.0f} | "
            f"{run['ari']:.3f} | {run['clusters']} | {compiled} | {_figure(row['bare'], 1)} | "
            f"{_figure(row['bare_ari'], 3)} | "
            f"{_target(row['case'], row['n'], run['wall'], row['peak_rss_mb'])} |")
        if "bound" in run:
            blas.append(row)
    if blas:
        out += ["", "| k-means N x d | fit s | Lloyd iterations | matrix product GFLOP/s | "
                "BLAS bound s | fit / bound | bound at the fit's shape s | "
                "fit / bound at shape |", "|---|---|---|---|---|---|---|---|"]
        for row in blas:
            run = row["runs"][0]
            dim = run["prepare"]["n_components"] or D
            fit, at_shape = run["stages"]["fit"], run.get("at_shape")
            shaped = (f"{at_shape:.2f} | {fit / at_shape:.2f}" if at_shape else "- | -")
            out.append(f"| {row['n']:,} x {dim} | {fit:.2f} | "
                       f"{run['iterations']:.1f} | {row['rate']:.0f} | {run['bound']:.2f} | "
                       f"{fit / run['bound']:.2f} | {shaped} |")
    for row in seeds:
        out += ["", f"| k-means {row['n']:,} x {D}, seed | ARI | fit s | fit / bound | "
                "fit / bound at shape | end-to-end s |", "|---|---|---|---|---|---|"]
        for run in row["runs"]:
            fit = run["stages"]["fit"]
            out.append(f"| {run['seed']} | {run['ari']:.3f} | {fit:.2f} | "
                       f"{fit / run['bound']:.2f} | {fit / run['at_shape']:.2f} | "
                       f"{run['wall']:.1f} |")
        out.append(f"| scikit-learn, seed {SEED} | {row['bare_ari']:.3f} | {row['bare']:.2f} "
                   "| | | |")
    if io:
        out += ["", "| N x 512 | read s | bare cursor + decode s | read throughput vs bare | "
                "write s | bare bulk update s | bare + last_modified_at s | "
                "write time vs bare | vs bare + last_modified_at | "
                "GB the database wrote: ours / bare + last_modified_at |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for r in io:
            out.append(
                f"| {r['n']:,} | {r['read_ours']:.1f} | {r['read_bare']:.1f} | "
                f"{r['read_bare'] / r['read_ours']:.0%} | {r['write_ours']:.1f} | "
                f"{r['write_bare']:.1f} | {r['write_stamped']:.1f} | "
                f"{r['write_ours'] / r['write_bare']:.2f}x | "
                f"{r['write_ours'] / r['write_stamped']:.2f}x | "
                f"{r['written_ours']:.2f} / {r['written_stamped']:.2f} |")
    floors = _floors(rows)
    if floors:
        out += ["", "| k-means N x 512 | end-to-end s | floor s: read + write + fit | "
                "end-to-end / floor | core-seconds: run (cores busy) | "
                "CPU floor s: (read + write core-s) / cores + fit | target s |",
                "|---|---|---|---|---|---|---|"]
        out += floors
    for row in maps:
        run = row["runs"][0]
        out += ["", f"| k-means {row['n']:,} x {D}, k={K} | without map s | "
                f"map=\"{row['default']}\" s | map stage s | with / without |",
                "|---|---|---|---|---|",
                f"| median of 3 pairs | {run['without']:.1f} | {run['wall']:.1f} | "
                f"{run['map_stage']:.2f} | {run['ratio']:.2f} |"]
    return "\n".join(out)


def _floors(rows):
    """Rows of the floor table: where k-means and io ran at the same N, the
    least a run writing FiftyOne fields could take here: the faster of the
    two reads, of the two writes that stamp ``last_modified_at``, and of
    the fit and its BLAS bound. Beside it, the CPU floor: the core-seconds
    of that read and write (this process and the database) spread over
    every core, plus the fit: no overlap of stages could beat it here."""
    io = {r["n"]: r for r in rows if r["case"] == "io"}
    out = []
    for row in rows:
        run = row["runs"][0] if row["case"] == "kmeans" and row["n"] in io else None
        if run is None or "bound" not in run:
            continue
        r = io[row["n"]]
        fit = min(run["stages"]["fit"], run["bound"])
        floor = min(r["read_ours"], r["read_bare"]) + min(r["write_ours"], r["write_stamped"]) + fit
        cpu_floor = (r["read_cpu"] + r["write_cpu"]) / row["cores"] + fit
        target = TARGETS.get(("kmeans", row["n"]), ("-",))[0]
        out.append(f"| {row['n']:,} | {run['wall']:.1f} | {floor:.1f} | "
                   f"{run['wall'] / floor:.2f} | {run['cpu']:.1f} "
                   f"({run['cpu'] / run['wall']:.2f} of {row['cores']}) | {cpu_floor:.1f} | "
                   f"{target} |")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="kmeans,kmeans_seeds,minibatch_kmeans,hdbscan,io,map")
    parser.add_argument("--sizes", help="comma-separated N (default: each case's own)")
    parser.add_argument("--million", action="store_true", help="include N = 1,000,000")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each quick case (N <= 100k); the median is shown")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("FIFTYONE_DATABASE_NAME", "clusterlab_bench")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")  # mongod version notice
    if args.case:
        return child(args)

    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else None
    plan = []
    for case in args.cases.split(","):
        defaults = CASES[case][2] if case in CASES else (
            (MAP_N,) if case == "map" else (100_000,))
        for n in sizes or defaults:
            if n >= 1_000_000 and not (args.million or sizes):
                continue
            plan.append((case, n))
    if args.million and "io" in args.cases and not sizes:
        plan.append(("io", 1_000_000))

    # this process stays connected, so the database keeps running (and its
    # cache warm) between cases, as it does for a user with the App open
    import fiftyone as fo

    fo.list_datasets()
    memory = run_child("memory", 0, 0, 1)
    rows = []
    for case, n in plan:
        repeats = args.repeat if n <= 100_000 and case in QUICK else 1
        results = [r for i in range(repeats) if (r := run_child(case, n, i, repeats))]
        if not results:
            continue
        results.sort(key=lambda r: r["runs"][0]["wall"] if "runs" in r else r["read_ours"])
        rows.append(results[len(results) // 2])
    print(tables(rows, memory))


def run_child(case, n, i, repeats):
    """One case in a fresh process; returns its measurements, or None when
    it failed (the other cases' tables are still printed)."""
    print(f"running {case} at N={n:,} ({i + 1}/{repeats}) ...", file=sys.stderr, flush=True)
    proc = subprocess.run([sys.executable, __file__, "--case", case, "--n", str(n)],
                          env=dict(os.environ), capture_output=True, text=True)
    found = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not found:
        print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
        print(f"case {case} at N={n} failed; the tables leave it out", file=sys.stderr)
        return None
    return json.loads(found[0][len("RESULT "):])


if __name__ == "__main__":
    main()
