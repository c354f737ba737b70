"""The App in headless Chromium: the operator palette, the form, the run's
live progress, its output and plots, the sidebar filter and the run-info
output, as a user clicks through them; a run that fails; a cluster opened
from the run info's table."""

import json
import re

import numpy as np
from playwright.sync_api import expect

from conftest import URI, make_dataset, operator, plugin_module

from .conftest import (
    PROMPT, VIEW, choose, execution_of, fold_stream, form_field, generator_execution_of,
    no_traceback, open_operator, record_progress, recorded_progress, screenshot,
)

RUN_KEY = "app_minibatch"
FIELD = RUN_KEY + "_cluster"
STAGES = ["read", "prepare", "fit", "measure", "map", "write", "done"]


def resolved_with(uri, **params):
    """Matches the App's resolve-type response for a form holding ``params``."""
    def match(response):
        if not response.url.endswith("/operators/resolve-type"):
            return False
        body = json.loads(response.request.post_data)
        return body["operator_uri"] == uri and all(
            body["params"].get(k) == v for k, v in params.items())
    return match


def json_shows(text, name, value):
    """Whether the App's JSON viewer text shows ``name: value`` (it writes
    ``name:type value``, null as NULL, whole floats without decimals)."""
    if value is None:
        shown = "NULL"
    elif isinstance(value, float) and value.is_integer():
        shown = str(int(value))
    else:
        shown = json.dumps(value)
    pattern = rf"\b{re.escape(name)}:\s*([a-z]+\s*)?{re.escape(shown)}(?![\w.])"
    return re.search(pattern, text)


def plot_labelled(dialog, label):
    """The Plotly plot that the output shows under ``label``."""
    return dialog.get_by_text(label, exact=True).locator(
        "xpath=ancestor::div[contains(@class,'MuiGrid-item')][1]").locator(".js-plotly-plot")


def plot_texts(plot):
    """``{class: [(text, box)]}`` of the plot's SVG texts (titles, legend,
    annotations), each box ``(x, y, width, height)`` on the page, and the
    SVG's own box under ``"svg"``."""
    return plot.evaluate("""plot => {
        const box = e => { const r = e.getBoundingClientRect();
                           return [r.x, r.y, r.width, r.height]; };
        const texts = {svg: [["", box(plot.querySelector("svg.main-svg"))]]};
        for (const t of plot.querySelectorAll("text")) {
            const kind = t.getAttribute("class") || "";
            (texts[kind] = texts[kind] || []).push([t.textContent, box(t)]);
        }
        return texts;
    }""")


def overlap(a, b):
    return not (a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or
                a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1])


