"""How clustering results are shown in the App: summaries, tables, plots."""


def summary_markdown(summary):
    """A few lines on what a run found."""
    sizes = summary["sizes"]
    shown = ", ".join(str(s) for s in sizes[:10]) + (" ..." if len(sizes) > 10 else "")
    lines = [
        f"**{summary['num_clusters']} clusters** in `{summary['cluster_field']}` "
        f"({summary['method']}), from {summary['num_samples']:,} samples.",
        f"Sizes, largest first: {shown}.",
    ]
    if summary["noise"] or summary["method"] == "hdbscan":
        lines.append(
            f"Noise (`-1`): {summary['noise']:,} samples "
            f"({summary['noise_fraction']:.1%})."
        )
    if summary["num_skipped"]:
        lines.append(
            f"Skipped {summary['num_skipped']:,} samples without an embedding; "
            "they have no cluster value."
        )
    metrics = summary.get("metrics") or {}
    if metrics.get("silhouette") is not None:
        lines.append(f"Silhouette: {metrics['silhouette']:.3f}.")
    truth = metrics.get("ground_truth")
    if truth:
        lines.append(f"Against ground truth: ARI {truth['ari']:.3f}, NMI {truth['nmi']:.3f}.")
    return "\n\n".join(lines)


def add_sizes_plot(outputs, name, sizes):
    outputs.plot(
        name,
        label="Cluster sizes",
        data=[dict(type="bar", x=[str(i) for i in range(len(sizes))], y=sizes)],
        layout=dict(xaxis=dict(title=dict(text="cluster"), type="category"),
                    yaxis=dict(title=dict(text="samples")), height=300),
    )


def add_sweep_plot(outputs, name, sweep):
    """The automatic choice of k: silhouette and the elbow (inertia)."""
    ks = [row["k"] for row in sweep]
    data = [dict(type="scatter", mode="lines+markers", name="silhouette",
                 x=ks, y=[row["silhouette"] for row in sweep])]
    if any(row["inertia"] is not None for row in sweep):
        data.append(dict(type="scatter", mode="lines+markers", name="inertia",
                         x=ks, y=[row["inertia"] for row in sweep], yaxis="y2"))
    outputs.plot(
        name,
        label="Choice of the number of clusters",
        data=data,
        layout=dict(xaxis=dict(title=dict(text="k")),
                    yaxis=dict(title=dict(text="silhouette")),
                    yaxis2=dict(title=dict(text="inertia"), overlaying="y", side="right"),
                    height=300),
    )


def add_clusters_table(outputs, name, columns):
    import fiftyone.operators.types as types

    table = types.TableView()
    for key, label in columns:
        table.add_column(key, label=label)
    outputs.list(name, types.Object(), label="Clusters", view=table)
