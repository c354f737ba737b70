"""Cluster Lab: cluster a dataset's embeddings and name the clusters.

Operators only, and the Clusters panel (``clustering/clusters_panel.py``):
each operator builds its form from the declared parameters and translates
to and from the plain functions in ``clustering/api.py``.
"""

import os

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .clustering import (actions, api, app, assign, display, duplicates, embeddings, internals,
                         noise, runs, transactions, units)
from .clustering import request as clustering_request
from .clustering.clusters_panel import ClustersPanel
from .clustering.compare import RUN_A, RUN_B
from .clustering.features import PREPARE_PARAMS
from .clustering.methods import METHODS
from .clustering.params import mark_invalid
from .labeling import display as labeling_display
from .labeling import manual
from .labeling import request as labeling_request


def _recover(ctx):
    """Finishes what an interrupted run left before the form reads the dataset."""
    if ctx.dataset is not None:
        transactions.recover(ctx.dataset, wait=False)


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
            execute_as_generator=True,
        )

    def resolve_delegation(self, ctx):
        return app.resolve_delegation(ctx, clustering_request.declared("delegate"))

    def resolve_input(self, ctx):
        _recover(ctx)
        inputs = types.Object()
        inputs.view_target(ctx)  # FiftyOne < 1.22 does not add the target choice itself
        target = ctx.target_view()
        params = ctx.params
        _, errors = clustering_request.validate(
            target, params, count_samples=app.worth_counting(ctx))
        shown = app.typed_errors(errors, params)
        declared = clustering_request.declared
        if errors.get("view_target"):
            app.mark(inputs, "view_target", str(errors["view_target"]))

        app.add_param(inputs, declared("run_key"), shown("run_key"))
        patch_fields = units.label_fields(target)
        if patch_fields:
            app.add_param(inputs, units.PATCHES, shown("patches_field"), choices=patch_fields)
        patches_field = params.get("patches_field")
        if patches_field in patch_fields:
            fields = units.vector_attributes(target, patches_field)
        else:
            fields = embeddings.vector_fields(target)
        if not fields and not patch_fields:
            inputs.view("no_vectors", types.Warning(
                label="No embeddings field",
                description="This dataset has no field holding vectors. Compute "
                "embeddings first, e.g. dataset.compute_embeddings(model, "
                "embeddings_field='embeddings')."))
            return types.Property(inputs, view=types.View(label="Compute clusters"))
        app.add_param(inputs, declared("embeddings"), shown("embeddings"), choices=fields)
        app.add_param(inputs, declared("method"), str(errors.get("method") or "") or None)

        method = METHODS.get(params.get("method") or "kmeans", METHODS["kmeans"])
        auto_k = params.get(method.key("n_clusters")) in (None, "", "auto")
        for param in method.params:
            if param.name in ("k_min", "k_max") and not auto_k:
                continue
            key = method.key(param.name)
            app.add_param(inputs, param, shown(key), key=key)

        inputs.view("prepare_header", types.Header(label="Feature preparation", divider=True))
        for param in PREPARE_PARAMS + clustering_request.RUN_PARAMS:
            if param.name == "n_components" and params.get("reduce") == "none":
                continue
            app.add_param(inputs, param, shown(param.name))

        inputs.view("output_header", types.Header(label="Output", divider=True))
        run_key = params.get("run_key") or "<run_key>"
        for param in clustering_request.OUTPUT_PARAMS:
            if param.name == "cluster_field":
                app.add_param(inputs, param, shown(param.name), default=f"{run_key}_cluster")
            elif param.name == "ground_truth":
                app.add_param(inputs, param, shown(param.name),
                              choices=clustering_request.truth_fields(target))
            else:
                app.add_param(inputs, param, shown(param.name))
        app.add_execution(inputs, ctx, declared("delegate"))
        if ctx.executor is None and not self.resolve_delegation(ctx):
            # the App's form, open: a run may follow in this process
            api.expect_compute_clusters(target, params)
        return types.Property(inputs, view=types.View(label="Compute clusters"))

    def execute(self, ctx):
        return app.execute(ctx, lambda report: api.compute_clusters(
            ctx.target_view(), ctx.params, report, internals.operation_id(ctx)),
            output=display.compute_output)

    def resolve_output(self, ctx):
        return display.compute_output(ctx.results or {})

    def __call__(self, sample_collection, run_key, embeddings, method="kmeans", **kwargs):
        """Clusters ``sample_collection`` by ``embeddings``; method parameters
        as ``<method>__<param>``, the others as in the form (see the README).
        Returns the run summary or, with ``delegate=True``, the queued
        operation. Raises ParameterError / InputError naming the parameter."""
        values = dict(run_key=run_key, embeddings=embeddings, method=method, **kwargs)
        app.check_unknown("compute_clusters", kwargs, clustering_request.known_keys(),
                          " (method parameters are named <method>__<param>, e.g. "
                          "kmeans__n_clusters)")
        foreign = sorted(k for k in kwargs if "__" in k and not k.startswith(f"{method}__"))
        if foreign:
            raise TypeError(f"compute_clusters() got {', '.join(foreign)}, which do not "
                            f"belong to method '{method}'.")
        return app.call(
            self, sample_collection, values, clustering_request.EXECUTION_PARAMS,
            lambda report: api.compute_clusters(sample_collection, values, report),
            api.check_compute_clusters)


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
            # naming takes a while: schedule it by default where the App can
            default_choice_to_delegated=internals.scheduling_enabled(),
            execute_as_generator=True,
        )

    def resolve_delegation(self, ctx):
        return app.resolve_delegation(ctx, labeling_request.declared("delegate"))

    def resolve_input(self, ctx):
        _recover(ctx)
        inputs = types.Object()
        params = ctx.params
        _, errors = labeling_request.validate(
            ctx.dataset, params, ctx.secrets[labeling_request.SECRET])
        shown = app.typed_errors(errors, params)

        if "api_key" in errors:
            notice = inputs.view("api_key", types.Warning(
                label="No OpenAI API key", description=str(errors["api_key"])))
            # a queued run needs the key where it will execute, not here
            if not labeling_request.queueing(ctx):
                mark_invalid(notice, str(errors["api_key"]))
        app.run_choice(inputs, ctx)
        for header, group in labeling_request.form_groups(ctx.dataset, params.get("run_key")):
            inputs.view(header.lower() + "_header", types.Header(label=header, divider=True))
            for param in group:
                if param.name == "delegate":
                    app.add_execution(inputs, ctx, param)
                elif param.form:
                    app.add_param(inputs, param, shown(param.name))
        return types.Property(inputs, view=types.View(label="Label clusters with an LLM"))

    def execute(self, ctx):
        api_key = ctx.secrets[labeling_request.SECRET]
        return app.execute(ctx, lambda report: api.label_clusters_with_llm(
            ctx.dataset, ctx.params, api_key, report, internals.operation_id(ctx)),
            output=labeling_display.labeling_output)

    def resolve_output(self, ctx):
        return labeling_display.labeling_output(ctx.results or {})

    def __call__(self, sample_collection, run_key, **kwargs):
        """Names the clusters of clustering run ``run_key``; other parameters
        as in the form (see the README). The API key is the environment's
        OPENAI_API_KEY. Returns the summary or, delegated (the default, as
        naming is slow), the queued operation."""
        app.check_unknown("label_clusters_with_llm", kwargs, labeling_request.known_keys())
        values = dict(run_key=run_key, **kwargs)
        values.setdefault("delegate", labeling_request.declared("delegate").default)
        return app.call(
            self, sample_collection, values, labeling_request.EXECUTION_PARAMS,
            lambda report: api.label_clusters_with_llm(
                sample_collection, values, os.environ.get(labeling_request.SECRET), report),
            api.check_label_clusters_with_llm)


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
        _recover(ctx)
        inputs = types.Object()
        app.run_choice(inputs, ctx)
        return types.Property(inputs, view=types.View(label="Clustering run info"))

    def execute(self, ctx):
        return app.answer(ctx, lambda: api.get_clustering_run_info(ctx.dataset, ctx.params))

    def resolve_output(self, ctx):
        open_uri = self.uri.rsplit("/", 1)[0] + "/open_cluster"
        return app.output(ctx, lambda results: display.info_output(results, open_uri))

    def __call__(self, sample_collection, run_key):
        """Returns the run's information as a dict."""
        return api.get_clustering_run_info(sample_collection, dict(run_key=run_key))


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
        _recover(ctx)
        inputs = types.Object()
        app.run_choice(inputs, ctx, include_leftovers=True)
        key = ctx.params.get("run_key")
        fields = [f for f, owner in runs.leftovers(ctx.dataset).items() if owner == key]
        if key in runs.list_runs(ctx.dataset):
            fields = runs.run_fields(ctx.dataset.get_run_info(key).config) + fields
        if fields:
            inputs.view("deleted_fields", types.Warning(
                label=f"Deletes run '{key}' and fields: {', '.join(fields)}"))
        return types.Property(inputs, view=types.View(label="Delete clustering run"))

    def execute(self, ctx):
        return app.answer(ctx, lambda: api.delete_clustering_run(
            ctx.dataset, ctx.params, internals.operation_id(ctx)), reload=True)

    def resolve_output(self, ctx):
        return app.output(ctx, None)

    def __call__(self, sample_collection, run_key):
        """Deletes run ``run_key`` and its fields; returns the fields deleted."""
        return api.delete_clustering_run(sample_collection, dict(run_key=run_key))


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
        _recover(ctx)
        inputs = types.Object()
        app.run_choice(inputs, ctx)
        app.add_param(inputs, runs.NEW_RUN_KEY)
        key, new_key = ctx.params.get("run_key"), ctx.params.get("new_run_key")
        if key and new_key:
            try:
                runs.check_rename(ctx.dataset, key, new_key)
            except ValueError as e:
                app.mark(inputs, "new_run_key", str(e))
        return types.Property(inputs, view=types.View(label="Rename clustering run"))

    def execute(self, ctx):
        return app.answer(ctx, lambda: api.rename_clustering_run(
            ctx.dataset, ctx.params, internals.operation_id(ctx)), reload=True)

    def resolve_output(self, ctx):
        return app.output(ctx, None)

    def __call__(self, sample_collection, run_key, new_run_key):
        """Renames run ``run_key`` to ``new_run_key`` with its default-named fields."""
        return api.rename_clustering_run(
            sample_collection, dict(run_key=run_key, new_run_key=new_run_key))


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
        _recover(ctx)
        inputs = types.Object()
        app.run_choice(inputs, ctx, RUN_A)
        app.run_choice(inputs, ctx, RUN_B)
        return types.Property(inputs, view=types.View(label="Compare clustering runs"))

    def execute(self, ctx):
        return app.answer(ctx, lambda: api.compare_clustering_runs(ctx.dataset, ctx.params))

    def resolve_output(self, ctx):
        return app.output(ctx, display.compare_output)

    def __call__(self, sample_collection, run_a, run_b):
        """Returns ARI, NMI and the cluster mapping between two runs."""
        return api.compare_clustering_runs(sample_collection, dict(run_a=run_a, run_b=run_b))


