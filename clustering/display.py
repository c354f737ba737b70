"""How clustering results are shown in the App: summaries, tables, plots."""

_MARGIN = dict(l=70, r=70, t=30, b=60)
_SILHOUETTE, _INERTIA, _CHOSEN = "#1f77b4", "#ff7f0e", "#9e9e9e"
_BAR, _PICKED = _SILHOUETTE, _INERTIA


def summary_markdown(summary):
    """A few lines on what a run found."""
    sizes = summary["sizes"]
    shown = ", ".join(f"{s:,}" for s in sizes[:10]) + (", ..." if len(sizes) > 10 else "")
    params = summary.get("params") or {}
    lines = [
        f"**{summary['num_clusters']} clusters** in `{summary['cluster_field']}` "
        f"({summary['method']}), from {summary['num_samples']:,} samples.",
        f"Sizes, largest first: {shown}",
    ]
    if summary.get("k_chosen_automatically"):
        lines.append(
            f"k = {params.get('n_clusters')} was chosen automatically: the best "
            f"silhouette over k = {params.get('k_min')}..{params.get('k_max')} "
            "(see the plot).")
    found = summary.get("groups") or []
    if found:
        shown = "; ".join(f"{g['id']}: clusters {', '.join(g['clusters'])}" for g in found[:10])
        lines.append(f"**{len(found)} group{'s' * (len(found) != 1)}** of clusters in "
                     f"`{summary['group_field']}`: {shown}" + ("; ..." if len(found) > 10 else "")
                     + ".")
    if summary["noise"] or summary["method"] == "hdbscan":
        lines.append(
            f"Noise (`-1`): {summary['noise']:,} samples "
            f"({summary['noise_fraction']:.1%}).")
    if summary["num_skipped"]:
        lines.append(
            f"Skipped {summary['num_skipped']:,} samples without an embedding; "
            "they have no cluster value.")
    if summary.get("map"):
        lines.append(
            f"Map ({summary['map']['method']}): brain run `{summary['map']['brain_key']}`; "
            f"the Embeddings panel shows it, coloured by `{summary['cluster_field']}`.")
    metrics = summary.get("metrics") or {}
    if metrics.get("silhouette") is not None:
        lines.append(f"Silhouette: {metrics['silhouette']:.3f}.")
    truth = metrics.get("ground_truth")
    if truth:
        lines.append(f"Against ground truth: ARI {truth['ari']:.3f}, NMI {truth['nmi']:.3f}.")
    lines.extend(summary.get("notes") or [])
    return "\n\n".join(lines)


def group_tree_markdown(groups):
    """The run's groups as a tree: each group, then its clusters, with
    sizes and names."""
    def named(name):
        return f" · {name}" if name else ""
    lines = []
    for group in groups:
        lines.append(f"- **Group {group['id']}{named(group['name'])}** "
                     f"({group['size']:,} samples)")
        lines += [f"  - cluster {c['id']}{named(c['name'])} ({c['size']:,})"
                  for c in group["clusters"]]
    return "\n".join(lines)


def add_sizes_plot(outputs, name, sizes, selected=None, **events):
    """A bar per cluster (ids are their rank by size); ``selected`` (an id)
    is drawn apart, ``events`` (e.g. a panel's ``on_click``) are the plot's."""
    ids = [str(i) for i in range(len(sizes))]
    outputs.plot(
        name,
        label="Cluster sizes",
        data=[dict(type="bar", x=ids, y=sizes, name="samples",
                   marker=dict(color=[_PICKED if i == selected else _BAR
                                      for i in ids]))],
        layout=dict(xaxis=dict(title=dict(text="cluster"), type="category", automargin=True),
                    yaxis=dict(title=dict(text="samples"), automargin=True),
                    margin=_MARGIN, height=320),
        **events,
    )


def add_sweep_plot(outputs, name, sweep, chosen=None):
    """The automatic choice of k: silhouette and the elbow (inertia), the
    chosen k marked. Each y-axis title has its curve's colour, and the
    legend is shown (the App hides legends unless a plot asks)."""
    ks = [row["k"] for row in sweep]
    data = [dict(type="scatter", mode="lines+markers", name="silhouette (left)",
                 x=ks, y=[row["silhouette"] for row in sweep],
                 line=dict(color=_SILHOUETTE), marker=dict(color=_SILHOUETTE))]
    if any(row["inertia"] is not None for row in sweep):
        data.append(dict(type="scatter", mode="lines+markers", name="inertia (right)",
                         x=ks, y=[row["inertia"] for row in sweep], yaxis="y2",
                         line=dict(color=_INERTIA), marker=dict(color=_INERTIA)))
    shapes, annotations = [], []
    if chosen is not None:
        shapes.append(dict(type="line", xref="x", yref="paper", x0=chosen, x1=chosen,
                           y0=0, y1=1, line=dict(dash="dash", width=2, color=_CHOSEN)))
        annotations.append(dict(x=chosen, y=1, xref="x", yref="paper", yanchor="bottom",
                                text=f"chosen k = {chosen}", showarrow=False))
    outputs.plot(
        name,
        label="Choice of the number of clusters",
        data=data,
        layout=dict(xaxis=dict(title=dict(text="k (number of clusters)"), automargin=True),
                    yaxis=dict(title=dict(text="silhouette", font=dict(color=_SILHOUETTE)),
                               automargin=True),
                    yaxis2=dict(title=dict(text="inertia", font=dict(color=_INERTIA, size=14)),
                                overlaying="y", side="right", automargin=True),
                    showlegend=True,
                    legend=dict(orientation="h", x=0, xanchor="left", y=-0.3,
                                yanchor="top"),
                    shapes=shapes, annotations=annotations,
                    margin=_MARGIN, height=380),
    )