def test_cluster_from_the_palette_filter_a_cluster_and_show_the_run(app, page, digits):
    compute = URI + "compute_clusters"
    page.goto(f"{app.url}/datasets/{digits.name}")
    expect(page.locator("[data-cy=entry-counts]")).to_have_text(f"{len(digits):,} samples")
    expect(page.locator("[data-cy=looker]").first).to_be_visible()
    screenshot(page, "01-dataset")

    prompt = open_operator(page, "compute_clusters", "02-palette")
    form_field(prompt, "Run key").locator("input").fill(RUN_KEY)
    choose(page, prompt, "Embeddings field", "pixels")
    choose(page, prompt, "Method", "minibatch_kmeans")
    # the method's own parameters replace k-means' in the form
    batch_size = next(p.default for p in plugin_module("clustering.methods").METHODS[
        "minibatch_kmeans"].params if p.name == "batch_size")
    expect(form_field(prompt, "Batch size").locator("input")).to_have_value(str(batch_size))
    expect(prompt.get_by_text("Algorithm", exact=True)).to_have_count(0)
    # N clusters stays empty: k is chosen over Min k..Max k, shown only then
    expect(form_field(prompt, "N clusters").locator("input")).to_have_value("")
    expect(form_field(prompt, "Min k (auto)").locator("input")).to_have_value("2")
    expect(form_field(prompt, "Max k (auto)").locator("input")).to_have_value("20")
    with page.expect_response(resolved_with(
            compute, run_key=RUN_KEY, embeddings="pixels", method="minibatch_kmeans",
            reduce="none")):
        choose(page, prompt, "Reduce", "none")
    expect(prompt.locator("[aria-invalid=true]")).to_have_count(0)
    expect(prompt.get_by_role("button", name="Execute")).to_be_enabled()
    screenshot(page, "03-compute-form")

    # while the run works, a second dialog shows its progress and stage
    view = page.locator(VIEW)
    record_progress(page)
    with page.expect_response(generator_execution_of(compute), timeout=180_000) as executed:
        prompt.get_by_role("button", name="Execute").click()
    expect(view.locator("[role=progressbar]")).to_be_visible()
    expect(view).to_contain_text(re.compile(r"fit \(k=\d+\)"))
    screenshot(page, "04-compute-progress")
    outcome = fold_stream(executed.value.text())
    assert outcome["error"] is None, outcome["error"]
    sent = json.loads(executed.value.request.post_data)["params"]
    assert sent["cluster_field"] == FIELD  # the default followed the run key
    assert sent.get("minibatch_kmeans__n_clusters") in (None, "")

    # then the output replaces the bar in that dialog
    expect(view.locator("[role=progressbar]")).to_have_count(0, timeout=120_000)
    expect(view).to_contain_text("was chosen automatically")
    digits.reload()
    config = digits.get_run_info(RUN_KEY).config
    k = config.params["n_clusters"]
    assert config.method == "minibatch_kmeans" and 2 <= k <= 20
    expect(view).to_contain_text(f"{k} clusters in {FIELD} (minibatch_kmeans)")
    screenshot(page, "05-compute-output")

    # every state shown was one the server sent, in stage order, moving forward
    shown = recorded_progress(page)
    sent_labels = {p["label"] for p in outcome["progress"]}
    assert len({label for _, label in shown}) >= 3, shown
    assert {label for _, label in shown} <= sent_labels, (shown, sent_labels)
    assert any(label.startswith("fit (k=") for _, label in shown), shown
    assert [p for p, _ in shown] == sorted(p for p, _ in shown), shown
    stages = [STAGES.index(label.split(" ")[0]) for _, label in shown]
    assert stages == sorted(stages), shown

    # the sweep plot: the chosen k marked, axes titled, both curves named,
    # every text inside the plot and none over another
    plot = plot_labelled(view, "Choice of the number of clusters")
    plot.scroll_into_view_if_needed()
    expect(plot.locator(".annotation-text")).to_have_text(f"chosen k = {k}")
    texts = plot_texts(plot)
    assert [t for t, _ in texts["xtitle"]] == ["k (number of clusters)"], texts
    assert [t for t, _ in texts["ytitle"]] == ["silhouette"], texts
    assert [t for t, _ in texts["y2title"]] == ["inertia"], texts
    assert sorted(t for t, _ in texts.get("legendtext", [])) == [
        "inertia (right)", "silhouette (left)"], texts
    svg = texts["svg"][0][1]
    boxes = [(t, b) for kind in ("xtitle", "ytitle", "y2title", "legendtext",
                                 "annotation-text") for t, b in texts[kind]]
    for text, (x, y, w, h) in boxes:
        assert w > 0 and h > 0, (text, texts)
        assert svg[0] <= x and x + w <= svg[0] + svg[2], (text, texts)
        assert svg[1] <= y and y + h <= svg[1] + svg[3], (text, texts)
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            assert not overlap(box_a, box_b), (a, b, texts)
    screenshot(plot, "06-sweep-plot")

    counts = digits.count_values(FIELD)
    assert sum(counts.values()) == len(digits) and len(counts) == k

    view.get_by_role("button", name="Done").click()
    expect(view).to_be_hidden()
    expect(prompt).to_be_hidden()
    expect(page.locator(f"[data-cy=sidebar-field-{FIELD}]")).to_be_visible()
    screenshot(page, "07-sidebar")

    # filter on the smallest cluster: the App counts as many samples as the
    # database holds for it, and every thumbnail shown carries that value
    value = min(counts, key=counts.get)
    page.locator(f"[data-cy=sidebar-field-arrow-enabled-{FIELD}]").click()
    page.locator(f"[data-cy=selector-sidebar-search-{FIELD}]").fill(value)
    page.locator(f"[data-cy=selector-results-container-sidebar-search-{FIELD}]").get_by_text(
        value, exact=True).click()
    # the App recounts after the filter; on a loaded 2-core machine that took over 5 s
    expect(page.locator("[data-cy=entry-counts]")).to_have_text(f"{counts[value]:,} samples",
                                                                timeout=20_000)
    page.locator(f"[data-cy=checkbox-{FIELD}]").click()
    page.wait_for_function("""([field, value]) => {
        const shown = document.querySelectorAll("[data-cy=looker]").length;
        const tags = [...document.querySelectorAll(`[data-cy="tag-${field}"]`)];
        return shown > 0 && tags.length === shown && tags.every(t => t.innerText === value);
    }""", arg=[FIELD, value])
    screenshot(page, "08-filtered")

    prompt = open_operator(page, "get_clustering_run_info", "09-palette")
    choose(page, prompt, "Clustering run", RUN_KEY)
    screenshot(page, "10-run-info-form")
    with page.expect_response(execution_of(URI + "get_clustering_run_info")) as executed:
        prompt.get_by_role("button", name="Execute").click()
    assert executed.value.json()["error"] is None
    expect(prompt).to_contain_text("FiftyOne version")
    text = prompt.inner_text()
    assert json_shows(text, "method", "minibatch_kmeans"), text
    assert json_shows(text, "cluster_field", FIELD), text
    for name, param in config.params.items():
        assert json_shows(text, name, param), (name, param, text)
    expect(plot_labelled(prompt, "Choice of the number of clusters").locator(
        ".annotation-text")).to_have_text(f"chosen k = {k}")
    screenshot(page, "11-run-info")