class AssignToClusters(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="assign_to_clusters",
            label="Assign to clusters",
            description="Give samples a run has not clustered (new ones, or "
            "outside its view) the nearest of its existing clusters",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            execute_as_generator=True,
        )

    def resolve_delegation(self, ctx):
        return app.resolve_delegation(ctx, assign.EXECUTION_PARAMS[0])

    def resolve_input(self, ctx):
        _recover(ctx)
        inputs = types.Object()
        inputs.view_target(ctx)  # FiftyOne < 1.22 does not add the target choice itself
        app.run_choice(inputs, ctx)
        app.add_execution(inputs, ctx, assign.EXECUTION_PARAMS[0])
        return types.Property(inputs, view=types.View(label="Assign to clusters"))

    def execute(self, ctx):
        return app.execute(ctx, lambda report: api.assign_to_clusters(
            ctx.target_view(), ctx.params, report, internals.operation_id(ctx)),
            output=display.assign_output)

    def resolve_output(self, ctx):
        return display.assign_output(ctx.results or {})

    def __call__(self, sample_collection, run_key, delegate=False, progress=None):
        """Assigns the samples of ``sample_collection`` that run ``run_key``
        has not clustered to its clusters."""
        values = dict(run_key=run_key, delegate=delegate, progress=progress)
        return app.call(
            self, sample_collection, values, assign.EXECUTION_PARAMS,
            lambda report: api.assign_to_clusters(sample_collection, values, report),
            api.check_assign_to_clusters)


