"""Scheduling from the App, in Chromium: on an App server started as the
README says (FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true, no API key) the
forms offer Delegate, Schedule queues the run, and a separate
``fiftyone delegated launch`` (the key and base URL in its own environment)
executes it; the page, reloaded, shows what it wrote. On a stock App server
the forms say how to enable scheduling and runs execute at once."""

import json
import uuid

import fiftyone as fo
import pytest
from bson import ObjectId
from playwright.sync_api import expect
from sklearn.metrics import adjusted_rand_score

from conftest import URI, blobs, groups_to_name, operator
from llm_server import LLMServer, asked

from .conftest import (
    APP_LLM_MODEL, VIEW, choose, execution_of, fold_stream, form_field,
    generator_execution_of, no_traceback, open_operator, run_launcher, screenshot,
)

KEY = "sk-e2e-schedule-" + uuid.uuid4().hex
MODEL = "vision-e2e-schedule"
SCHEDULED = "Operation successfully scheduled"


def schedule(page, prompt, uri):
    """Clicks Schedule; returns the id of the delegated operation queued,
    once the App has said it is scheduled."""
    with page.expect_response(generator_execution_of(uri)) as posted:
        prompt.get_by_role("button", name="Schedule").click()
    body = json.loads(posted.value.request.post_data)
    assert body["request_delegation"] is True and body["params"]["delegate"] is True, body
    queued = fold_stream(posted.value.text())
    assert queued["result"]["run_state"] == "queued", queued
    expect(page.locator("#notistack-snackbar")).to_have_text(SCHEDULED)
    expect(prompt).to_be_hidden()
    return ObjectId(queued["result"]["id"]["$oid"])


def sidebar_values(page, field):
    """The values the sidebar lists for string field ``field`` (expanded,
    its search box opened)."""
    page.locator(f"[data-cy=sidebar-field-arrow-enabled-{field}]").click()
    page.locator(f"[data-cy=selector-sidebar-search-{field}]").click()
    results = page.locator(f"[data-cy=selector-results-container-sidebar-search-{field}]")
    expect(results).to_be_visible()
    return results


def table_rows(dialog):
    """The rows of the first table ``dialog`` shows, as lists of cell texts."""
    rows = dialog.locator("table").first.locator("tbody tr")
    return [[c.strip() for c in row.locator("td").all_inner_texts()] for row in rows.all()]


def test_labeling_scheduled_from_the_app_runs_under_the_launcher(
        scheduling_app, page, digits):
    from fiftyone.operators.delegated import DelegatedOperationService

    run_key = "sched_named"
    operator("compute_clusters")(digits, run_key=run_key, embeddings="pixels",
                                 method="kmeans", kmeans__n_clusters=5, reduce="none",
                                 random_state=0)
    label_field = run_key + "_cluster_label"
    page.goto(f"{scheduling_app.url}/datasets/{digits.name}")
    expect(page.locator("[data-cy=entry-counts]")).to_have_text(f"{len(digits):,} samples")

    prompt = open_operator(page, "label_clusters_with_llm")
    choose(page, prompt, "Clustering run", run_key)
    delegate = form_field(prompt, "Delegate").locator("input[type=checkbox]")
    expect(delegate).to_be_checked()  # naming takes a while: scheduled by default
    form_field(prompt, "Model").locator("input").fill(MODEL)
    form_field(prompt, "Max image size").locator("input").fill("64")
    # this App server has no key: it says so, and queueing needs none
    expect(prompt).to_contain_text("No OpenAI API key")
    expect(prompt.get_by_role("button", name="Schedule")).to_be_enabled()
    expect(prompt.get_by_role("button", name="Execute")).to_have_count(0)
    screenshot(page, "schedule-label-form")
    op_id = schedule(page, prompt, URI + "label_clusters_with_llm")
    screenshot(page, "schedule-label-scheduled")

    service = DelegatedOperationService()
    assert service.get(op_id).run_state == "queued"
    digits.reload()
    assert not digits.has_field(label_field)  # nothing ran yet

    with LLMServer(KEY, MODEL, max_side=64) as server:
        (op,), output = run_launcher([op_id], "schedule-label-launcher.log",
                                     OPENAI_API_KEY=KEY, OPENAI_BASE_URL=server.url)
        assert op.run_state == "completed", (op.run_state, op.result, output)
        assert server.problems == [] and asked(server.requests) == (
            5, groups_to_name(digits, run_key))

    digits.reload()
    clusters = digits.load_run_results(run_key, cache=False).clusters
    names = {c["id"]: c["name"] for c in clusters}
    assert all(names.values()) and len(set(names.values())) == 5, names
    for c in clusters:
        assert set(digits.match({run_key + "_cluster": c["id"]}).values(label_field)) == {
            c["name"]}

    # the reloaded page shows the new field, and the sidebar lists the names
    page.reload()
    expect(page.locator(f"[data-cy=sidebar-field-{label_field}]")).to_be_visible()
    results = sidebar_values(page, label_field)
    for name in names.values():
        expect(results.get_by_text(name, exact=True)).to_be_visible()
    screenshot(page, "schedule-label-sidebar")
    page.locator("[data-cy=entry-counts]").click()  # away from the search box

    prompt = open_operator(page, "get_clustering_run_info")
    choose(page, prompt, "Clustering run", run_key)
    with page.expect_response(execution_of(URI + "get_clustering_run_info")) as executed:
        prompt.get_by_role("button", name="Execute").click()
    assert executed.value.json()["error"] is None
    expect(prompt.locator("table").first.locator("tbody tr")).to_have_count(5)
    shown = {row[0]: row[2] for row in table_rows(prompt)}  # Cluster -> Name
    assert shown == names, (shown, names)
    prompt.locator("table").first.scroll_into_view_if_needed()
    screenshot(page, "schedule-label-run-info")
    no_traceback(page)