def test_a_failed_run_shows_the_plugins_message_and_no_traceback(app, page, digits):
    compute = URI + "compute_clusters"
    key = "app_all_noise"
    page.goto(f"{app.url}/datasets/{digits.name}")
    expect(page.locator("[data-cy=entry-counts]")).to_have_text(f"{len(digits):,} samples")

    # HDBSCAN asked for one cluster as large as the dataset: every sample is noise
    prompt = open_operator(page, "compute_clusters")
    form_field(prompt, "Run key").locator("input").fill(key)
    choose(page, prompt, "Embeddings field", "pixels")
    choose(page, prompt, "Method", "hdbscan")
    choose(page, prompt, "Reduce", "none")
    with page.expect_response(resolved_with(
            compute, run_key=key, method="hdbscan", reduce="none",
            hdbscan__min_cluster_size=len(digits))):
        form_field(prompt, "Min cluster size").locator("input").fill(str(len(digits)))
    expect(prompt.locator("[aria-invalid=true]")).to_have_count(0)
    with page.expect_response(generator_execution_of(compute), timeout=180_000) as executed:
        prompt.get_by_role("button", name="Execute").click()

    view = page.locator(VIEW)
    expect(view).to_contain_text("The operation did not run", timeout=120_000)
    expect(view).to_contain_text("every sample is noise")
    expect(view).to_contain_text("hdbscan__min_cluster_size")  # what to change
    expect(page.locator("#notistack-snackbar")).to_contain_text("every sample is noise")
    outcome = fold_stream(executed.value.text())
    assert "every sample is noise" in outcome["error"], outcome
    screenshot(page, "12-failed-run")
    no_traceback(page)
    view.get_by_role("button", name="Done").click()
    expect(view).to_be_hidden()
    expect(page.locator(PROMPT)).to_be_hidden()
    no_traceback(page)

    digits.reload()  # nothing was written
    assert key not in digits.list_runs() and not digits.has_field(key + "_cluster")


def test_open_a_cluster_from_the_run_info_table(app, page):
    """The "Open" button of a row of get_clustering_run_info's clusters table
    shows that cluster's samples in the grid."""
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=[150, 90, 60], n_features=8, cluster_std=0.3, random_state=3)
    dataset = make_dataset(X.astype(np.float32), y)
    try:
        operator("compute_clusters")(dataset, run_key="rows", embeddings="embedding",
                                     method="kmeans", kmeans__n_clusters=3, reduce="none",
                                     random_state=0)
        clusters = dataset.load_run_results("rows", cache=False).clusters
        assert [c["size"] for c in clusters] == [150, 90, 60]
        page.goto(f"{app.url}/datasets/{dataset.name}")
        expect(page.locator("[data-cy=entry-counts]")).to_have_text("300 samples")

        prompt = open_operator(page, "get_clustering_run_info")
        choose(page, prompt, "Clustering run", "rows")
        with page.expect_response(execution_of(URI + "get_clustering_run_info")):
            prompt.get_by_role("button", name="Execute").click()
        rows = prompt.locator("table").first.locator("tbody tr")
        expect(rows).to_have_count(3)
        screenshot(page, "13-run-info-table")
        with page.expect_response(execution_of(URI + "open_cluster")) as opened:
            rows.nth(1).get_by_role("button", name="Open").click()
        sent = json.loads(opened.value.request.post_data)["params"]
        assert opened.value.ok, (sent, opened.value.text()[:3000])
        assert opened.value.json().get("error") is None, (sent, opened.value.json())
        expect(page.locator("[data-cy=entry-counts]")).to_have_text("90 samples")
        no_traceback(page)
        prompt.get_by_role("button", name="Close").click()
        expect(prompt).to_be_hidden()
        expect(page.locator("[data-cy=entry-counts]")).to_have_text("90 samples")
        screenshot(page, "14-cluster-opened")
    finally:
        # the App server keeps a view an operator set: leave none behind
        page.reload()
        page.locator("[data-cy=btn-clear-view-bar]").click()
        expect(page.locator("[data-cy=entry-counts]")).to_have_text("300 samples")
        dataset.delete()
