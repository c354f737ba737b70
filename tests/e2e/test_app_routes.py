"""The App server's operator routes over HTTP, called with the bodies the App
sends: the operator list, the form of each method, inline validation errors
and executions whose results land in the dataset."""

import pytest

from conftest import URI, blob_dataset_of, operator, plugin_module, snapshot

METHOD_NAMES = ["kmeans", "minibatch_kmeans", "kmedoids", "birch", "agglomerative", "hdbscan"]


@pytest.fixture(scope="module")
def points():
    """300 samples in three tight 8-D blobs (low-dimensional: not reduced)."""
    dataset = blob_dataset_of(300, 8, centers=3, seed=4, cluster_std=0.3)
    yield dataset
    dataset.delete()


def filled_like_the_app(app, dataset, typed):
    """The params the App sends once the user has typed ``typed``: those
    values plus the default of every field shown, resolved until the form
    settles; returns ``(params, form)``."""
    params = dict(typed)
    for _ in range(5):
        form = app.form(dataset, "compute_clusters", params)
        filled = {k: p["default"] for k, p in form.items() if p.get("default") is not None}
        filled.update(typed)
        if filled == params:
            return params, form
        params = filled
    raise AssertionError(f"the form never settled: {params}")


def invalid(form):
    return {k: p["error_message"] for k, p in form.items() if p.get("invalid")}


def test_the_app_lists_every_operator_of_the_plugin(app, points):
    import fiftyone.plugins as fop

    listed = app.post("/operators", dict(dataset_name=points.name))
    ours = {op["uri"]: op["config"] for op in listed["operators"] if op["uri"].startswith(URI)}
    declared = fop.get_plugin(URI.rstrip("/")).operators
    assert sorted(ours) == sorted(URI + name for name in declared)
    assert not [e for e in listed["errors"] if "clusterlab" in str(e)], listed["errors"]
    compute = ours[URI + "compute_clusters"]
    assert compute["dynamic"] and compute["can_execute"] and not compute["skip_input"]
    assert compute["allow_immediate_execution"] and compute["allow_delegated_execution"]

    options = app.post("/operators/resolve-execution-options", app.body(
        points, "compute_clusters", dict(delegate=True)))
    assert options["allow_delegated_execution"] and not options["allow_immediate_execution"]


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_each_methods_form_shows_its_parameters_and_runs_with_them(app, points, name):
    method = plugin_module("clustering.methods").METHODS[name]
    typed = dict(run_key=f"form_{name}", embeddings="embedding", method=name)
    params, form = filled_like_the_app(app, points, typed)
    assert form["method"]["type"]["values"] == METHOD_NAMES
    assert form["method"]["default"] == "kmeans"
    assert form["embeddings"]["type"]["values"] == ["embedding"]
    assert form["cluster_field"]["default"] == f"form_{name}_cluster"

    shown = {k for k in form if "__" in k}
    assert shown == {method.key(p.name) for p in method.params}
    for param in method.params:
        prop = form[method.key(param.name)]
        assert prop.get("default") == param.default, param.name
        assert prop["view"]["label"] and param.help in prop["view"]["description"]

    if method.needs_k:
        # without n_clusters, k is chosen over k_min..k_max; with it they go
        assert form[method.key("n_clusters")].get("default") is None
        typed[method.key("n_clusters")] = 3
        params, form = filled_like_the_app(app, points, typed)
        assert method.key("k_min") not in form and method.key("k_max") not in form
    assert invalid(form) == {}

    outcome = app.execute(points, "compute_clusters", params)
    assert outcome["error"] is None, outcome["error"]
    points.reload()
    config = points.get_run_info(f"form_{name}").config
    assert config.method == name
    # every value the App sent is what ran; an empty one may be recorded as
    # the value it resolved to (e.g. hdbscan's min_cluster_size)
    assert set(config.params) == {p.name for p in method.params}
    for param in method.params:
        sent = params.get(method.key(param.name), param.default)
        if sent is not None:
            assert config.params[param.name] == sent, param.name
    assert outcome["result"]["params"] == config.params
    counts = points.count_values(f"form_{name}_cluster")
    assert sum(counts.values()) == len(points)
    assert sorted((n for c, n in counts.items() if c != "-1"), reverse=True) == (
        outcome["result"]["sizes"])