def test_clustering_scheduled_from_the_app_runs_under_the_launcher(
        scheduling_app, page, digits):
    run_key = "sched_kmeans"
    field = run_key + "_cluster"
    page.goto(f"{scheduling_app.url}/datasets/{digits.name}")
    expect(page.locator("[data-cy=entry-counts]")).to_have_text(f"{len(digits):,} samples")

    prompt = open_operator(page, "compute_clusters")
    form_field(prompt, "Run key").locator("input").fill(run_key)
    choose(page, prompt, "Embeddings field", "pixels")
    form_field(prompt, "N clusters").locator("input").fill("4")
    choose(page, prompt, "Reduce", "none")
    delegate = form_field(prompt, "Delegate").locator("input[type=checkbox]")
    expect(delegate).not_to_be_checked()  # clustering executes now by default
    expect(prompt.get_by_role("button", name="Execute")).to_be_enabled()
    delegate.check()
    expect(prompt.get_by_role("button", name="Schedule")).to_be_enabled()
    expect(prompt.get_by_role("button", name="Execute")).to_have_count(0)
    expect(prompt.locator("[aria-invalid=true]")).to_have_count(0)
    screenshot(page, "schedule-compute-form")
    op_id = schedule(page, prompt, URI + "compute_clusters")

    digits.reload()
    assert run_key not in digits.list_runs() and not digits.has_field(field)
    (op,), output = run_launcher([op_id], "schedule-compute-launcher.log")
    assert op.run_state == "completed", (op.run_state, op.result, output)

    digits.reload()
    counts = digits.count_values(field)
    assert sum(counts.values()) == len(digits) and sorted(counts) == ["0", "1", "2", "3"]
    page.reload()
    expect(page.locator(f"[data-cy=sidebar-field-{field}]")).to_be_visible()
    results = sidebar_values(page, field)
    for value in counts:
        expect(results.get_by_text(value, exact=True)).to_be_visible()
    screenshot(page, "schedule-compute-sidebar")


@pytest.fixture
def objects():
    """300 samples of 3 detections each, whose ``embedding`` attributes are
    4 blobs; the truth is each object's ``label``."""
    X, y = blobs(900, 16, centers=4, seed=3)
    dataset = fo.Dataset()
    dataset.add_samples([fo.Sample(
        filepath=f"/tmp/clusterlab/objects{i}.png", ground_truth=fo.Detections(detections=[
            fo.Detection(label=str(y[3 * i + j]), bounding_box=[j / 3, 0, 1 / 3, 1],
                         embedding=X[3 * i + j]) for j in range(3)]))
        for i in range(300)], progress=False)
    yield dataset
    dataset.delete()


