"""Cluster Lab: cluster a dataset's embeddings and name the clusters.

Operators only; the work lives in ``clustering/`` and ``labeling/``.
"""

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from .clustering import app, display, embeddings, progress, runs
from .clustering import request as clustering_request
from .clustering.features import PREPARE_PARAMS
from .clustering.methods import METHODS
from .clustering.params import mark_invalid
from .labeling import request as labeling_request


class ComputeClusters(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="compute_clusters",
            label="Compute clusters",
            description="Cluster the samples by an embeddings field",
            dynamic=True,
            # the declared parameters validate everything, with messages that
            # name the parameter; FiftyOne's generic type checks would only
            # reject Python values such as normalize=True first
            disable_schema_validation=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_delegation(self, ctx):
        return bool(ctx.params.get("delegate", False))

    def resolve_input(self, ctx):
        inputs = types.Object()
        target = ctx.target_view()
        params = ctx.params
        _, errors = clustering_request.validate(
            target, params, count_samples=app.worth_counting(ctx))
        shown = app.typed_errors(errors, params)

        inputs.str("run_key", label="Run key", required=True,
                   description="A name for this run (a Python identifier)")
        app.mark(inputs, "run_key", shown("run_key"))

        fields = embeddings.vector_fields(target)
        if not fields:
            inputs.view("no_vectors", types.Warning(
                label="No embeddings field",
                description="This dataset has no field holding vectors. Compute "
                "embeddings first, e.g. dataset.compute_embeddings(model, "
                "embeddings_field='embeddings').",
            ))
            return types.Property(inputs, view=types.View(label="Compute clusters"))
        choices = types.Dropdown()
        for field in fields:
            choices.add_choice(field, label=field)
        inputs.enum("embeddings", fields, required=True, label="Embeddings field",
                    description="The sample field holding the vectors to cluster",
                    view=choices)
        app.mark(inputs, "embeddings", shown("embeddings"))

        methods = types.Dropdown()
        for method in METHODS.values():
            methods.add_choice(method.name, label=method.label, description=method.help)
        inputs.enum("method", list(METHODS), default="kmeans",
                    label="Method", view=methods)
        app.mark(inputs, "method", errors.get("method"))

        method = METHODS.get(params.get("method") or "kmeans", METHODS["kmeans"])
        auto_k = params.get(method.key("n_clusters")) in (None, "", "auto")
        for param in method.params:
            if param.name in ("k_min", "k_max") and not auto_k:
                continue
            key = method.key(param.name)
            param.add_to_form(inputs, key, error=shown(key))

        inputs.view("prepare_header", types.Header(
            label="Feature preparation", divider=True))
        for param in PREPARE_PARAMS + clustering_request.RUN_PARAMS:
            if param.name == "n_components" and params.get("reduce") == "none":
                continue
            param.add_to_form(inputs, param.name, error=shown(param.name))

        run_key = params.get("run_key") or "<run_key>"
        inputs.view("output_header", types.Header(label="Output", divider=True))
        inputs.str("cluster_field", label="Cluster field", required=False,
                   default=f"{run_key}_cluster",
                   description="Sample field that receives the cluster ids")
        app.mark(inputs, "cluster_field", shown("cluster_field"))
        inputs.str("distance_field", label="Distance field", required=False,
                   description="Optional sample field that receives each sample's "
                   "distance to its cluster centre (sort by it: typical first)")
        app.mark(inputs, "distance_field", shown("distance_field"))
        truth = types.Dropdown()
        for name in app.truth_fields(target):
            truth.add_choice(name, label=name)
        inputs.enum("ground_truth", truth.values(), required=False,
                    label="Ground truth field",
                    description="Optional field with true classes: the run then "
                    "records ARI, NMI, homogeneity and completeness", view=truth)
        inputs.bool("overwrite", default=False, label="Overwrite",
                    description="Replace an existing run with this key",
                    view=types.CheckboxView())
        inputs.bool("delegate", default=False, label="Delegate",
                    description="Queue the run for `fiftyone delegated launch`",
                    view=types.CheckboxView())
        return types.Property(inputs, view=types.View(label="Compute clusters"))

    def execute(self, ctx):
        from .clustering import pipeline

        target = ctx.target_view()
        request, errors = clustering_request.validate(target, ctx.params, count_samples=False)
        clustering_request.raise_errors(errors)
        summary = pipeline.run(target, request, report=progress.reporter(ctx))
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        summary["summary"] = display.summary_markdown(summary)
        return summary

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("summary", label="Summary", view=types.MarkdownView())
        outputs.int("num_clusters", label="Clusters")
        outputs.int("num_skipped", label="Samples skipped (no embedding)")
        result = ctx.results or {}
        if result.get("sizes"):
            display.add_sizes_plot(outputs, "sizes_plot", result["sizes"])
        if result.get("sweep"):
            display.add_sweep_plot(outputs, "sweep_plot", result["sweep"])
        return types.Property(outputs, view=types.View(label="Clusters computed"))

    def __call__(self, sample_collection, run_key, embeddings, method="kmeans",
                 cluster_field=None, overwrite=False, delegate=False, progress=None,
                 **kwargs):
        """Clusters ``sample_collection`` by ``embeddings``; method parameters
        as ``<method>__<param>``. Returns the run summary (or, delegated, the
        queued operation). ``progress`` shows a progress bar (default:
        ``fo.config.show_progress_bars``)."""
        if progress is None:
            progress = fo.config.show_progress_bars
        unknown = sorted(set(kwargs) - clustering_request.known_keys())
        if unknown:
            raise TypeError(
                f"compute_clusters() got unknown parameter(s) {', '.join(unknown)}; "
                "method parameters are named <method>__<param>, e.g. "
                "kmeans__n_clusters."
            )
        foreign = sorted(k for k in kwargs if "__" in k and not k.startswith(method + "__"))
        if foreign:
            raise TypeError(
                f"compute_clusters() got {', '.join(foreign)}, which do not "
                f"belong to method '{method}'."
            )
        params = dict(run_key=run_key, embeddings=embeddings, method=method,
                      cluster_field=cluster_field, overwrite=overwrite,
                      delegate=delegate, progress=progress, **kwargs)
        return app.invoke(self, sample_collection, params, delegate)


class DeleteClusteringRun(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="delete_clustering_run",
            label="Delete clustering run",
            description="Delete a clustering run and every field it wrote",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        app.run_choice(inputs, ctx)
        key = ctx.params.get("run_key")
        if key in runs.list_runs(ctx.dataset):
            fields = runs.run_fields(ctx.dataset.get_run_info(key).config)
            inputs.view("deleted_fields", types.Warning(
                label=f"Deletes run '{key}' and fields: {', '.join(fields)}"))
        return types.Property(inputs, view=types.View(label="Delete clustering run"))

    def execute(self, ctx):
        fields = runs.delete(ctx.dataset, ctx.params.get("run_key"))
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return dict(run_key=ctx.params["run_key"], deleted_fields=fields)

    def __call__(self, sample_collection, run_key):
        """Deletes run ``run_key`` and its fields; returns the fields deleted."""
        return app.invoke(self, sample_collection, dict(run_key=run_key), False)


class RenameClusteringRun(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="rename_clustering_run",
            label="Rename clustering run",
            description="Rename a clustering run and the fields named after it",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        app.run_choice(inputs, ctx)
        inputs.str("new_run_key", required=True, label="New run key",
                   description="Fields named after the run (<key>_cluster, ...) "
                   "are renamed with it")
        key, new_key = ctx.params.get("run_key"), ctx.params.get("new_run_key")
        if key and new_key:
            try:
                runs.check_rename(ctx.dataset, key, new_key)
            except ValueError as e:
                app.mark(inputs, "new_run_key", str(e))
        return types.Property(inputs, view=types.View(label="Rename clustering run"))

    def execute(self, ctx):
        key, new_key = ctx.params.get("run_key"), ctx.params.get("new_run_key")
        fields = runs.rename(ctx.dataset, key, new_key)
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return dict(run_key=new_key, renamed_fields=fields)

    def __call__(self, sample_collection, run_key, new_run_key):
        """Renames run ``run_key`` to ``new_run_key`` with its default-named fields."""
        return app.invoke(self, sample_collection,
                          dict(run_key=run_key, new_run_key=new_run_key), False)


class CompareClusteringRuns(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="compare_clustering_runs",
            label="Compare clustering runs",
            description="Agreement (ARI, NMI) between two clustering runs and "
            "which clusters correspond",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        app.run_choice(inputs, ctx, "run_a", "First run")
        app.run_choice(inputs, ctx, "run_b", "Second run")
        return types.Property(inputs, view=types.View(label="Compare clustering runs"))

    def execute(self, ctx):
        from .clustering.compare import compare

        return compare(ctx.dataset, ctx.params.get("run_a"), ctx.params.get("run_b"))

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.int("num_samples", label="Samples in both runs")
        outputs.float("ari", label="Adjusted Rand index")
        outputs.float("nmi", label="Normalized mutual information")
        display.add_clusters_table(outputs, "mapping", [
            ("cluster_a", "Cluster (first run)"), ("size_a", "Size"),
            ("cluster_b", "Best match (second run)"), ("overlap", "Shared"),
            ("share", "Share"),
        ])
        return types.Property(outputs, view=types.View(label="Comparison"))

    def __call__(self, sample_collection, run_a, run_b):
        """Returns ARI, NMI and the cluster mapping between two runs."""
        return app.invoke(self, sample_collection, dict(run_a=run_a, run_b=run_b), False)


class AssignToClusters(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="assign_to_clusters",
            label="Assign to clusters",
            description="Give samples a run has not clustered (new ones, or "
            "outside its view) the nearest of its existing clusters",
            dynamic=True,
            allow_delegated_execution=True,
        )

    def resolve_delegation(self, ctx):
        return bool(ctx.params.get("delegate", False))

    def resolve_input(self, ctx):
        inputs = types.Object()
        ctx.target_view()  # resolving the target adds FiftyOne's target choice to the form
        app.run_choice(inputs, ctx)
        inputs.bool("delegate", default=False, label="Delegate",
                    view=types.CheckboxView())
        return types.Property(inputs, view=types.View(label="Assign to clusters"))

    def execute(self, ctx):
        from .clustering.assign import assign

        result = assign(ctx.target_view(), ctx.params.get("run_key"))
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return result

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.int("num_assigned", label="Samples assigned")
        outputs.int("num_noise", label="Of which noise (-1)")
        return types.Property(outputs, view=types.View(label="Assigned"))

    def __call__(self, sample_collection, run_key, delegate=False):
        """Assigns the samples of ``sample_collection`` that run ``run_key``
        has not clustered to its clusters."""
        return app.invoke(self, sample_collection, dict(run_key=run_key, delegate=delegate),
                          delegate)


class OpenCluster(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="open_cluster",
            label="Open cluster",
            description="Show one cluster's samples, most typical first",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        app.run_choice(inputs, ctx)
        key = ctx.params.get("run_key")
        if key in runs.list_runs(ctx.dataset):
            clusters = ctx.dataset.load_run_results(key, cache=False).clusters
            choices = types.Dropdown()
            for c in clusters:
                name = f" {c['name']}" if c.get("name") else ""
                choices.add_choice(c["id"], label=f"{c['id']}{name} ({c['size']})")
            inputs.enum("cluster", choices.values(), required=True, label="Cluster",
                        view=choices)
        return types.Property(inputs, view=types.View(label="Open cluster"))

    def execute(self, ctx):
        from .clustering.typical import cluster_view

        ctx.ops.set_view(view=cluster_view(
            ctx.dataset, ctx.params.get("run_key"), ctx.params.get("cluster")))


class GetClusteringRunInfo(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="get_clustering_run_info",
            label="Get clustering run info",
            description="Show a clustering run's configuration, clusters and quality",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        app.run_choice(inputs, ctx)
        return types.Property(inputs, view=types.View(label="Clustering run info"))

    def execute(self, ctx):
        return runs.info(ctx.dataset, ctx.params.get("run_key"))

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("run_key", label="Run key")
        outputs.str("timestamp", label="Created")
        outputs.str("fiftyone_version", label="FiftyOne version")
        outputs.str("plugin_version", label="Plugin version")
        outputs.obj("config", label="Config", view=types.JSONView())
        outputs.obj("metrics", label="Quality", view=types.JSONView())
        result = ctx.results or {}
        if result.get("clusters"):
            display.add_sizes_plot(
                outputs, "sizes_plot", [c["size"] for c in result["clusters"]])
        if result.get("sweep"):
            display.add_sweep_plot(outputs, "sweep_plot", result["sweep"])
        display.add_clusters_table(outputs, "clusters", [
            ("id", "Cluster"), ("size", "Size"), ("name", "Name"),
            ("description", "Description"), ("typical", "Most typical samples"),
        ])
        outputs.obj("timings", label="Stage timings (s)", view=types.JSONView())
        return types.Property(outputs, view=types.View(label="Clustering run"))

    def __call__(self, sample_collection, run_key):
        """Returns the run's information as a dict."""
        return app.invoke(self, sample_collection, dict(run_key=run_key), False)


class LabelClustersWithLLM(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="label_clusters_with_llm",
            label="Label clusters with an LLM",
            description="Name each cluster of a clustering run with a vision model",
            dynamic=True,
            # the declared parameters validate everything, naming the parameter
            disable_schema_validation=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
        )

    def resolve_delegation(self, ctx):
        return bool(ctx.params.get("delegate", True))

    def resolve_input(self, ctx):
        inputs = types.Object()
        params = ctx.params
        request, errors = labeling_request.validate(
            ctx.dataset, params, ctx.secrets[labeling_request.SECRET])
        shown = app.typed_errors(errors, params)

        if "api_key" in errors:
            notice = inputs.view("api_key", types.Warning(
                label="No OpenAI API key", description=errors["api_key"]))
            # a queued run needs the key where it will execute, not here
            if ctx.delegated or not params.get("delegate", True):
                mark_invalid(notice, errors["api_key"])
        app.run_choice(inputs, ctx)
        for header, group in labeling_request.form_groups(ctx.dataset, params.get("run_key")):
            inputs.view(header.lower() + "_header", types.Header(label=header, divider=True))
            for param in group:
                param.add_to_form(inputs, param.name, error=shown(param.name))
        return types.Property(inputs, view=types.View(label="Label clusters with an LLM"))

    def execute(self, ctx):
        from .labeling import pipeline

        api_key = ctx.secrets[labeling_request.SECRET]
        request, errors = labeling_request.validate(ctx.dataset, ctx.params, api_key)
        labeling_request.raise_errors(errors)
        summary = pipeline.run(ctx.dataset, request, api_key, report=progress.reporter(ctx))
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return summary

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("summary", label="Summary", view=types.MarkdownView())
        display.add_clusters_table(outputs, "clusters", [
            ("id", "Cluster"), ("size", "Size"), ("name", "Name"),
            ("description", "Description"), ("error", "Error"),
        ])
        return types.Property(outputs, view=types.View(label="Clusters named"))

    def __call__(self, sample_collection, run_key, delegate=True, progress=None,
                 **kwargs):
        """Names the clusters of clustering run ``run_key``; other parameters
        as in the form. Returns the summary or, delegated (the default, as
        naming is slow), the queued operation. ``progress`` shows a progress
        bar (default: ``fo.config.show_progress_bars``)."""
        if progress is None:
            progress = fo.config.show_progress_bars
        unknown = sorted(set(kwargs) - labeling_request.known_keys())
        if unknown:
            raise TypeError(
                f"label_clusters_with_llm() got unknown parameter(s) "
                f"{', '.join(unknown)}; known: "
                f"{', '.join(sorted(labeling_request.known_keys()))}."
            )
        params = dict(run_key=run_key, delegate=delegate, progress=progress, **kwargs)
        return app.invoke(self, sample_collection, params, delegate)


def register(plugin):
    plugin.register(ComputeClusters)
    plugin.register(DeleteClusteringRun)
    plugin.register(RenameClusteringRun)
    plugin.register(CompareClusteringRuns)
    plugin.register(AssignToClusters)
    plugin.register(OpenCluster)
    plugin.register(GetClusteringRunInfo)
    plugin.register(LabelClustersWithLLM)