def test_inline_errors_then_a_refused_execution_changes_nothing(app, points):
    operator("compute_clusters")(points, run_key="taken", embeddings="embedding",
                                 method="kmeans", kmeans__n_clusters=3)
    typed = dict(run_key="taken", embeddings="embedding", method="kmeans",
                 kmeans__n_clusters=1)
    params, form = filled_like_the_app(app, points, typed)
    errors = invalid(form)
    assert set(errors) == {"run_key", "kmeans__n_clusters"}
    assert "'taken' already exists" in errors["run_key"] and "overwrite" in errors["run_key"]
    assert errors["kmeans__n_clusters"].startswith("'N clusters' (kmeans__n_clusters) must be")
    assert "got 1" in errors["kmeans__n_clusters"]

    too_many = invalid(app.form(points, "compute_clusters", dict(
        params, overwrite=True, kmeans__n_clusters=len(points) + 1)))
    assert list(too_many) == ["kmeans__n_clusters"]
    assert f"only {len(points)} samples have embeddings" in too_many["kmeans__n_clusters"]

    bad_key = invalid(app.form(points, "compute_clusters", dict(params, run_key="2nd run",
                                                                kmeans__n_clusters=3)))
    assert list(bad_key) == ["run_key"] and "Try '_2nd_run'" in bad_key["run_key"]

    fixed = dict(params, overwrite=True, kmeans__n_clusters=3)
    assert invalid(app.form(points, "compute_clusters", fixed)) == {}

    # the App keeps Execute disabled; a client that posts anyway is refused
    before = snapshot(points)
    refused = app.execute(points, "compute_clusters", params, status=500)
    assert "'Run key' (run_key) 'taken' already exists" in refused
    assert snapshot(points) == before

    # a run that fails while it executes shows the plugin's message, no traceback
    failing = app.execute(points, "compute_clusters", dict(
        run_key="all_noise", embeddings="embedding", method="hdbscan", reduce="none",
        hdbscan__min_cluster_size=len(points), hdbscan__min_samples=len(points)))
    assert "every sample is noise" in failing["error"]
    assert "Traceback" not in failing["error"] and "File \"" not in failing["error"]
    assert failing["outputs"]["view"]["label"] == "Not done"
    assert "notify" in failing["requests"]
    assert snapshot(points) == before


def test_execution_on_the_current_view_writes_the_dataset(app, points):
    view = points.skip(100)
    outcome = app.execute(points, "compute_clusters", dict(
        run_key="on_view", embeddings="embedding", method="agglomerative",
        agglomerative__n_clusters=3, view_target="CURRENT_VIEW"), view=view)
    assert outcome["error"] is None and not outcome["delegated"], outcome["error"]
    # the App is told to reload the dataset, so the new field shows at once
    assert "reload_dataset" in outcome["requests"]
    # progress is shown while it runs, stage by stage, up to done
    labels = [p["label"].split(" ")[0] for p in outcome["progress"]]
    assert labels[0] == "read" and labels[-1] == "done", labels
    assert {"fit", "write"} <= set(labels), labels
    fractions = [p["progress"] for p in outcome["progress"]]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0

    points.reload()
    values = points.values("on_view_cluster")
    assert all(v is None for v in values[:100])
    counts = points.count_values("on_view_cluster")
    counts.pop(None)
    assert sum(counts.values()) == 200 == outcome["result"]["num_samples"]
    assert sorted(counts.values(), reverse=True) == outcome["result"]["sizes"]
    config = points.get_run_info("on_view").config
    assert config.view != "dataset" and "Skip" in str(config.view)
    assert "**3 clusters** in `on_view_cluster` (agglomerative)" in outcome["result"]["summary"]