def test_a_patch_run_scheduled_from_the_app_clusters_the_objects(
        scheduling_app, page, objects):
    """The form offers the label field, then its objects' vectors; the
    launcher clusters the objects, each gets its cluster, and the map is a
    patches visualization."""
    run_key = "sched_objects"
    page.goto(f"{scheduling_app.url}/datasets/{objects.name}")
    expect(page.locator("[data-cy=entry-counts]")).to_have_text("300 samples")

    prompt = open_operator(page, "compute_clusters")
    form_field(prompt, "Run key").locator("input").fill(run_key)
    choose(page, prompt, "Patches field", "ground_truth")
    choose(page, prompt, "Embeddings field", "embedding")
    form_field(prompt, "N clusters").locator("input").fill("4")
    choose(page, prompt, "Reduce", "none")
    form_field(prompt, "Delegate").locator("input[type=checkbox]").check()
    expect(prompt.locator("[aria-invalid=true]")).to_have_count(0)
    screenshot(page, "schedule-patches-form")
    op_id = schedule(page, prompt, URI + "compute_clusters")

    (op,), output = run_launcher([op_id], "schedule-patches-launcher.log")
    assert op.run_state == "completed", (op.run_state, op.result, output)
    objects.reload()
    truth, found = objects.values(["ground_truth.detections.label",
                                   f"ground_truth.detections.{run_key}_cluster"], unwind=True)
    assert len(found) == 900 and None not in found
    assert adjusted_rand_score(truth, found) > 0.99
    assert objects.get_run_info(run_key).config.patches_field == "ground_truth"
    assert objects.get_brain_info(run_key + "_map").config.patches_field == "ground_truth"

    page.reload()
    expect(page.locator("[data-cy=sidebar-field-ground_truth]")).to_be_visible()
    page.locator("[data-cy=entry-counts]").click()
    prompt = open_operator(page, "get_clustering_run_info")
    choose(page, prompt, "Clustering run", run_key)
    with page.expect_response(execution_of(URI + "get_clustering_run_info")) as executed:
        prompt.get_by_role("button", name="Execute").click()
    assert executed.value.json()["error"] is None
    rows = prompt.locator("table").first.locator("tbody tr")
    expect(rows).to_have_count(4)
    shown = {row[0]: int(row[1].replace(",", "")) for row in table_rows(prompt)}
    assert shown == {c: found.count(c) for c in set(found)}, shown
    screenshot(page, "schedule-patches-run-info")
    no_traceback(page)


def test_without_scheduling_labeling_executes_now_in_the_app(app, page, digits):
    """The stock App server (its environment holds the tests' key and base
    URL): no Delegate box, a notice on how to enable scheduling, and
    Execute names the clusters now, with progress, then the output."""
    run_key = "app_named"
    operator("compute_clusters")(digits, run_key=run_key, embeddings="pixels",
                                 method="kmeans", kmeans__n_clusters=3, reduce="none",
                                 random_state=0)
    before = len(app.llm.requests)
    page.goto(f"{app.url}/datasets/{digits.name}")
    expect(page.locator("[data-cy=entry-counts]")).to_have_text(f"{len(digits):,} samples")

    prompt = open_operator(page, "label_clusters_with_llm")
    choose(page, prompt, "Clustering run", run_key)
    form_field(prompt, "Model").locator("input").fill(APP_LLM_MODEL)
    expect(prompt.locator("form").get_by_text("Delegate", exact=True)).to_have_count(0)
    expect(prompt.locator("input[type=checkbox]:checked")).to_have_count(0)
    expect(prompt).to_contain_text("FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true")
    expect(prompt).not_to_contain_text("No OpenAI API key")  # the server has one
    # the split button offers Schedule only as not available
    execute = prompt.get_by_role("button", name="Execute")
    expect(execute).to_be_enabled()
    execute.locator("xpath=following-sibling::button[1]").click()
    menu = page.get_by_role("menuitem")
    expect(menu.filter(has_text="Schedule")).to_contain_text("NOT AVAILABLE")
    page.wait_for_timeout(300)  # the menu fades in
    screenshot(page, "stock-label-menu")
    menu.filter(has_text="Execute").click()
    screenshot(page, "stock-label-form")

    view = page.locator(VIEW)
    with page.expect_response(generator_execution_of(URI + "label_clusters_with_llm"),
                              timeout=120_000) as executed:
        execute.click()
    body = json.loads(executed.value.request.post_data)
    assert not body.get("request_delegation") and "delegate" not in body["params"], body
    expect(view.get_by_text("Clusters", exact=True)).to_be_visible(timeout=120_000)
    outcome = fold_stream(executed.value.text())
    assert outcome["error"] is None, outcome["error"]
    assert outcome["progress"], outcome  # it reported progress while it worked
    digits.reload()
    clusters = digits.load_run_results(run_key, cache=False).clusters
    names = {c["id"]: c["name"] for c in clusters}
    assert all(names.values()) and len(set(names.values())) == 3, names
    assert asked(app.llm.requests[before:]) == (3, groups_to_name(digits, run_key))
    assert app.llm.problems == []
    expect(view).to_contain_text(f"3 of 3 clusters named by {APP_LLM_MODEL}")
    shown = {row[0]: row[2] for row in table_rows(view)}  # Cluster -> Name
    assert shown == names, (shown, names)
    screenshot(page, "stock-label-output")
    view.get_by_role("button", name="Done").click()
    expect(view).to_be_hidden()
    expect(page.locator(f"[data-cy=sidebar-field-{run_key}_cluster_label]")).to_be_visible()
    no_traceback(page)