class OpenCluster(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="open_cluster",
            label="Open cluster",
            description="Show one cluster's (or group's) samples, most typical first",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        _recover(ctx)
        inputs = types.Object()
        if display.clicked_row(ctx.params):  # run info's clusters table: no form
            return types.Property(inputs)
        app.run_choice(inputs, ctx)
        app.cluster_choice(inputs, ctx, with_groups=True)
        return types.Property(inputs, view=types.View(label="Open cluster"))

    def execute(self, ctx):
        view = app.answer(ctx, lambda: api.open_cluster(
            ctx.dataset, display.clicked_cluster(ctx.dataset, ctx.params)))
        if not isinstance(view, dict):
            ctx.ops.set_view(view=view)

    def resolve_output(self, ctx):
        return app.output(ctx, None)

    def __call__(self, sample_collection, run_key, cluster):
        """The view of cluster ``cluster`` of run ``run_key`` (or of a group
        of its clusters: "g0", "g1", ...), most typical first."""
        return api.open_cluster(sample_collection, dict(run_key=run_key, cluster=cluster))


class NameCluster(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="name_cluster",
            label="Name a cluster",
            description="Give one cluster of a clustering run a name (and a "
            "description) by hand",
            dynamic=True,
        )

    def resolve_input(self, ctx):
        _recover(ctx)
        inputs = types.Object()
        app.run_choice(inputs, ctx)
        entry = app.cluster_choice(inputs, ctx).get(ctx.params.get("cluster")) or {}
        app.add_param(inputs, manual.NAME, default=entry.get("name"))
        app.add_param(inputs, manual.DESCRIPTION, default=entry.get("description"))
        return types.Property(inputs, view=types.View(label="Name a cluster"))

    def execute(self, ctx):
        named = app.answer(ctx, lambda: api.name_cluster(
            ctx.dataset, ctx.params, internals.operation_id(ctx)), reload=True)
        if internals.from_app(ctx) and not named.get("error"):
            ctx.ops.notify(labeling_display.named_message(named), variant="success")
        return named

    def resolve_output(self, ctx):
        return app.output(ctx, None)

    def __call__(self, sample_collection, run_key, cluster, name, description=None):
        """Names cluster ``cluster`` of run ``run_key`` by hand (cleaned and
        made distinct as the model's names are); returns what was recorded."""
        return api.name_cluster(sample_collection, dict(
            run_key=run_key, cluster=cluster, name=name, description=description))


class _ClusterAction(foo.Operator):
    """An operator acting on a clustering run's clusters: its form is the run
    and the declared ``PARAMS``; long ones (with ``EXECUTION`` parameters:
    delegate, progress) show progress and can be scheduled. Subclasses give
    ``check`` (what the form and the run refuse), ``run`` and, for long
    ones, ``queue_check`` (what is refused before a run is queued)."""

    NAME = LABEL = DESCRIPTION = None
    PARAMS = EXECUTION = ()

    @property
    def config(self):
        long = bool(self.EXECUTION)
        return foo.OperatorConfig(
            name=self.NAME, label=self.LABEL, description=self.DESCRIPTION, dynamic=True,
            # the declared parameters validate everything, naming the parameter
            disable_schema_validation=True,
            allow_immediate_execution=True, allow_delegated_execution=long,
            execute_as_generator=long,
        )

    def resolve_delegation(self, ctx):
        return app.resolve_delegation(ctx, self.EXECUTION[0]) if self.EXECUTION else False

    def resolve_input(self, ctx):
        _recover(ctx)
        inputs = types.Object()
        app.action_form(inputs, ctx, self.PARAMS, self.check, self.form_changes(ctx))
        if self.EXECUTION:
            app.add_execution(inputs, ctx, self.EXECUTION[0])
        return types.Property(inputs, view=types.View(label=self.LABEL))

    def form_changes(self, ctx):
        """``{param name: add_param changes}`` known only from the form's values."""
        return None

    def execute(self, ctx):
        def work(report):
            return self.run(ctx.dataset, ctx.params, report, internals.operation_id(ctx))
        if self.EXECUTION:
            return app.execute(ctx, work, output=display.summary_output(self.LABEL))
        return app.answer(ctx, lambda: work(None), reload=True)

    def resolve_output(self, ctx):
        return app.output(ctx, display.summary_output(self.LABEL))

    def __call__(self, sample_collection, run_key, **kwargs):
        """Acts on run ``run_key``'s clusters; parameters as in the form (see
        the README). Returns the outcome as a dict or, with ``delegate=True``,
        the queued operation. Raises ParameterError / InputError naming the
        parameter."""
        app.check_unknown(self.NAME, kwargs, {p.name for p in self.PARAMS + self.EXECUTION})
        values = dict(run_key=run_key, **kwargs)
        if not self.EXECUTION:
            return self.run(sample_collection, values, None, None)
        return app.call(self, sample_collection, values, self.EXECUTION,
                        lambda report: self.run(sample_collection, values, report, None),
                        self.queue_check)


class FindClusterDuplicates(_ClusterAction):
    NAME, LABEL = "find_cluster_duplicates", "Find duplicates in clusters"
    DESCRIPTION = ("Mark near-duplicate samples within each cluster of a run, keeping "
                   "the most typical of each group")
    PARAMS, EXECUTION = duplicates.PARAMS, duplicates.EXECUTION_PARAMS
    check = staticmethod(duplicates.check)
    queue_check = staticmethod(api.check_find_cluster_duplicates)

    def run(self, collection, values, report, operation):
        return api.find_cluster_duplicates(collection, values, report, operation)


class SampleClusters(_ClusterAction):
    NAME, LABEL = "sample_clusters", "Sample clusters"
    DESCRIPTION = ("Take a few samples of each cluster (most typical, or spread) as a "
                   "saved view or a tag")
    PARAMS = actions.SAMPLE_PARAMS
    check = staticmethod(actions.check_sample)

    def form_changes(self, ctx):
        return {"name": dict(default=f"{ctx.params.get('run_key') or '<run_key>'}_sample")}

    def run(self, collection, values, report, operation):
        return api.sample_clusters(collection, values, operation)


class TagClusters(_ClusterAction):
    NAME, LABEL = "tag_clusters", "Tag clusters"
    DESCRIPTION = "Add a sample tag to every sample of chosen clusters, or remove it"
    PARAMS = actions.TAG_PARAMS
    check = staticmethod(actions.check_tag)

    def form_changes(self, ctx):
        entries = app.cluster_entries(ctx.dataset, ctx.params.get("run_key"))
        return {"clusters": dict(choices=list(entries), labels=[
            app.cluster_label(cid, entry) for cid, entry in entries.items()])}

    def run(self, collection, values, report, operation):
        return api.tag_clusters(collection, values, operation)


class ReassignNoise(_ClusterAction):
    NAME, LABEL = "reassign_noise", "Reassign noise"
    DESCRIPTION = ("Move HDBSCAN's noise samples to their nearest cluster within a "
                   "distance limit, or put them back")
    PARAMS, EXECUTION = noise.PARAMS, noise.EXECUTION_PARAMS
    check = staticmethod(noise.check)
    queue_check = staticmethod(api.check_reassign_noise)

    def run(self, collection, values, report, operation):
        return api.reassign_noise(collection, values, report, operation)


def register(plugin):
    plugin.register(ComputeClusters)
    plugin.register(DeleteClusteringRun)
    plugin.register(RenameClusteringRun)
    plugin.register(CompareClusteringRuns)
    plugin.register(AssignToClusters)
    plugin.register(OpenCluster)
    plugin.register(GetClusteringRunInfo)
    plugin.register(LabelClustersWithLLM)
    plugin.register(NameCluster)
    plugin.register(FindClusterDuplicates)
    plugin.register(SampleClusters)
    plugin.register(TagClusters)
    plugin.register(ReassignNoise)
    plugin.register(ClustersPanel)
