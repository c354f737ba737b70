"""What the Clusters panel shows, as plain data read from the runs.

The panel keeps nothing of its own: each card, chart and fact comes from
``runs.info`` (the run's config and results), thumbnails from the
representatives the run recorded, and the live state from the delegated
operations and the run keys' leases (the cluster shown is read from the
App's view: ``typical.selected``).
"""

import functools
from urllib.parse import quote

from . import PLUGIN, runs, transactions, units
from .features import PREPARE_PARAMS
from .groups import PREFIX
from .methods import METHODS
from .request import RUN_PARAMS

THUMBNAILS = 4
# the App's route for a sample's media by path (FiftyOne serves local files)
MEDIA_ROUTE = "/media?filepath="
# the long side of a patch run's thumbnails, cut from their images (pixels)
CROP_PX = 128
NOISE_ID = "-1"
_METRICS = (
    ("silhouette", "Silhouette (-1 to 1, higher is better)"),
    ("davies_bouldin", "Davies-Bouldin (lower is better)"),
    ("calinski_harabasz", "Calinski-Harabasz (higher is better)"),
    ("noise_fraction", "Noise (share of the samples)"),
    ("sample_size", "Samples measured"),
)
_TRUTH = (("ari", "ARI"), ("nmi", "NMI"), ("homogeneity", "Homogeneity"),
          ("completeness", "Completeness"))


def runs_newest_first(dataset):
    """Keys of the dataset's clustering runs, the newest first."""
    keys = runs.list_runs(dataset)
    return sorted(keys, key=lambda k: dataset.get_run_info(k).timestamp, reverse=True)


def overview(dataset, key, thumbnails=THUMBNAILS):
    """Everything the panel shows of run ``key``: its cards (one per
    cluster, one per group of clusters, and the noise apart), the sizes and
    the sweep, and the run's facts as readable markdown."""
    info = runs.info(dataset, key)
    config = info["config"]
    rows, read = units.of_run(dataset, dataset.get_run_info(key).config)
    media = media_urls(rows, [r for c in info["clusters"]
                              for r in c["representatives"][:thumbnails]], read)
    total = max(config.get("num_samples") or 0, 1)

    def card(entry, shown):
        return dict(id=entry["id"], name=entry.get("name"),
                    description=entry.get("description"), naming=entry.get("naming"),
                    size=entry["size"], share=entry["size"] / total, thumbnails=shown)

    noise = info["noise"]
    if noise and noise.get("size"):
        noise = card(dict(noise, id=NOISE_ID),
                     noise_urls(rows, read, thumbnails))
    else:
        noise = None
    params = config.get("params") or {}
    return dict(
        run_key=key,
        method=config["method"],
        cluster_field=config["cluster_field"],
        group_field=config.get("group_field"),
        label_field=(config.get("labels") or {}).get("label_field"),
        clusters=[card(c, [media[r] for r in c["representatives"][:thumbnails] if r in media])
                  for c in info["clusters"]],
        groups=[dict(card(dict(g, id=PREFIX + g["id"]), []),
                     clusters=[c["id"] for c in g["clusters"]]) for g in info["groups"]],
        noise=noise,
        sweep=info["sweep"],
        chosen_k=params.get("n_clusters") if config.get("k_chosen_automatically") else None,
        facts=facts_markdown(info),
    )


def media_field(dataset):
    """The field the App's grid shows (FiftyOne's thumbnails when the
    dataset has them), else ``filepath``."""
    field = dataset.app_config.grid_media_field or "filepath"
    return field if dataset.has_sample_field(field) else "filepath"


def media_url(path):
    """The App's URL of a local media file."""
    return MEDIA_ROUTE + quote(path, safe="")


def media_urls(dataset, sample_ids, config=None):
    """``{sample id: URL}`` of the samples' grid media (their filepath
    where the grid field is empty), in one query. ``dataset`` may be the
    patches view of a patch run (``config``): an object shows its crop."""
    if not sample_ids:
        return {}
    view = dataset.select(sample_ids)
    if getattr(config, "patches_field", None):
        from ..labeling.selection import candidates

        return {i: crop_url(c.filepath, c.box and tuple(c.box))
                for i, c in candidates(view, config).items()}
    ids, paths, shown = view.values(["id", "filepath", media_field(dataset)])
    return {i: media_url(s or p) for i, p, s in zip(ids, paths, shown)}


@functools.lru_cache(maxsize=1024)
def crop_url(path, box):
    """An object's crop (``box``, relative) of the image at ``path``, as a
    small data URL; the whole image's URL where the file cannot be read.
    Kept, as the panel shows the same few objects at every refresh."""
    from ..labeling.images import UnreadableImage, encode

    try:
        return encode(None, path, CROP_PX, box and list(box)).data_url
    except UnreadableImage:
        return media_url(path)