def add_clusters_table(outputs, name, columns, label="Clusters", row_action=None):
    """A table of ``columns``; ``row_action`` (label, operator uri, event)
    adds a button per row. In an operator's output, clicking it makes the
    App execute the operator with only ``path`` (``name``), ``event`` (the
    action's name: ``event``) and ``row`` (the row's index), never the
    row's values: ``event`` is how the row's context reaches the operator."""
    import fiftyone.operators.types as types

    table = types.TableView()
    for key, title in columns:
        table.add_column(key, label=title)
    if row_action:
        title, uri, event = row_action
        table.add_row_action(event, on_click=uri, label=title)
    outputs.list(name, types.Object(), label=label, view=table)


_OPEN = "open:"  # + run key: the event of the clusters table's "Open" action


def clicked_row(params):
    """Whether ``params`` come from a click on a row of the clusters table."""
    return (str(params.get("event") or "").startswith(_OPEN)
            and isinstance(params.get("row"), int))


def clicked_cluster(dataset, params):
    """``params`` for open_cluster: the form's, or ``run_key`` and
    ``cluster`` of the row clicked in get_clustering_run_info's clusters
    table (its action's name carries the run key, the row index finds the
    cluster: the table lists the run's clusters in order)."""
    if not clicked_row(params):
        return params
    from . import runs

    key = params["event"][len(_OPEN):]
    _, results = runs.get(dataset, key)
    row = params["row"]
    if not 0 <= row < len(results.clusters):
        return dict(run_key=key, cluster=None)
    return dict(run_key=key, cluster=results.clusters[row]["id"])


def compute_output(result):
    """What the App shows after compute_clusters."""
    import fiftyone.operators.types as types

    outputs = types.Object()
    outputs.str("summary", label="Summary", view=types.MarkdownView())
    if result.get("sizes"):
        add_sizes_plot(outputs, "sizes_plot", result["sizes"])
    if result.get("sweep"):
        add_sweep_plot(outputs, "sweep_plot", result["sweep"],
                       (result.get("params") or {}).get("n_clusters"))
    return types.Property(outputs, view=types.View(label="Clusters computed"))


def info_output(result, open_uri=None):
    """What the App shows for get_clustering_run_info: the run's
    facts, its clusters (each opened in the grid with one click when
    ``open_uri`` is given), quality and timings."""
    import fiftyone.operators.types as types

    outputs = types.Object()
    outputs.str("run_key", label="Run key")
    outputs.str("timestamp", label="Created")
    outputs.str("fiftyone_version", label="FiftyOne version")
    outputs.str("plugin_version", label="Plugin version")
    outputs.obj("config", label="Config", view=types.JSONView())
    outputs.obj("metrics", label="Quality", view=types.JSONView())
    if result.get("group_tree"):
        outputs.str("group_tree", label="Groups of clusters", view=types.MarkdownView())
    if result.get("clusters"):
        add_sizes_plot(outputs, "sizes_plot", [c["size"] for c in result["clusters"]])
    if result.get("sweep"):
        add_sweep_plot(outputs, "sweep_plot", result["sweep"],
                       (result.get("config") or {}).get("params", {}).get("n_clusters"))
    add_clusters_table(outputs, "clusters", [
        ("id", "Cluster"), ("size", "Size"), ("name", "Name"),
        ("description", "Description"),
    ], row_action=("Open", open_uri, _OPEN + result["run_key"])
        if open_uri and result.get("run_key") else None)
    add_clusters_table(outputs, "timings", [("stage", "Stage"), ("seconds", "Seconds")],
                       label="Stage timings")
    return types.Property(outputs, view=types.View(label="Clustering run"))


def compare_output(result):
    import fiftyone.operators.types as types

    outputs = types.Object()
    outputs.int("num_samples", label="Samples in both runs")
    outputs.float("ari", label="Adjusted Rand index")
    outputs.float("nmi", label="Normalized mutual information")
    add_clusters_table(outputs, "mapping", [
        ("cluster_a", "Cluster (first run)"), ("size_a", "Size"),
        ("cluster_b", "Best match (second run)"), ("overlap", "Shared"),
        ("share", "Share"),
    ])
    return types.Property(outputs, view=types.View(label="Comparison"))


def assign_output(result):
    import fiftyone.operators.types as types

    outputs = types.Object()
    outputs.int("num_assigned", label="Samples assigned")
    outputs.int("num_noise", label="Of which noise (-1)")
    return types.Property(outputs, view=types.View(label="Assigned"))


def summary_output(label):
    """The App's output of an action on clusters: its summary, under ``label``."""
    def build(result):
        import fiftyone.operators.types as types

        outputs = types.Object()
        outputs.str("summary", label="Summary", view=types.MarkdownView())
        return types.Property(outputs, view=types.View(label=label))
    return build
