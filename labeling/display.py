"""How a naming run is shown in the App: what was named, and what failed."""


def summary_markdown(summary):
    """A few lines on the naming run, failures spelled out."""
    lines = [
        f"**{summary['num_named']} of {summary['num_requested']} clusters named** "
        f"by `{summary['model']}` into `{summary['label_field']}` "
        f"({summary['seconds']:.1f} s, {summary['usage']['total_tokens']:,} tokens).",
    ]
    named = [g for g in summary.get("groups") or [] if g["name"]]
    if named:
        lines.append("Groups: " + "; ".join(
            f"{g['id']} · {g['name']} (clusters {', '.join(g['clusters'])})" for g in named)
            + ".")
    if summary["num_already_named"]:
        lines.append(
            f"{summary['num_already_named']} cluster(s) already had a name and were "
            "left as they were; set relabel to name them again.")
    if summary["failed"]:
        failed = "\n".join(f"- cluster {f['id']}: {f['error']}" for f in summary["failed"])
        lines.append(
            f"**{len(summary['failed'])} cluster(s) failed**; run again to retry "
            f"only those:\n\n{failed}")
    return "\n\n".join(lines)


def named_message(result):
    """What the App says once a cluster is named by hand."""
    return f"Cluster {result['cluster']} of run '{result['run_key']}' is now named " \
        f"'{result['name']}'."


def labeling_output(result):
    """What the App shows after label_clusters_with_llm."""
    import fiftyone.operators.types as types

    from ..clustering.display import add_clusters_table

    outputs = types.Object()
    outputs.str("summary", label="Summary", view=types.MarkdownView())
    add_clusters_table(outputs, "clusters", [
        ("id", "Cluster"), ("size", "Size"), ("name", "Name"),
        ("description", "Description"), ("error", "Error"),
    ])
    return types.Property(outputs, view=types.View(label="Clusters named"))