def noise_urls(dataset, config, count):
    """URLs of the grid media (or crops) of a few of the run's noise units."""
    from fiftyone import ViewField as F

    ids = dataset.match(F(config.cluster_field) == NOISE_ID).limit(count).values("id")
    return list(media_urls(dataset, ids, config).values())


def facts_markdown(info):
    """The run's method, parameters, preparation, fields, quality and stage
    timings as readable markdown tables (the form's labels, not raw JSON)."""
    config = info["config"]
    method = METHODS.get(config["method"])
    params = config.get("params") or {}
    declared = {p.name: p for p in (method.params if method else ())}
    auto_k = config.get("k_chosen_automatically")
    rows = []
    for name, value in params.items():
        if name in ("k_min", "k_max"):  # shown with the k they chose, if they did
            continue
        shown = _value(value)
        if name == "n_clusters" and auto_k:
            shown += (f" (chosen automatically over k = {params.get('k_min')}.."
                      f"{params.get('k_max')})")
        rows.append((declared[name].title if name in declared else name, shown))
    prepare = config.get("prepare") or {}
    rows += [(p.title, _value(prepare.get(p.name))) for p in PREPARE_PARAMS
             if p.name in prepare
             and not (p.name == "n_components" and prepare.get("reduce") == "none")]
    rows += [(p.title, _value(config.get(p.name))) for p in RUN_PARAMS]

    view = config.get("view")
    target = "the whole dataset" if view == "dataset" else f"a view ({len(view)} stages)"
    fields = [("clusters", config["cluster_field"]),
              ("groups", config.get("group_field")),
              ("distances", config.get("distance_field")),
              ("names", (config.get("labels") or {}).get("label_field")),
              ("group names", (config.get("labels") or {}).get("group_label_field"))]
    lines = [
        f"**{method.label if method else config['method']}** on `"
        f"{config.get('embeddings_field')}`, {target}: "
        f"{config.get('num_samples', 0):,} samples clustered into "
        f"{config.get('num_clusters')} clusters, {config.get('num_skipped', 0):,} "
        "skipped (no embedding).",
        "Fields: " + ", ".join(f"{what} `{f}`" for what, f in fields if f) + ".",
        f"Created {info['timestamp']} with FiftyOne {info['fiftyone_version']}, "
        f"plugin {info['plugin_version']}.",
        _table(("Parameter", "Value"), rows),
        _table(("Quality", "Value"), quality_rows(info["metrics"] or {})),
        _table(("Stage", "Seconds"), [(t["stage"], f"{t['seconds']:.2f}")
                                      for t in info["timings"]]),
    ]
    return "\n\n".join(lines)


def quality_rows(metrics):
    """``(label, value)`` of each quality metric the run recorded."""
    rows = [(label, f"{metrics[key]:.1%}" if key == "noise_fraction" else _value(metrics[key]))
            for key, label in _METRICS if metrics.get(key) is not None]
    truth = metrics.get("ground_truth") or {}
    rows += [(f"{label} against the ground truth", _value(truth[key]))
             for key, label in _TRUTH if truth.get(key) is not None]
    return rows


def _value(value):
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _table(header, rows):
    cells = lambda row: "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |"  # noqa: E731
    return "\n".join([cells(header), cells(["---"] * len(header))] + [cells(r) for r in rows])


def activity(dataset):
    """The plugin's runs on ``dataset`` that are queued or executing: each
    ``{operator, run_key, state, progress, label}``, progress (0 to 1) and
    label as the delegated operation reports them; runs executing now in
    another process (the App, Python) are found by their run key's lease."""
    from fiftyone.operators.delegated import DelegatedOperationService

    service = DelegatedOperationService()
    found, seen = [], set()
    for state in ("running", "queued"):
        for op in service.list_operations(dataset_name=dataset.name, run_state=state):
            if not (op.operator or "").startswith(PLUGIN + "/"):
                continue
            seen.add(str(op.id))
            params = op.context.params if op.context is not None else {}
            status = op.status
            found.append(dict(operator=op.operator.rsplit("/", 1)[-1],
                              run_key=params.get("run_key") or params.get("run_a"),
                              state=state, progress=getattr(status, "progress", None),
                              label=getattr(status, "label", None)))
    for lease in transactions.holders(dataset):
        if lease["operation"] not in seen:
            found.append(dict(operator=lease["what"], run_key=lease["run_key"],
                              state="running", progress=None,
                              label=f"since {lease['started_at']:%H:%M:%S} UTC"))
    return found
