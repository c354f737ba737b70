"""The Clusters panel in headless Chromium on the real App server, as a user
clicks through it: opened from the "+" menu beside Embeddings, a card
filters the grid to its cluster (and the chart's bar does too), the
selection follows the App's view across a reload, a cluster renamed by
hand shows in the sidebar and the run, naming runs from the panel against
the tests' OpenAI-compatible server, a queued run shows live and the panel
refreshes when it ends, the run is compared and deleted from the panel, and
100 clusters of 100,000 samples render (timed)."""

import os
import re
import threading
import time
import uuid

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from bench import data
from conftest import URI, groups_to_name, operator
from llm_server import LLMServer, asked

from .conftest import (
    APP_LLM_MODEL, PROMPT, VIEW, choose, execution_of, form_field, generator_execution_of,
    no_traceback, run_launcher, screenshot,
)

COUNTS = "[data-cy=entry-counts]"


@pytest.fixture
def digits_run(digits):
    """A k-means run of the digits (10 clusters, with distances), the
    newest run of the dataset; deleted afterwards."""
    key = "panel_" + uuid.uuid4().hex[:6]
    operator("compute_clusters")(digits, run_key=key, embeddings="pixels", method="kmeans",
                                 kmeans__n_clusters=10, reduce="none", random_state=0,
                                 distance_field=key + "_distance", progress=False)
    yield key
    digits.reload()
    if key in digits.list_runs():
        operator("delete_clustering_run")(digits, key)


def clusters_of(dataset, key):
    """The run's stored clusters."""
    dataset.reload()
    return dataset.load_run_results(key, cache=False).clusters


def open_panel(page, dataset, url):
    """Goes to ``dataset`` in the App and opens the Clusters panel from the
    "+" menu of the Samples tab; returns the panel."""
    fresh_page(page, dataset, url)
    panel, _ = choose_panel(page)
    # the first render loads the plugin in the server: give it time
    expect(panel.get_by_role("button", name="Name clusters")).to_be_visible(timeout=60_000)
    return panel


def fresh_page(page, dataset, url):
    """``dataset`` in the App with no view and no Clusters panel: the App
    server keeps the view and the open panels of earlier tests."""
    page.goto(f"{url}/datasets/{dataset.name}")
    expect(page.locator("[data-cy=panel-tab-samples]")).to_be_visible(timeout=60_000)
    page.locator("[data-cy=btn-clear-view-bar]").click()
    expect(page.locator(COUNTS)).to_have_text(f"{len(dataset):,} samples", timeout=60_000)
    opened = page.locator("[data-cy=panel-tab-clusters_panel]")
    if opened.count():
        opened.locator("[title=Close]").click()


def choose_panel(page):
    """Chooses Clusters in the "+" menu, where it is listed beside the App's
    Embeddings panel; returns the panel and when it was clicked."""
    page.locator("[data-cy=new-panel-btn]").first.click()
    option = page.locator("[data-cy=new-panel-option-clusters_panel]")
    # the menu lists the plugins' panels once the App has loaded them
    expect(option).to_be_visible(timeout=60_000)
    names = page.locator("[data-cy^=new-panel-option-]").evaluate_all(
        "es => es.map(e => e.getAttribute('data-cy'))")
    assert names.index("new-panel-option-clusters_panel") == names.index(
        "new-panel-option-Embeddings") + 1, names
    clicked = time.monotonic()
    option.click()
    return clusters_panel(page), clicked


def clusters_panel(page):
    return page.locator("[data-cy=panel-content-clusters_panel]")


def card(panel, title):
    """The card whose title button reads ``title`` ("Cluster 3", "3 · Sevens")."""
    return panel.get_by_role("button", name=title, exact=True)


def thumbnails(panel, title):
    """The images of the card titled ``title``: those of the innermost
    block holding its title and images."""
    page = panel.page
    return panel.locator("div", has=page.get_by_role("button", name=title, exact=True)).filter(
        has=page.locator("img")).last.locator("img")


def shows_only(page, field, value, count):
    """Waits until the grid counts ``count`` samples, each of which shows
    ``value`` in ``field`` (the field's tags turned on in the sidebar) and
    has drawn its image."""
    expect(page.locator(COUNTS)).to_have_text(f"{count:,} samples")
    checkbox = page.locator(f"[data-cy=checkbox-{field}]")
    if not checkbox.locator("input").is_checked():
        checkbox.click()
    page.wait_for_function("""([field, value]) => {
        const shown = document.querySelectorAll("[data-cy=looker]").length;
        const tags = [...document.querySelectorAll(`[data-cy="tag-${field}"]`)];
        const drawn = document.querySelectorAll(
            "[data-cy=looker] canvas[canvas-loaded=true]").length;
        return shown > 0 && tags.length === shown && drawn === shown
            && tags.every(t => t.innerText === value);
    }""", arg=[field, value])


def test_cards_filter_the_grid_and_the_selection_follows_the_view(app, page, digits,
                                                                   digits_run):
    field = digits_run + "_cluster"
    clusters = clusters_of(digits, digits_run)
    panel = open_panel(page, digits, app.url)
    for c in clusters:
        expect(card(panel, f"Cluster {c['id']}")).to_be_visible()
        expect(panel).to_contain_text(f"{c['size']:,} samples ({c['size'] / len(digits):.1%})")
    # thumbnails: the run's representatives, most typical first, served by the App
    paths = dict(zip(*digits.values(["id", "filepath"])))
    first = thumbnails(panel, "Cluster 0")
    expect(first).to_have_count(4)
    sources = first.evaluate_all("es => es.map(e => decodeURIComponent("
                                 "e.getAttribute('src').split('filepath=')[1]))")
    assert sources == [paths[r] for r in clusters[0]["representatives"][:4]], sources
    page.wait_for_function("imgs => imgs.every(i => i.complete && i.naturalWidth > 0)",
                           arg=first.element_handles())
    expect(panel.get_by_text("Stage", exact=True)).to_be_visible()
    expect(panel).to_contain_text("Silhouette (-1 to 1, higher is better)")
    expect(panel).not_to_contain_text("{")  # the run's facts are tables, not JSON
    screenshot(page, "panel-01-open")

    # a card shows its cluster in the grid, most typical first
    smallest = min(clusters, key=lambda c: c["size"])
    card(panel, f"Cluster {smallest['id']}").click()
    shows_only(page, field, smallest["id"], smallest["size"])
    expect(panel).to_contain_text(f"Showing Cluster {smallest['id']} "
                                  f"({smallest['size']:,} samples), most typical first")
    assert "contained" in card(panel, f"Cluster {smallest['id']}").get_attribute("class")
    screenshot(page, "panel-02-cluster")

    # the view survives a reload of the page: the panel still shows it
    page.reload()
    panel = clusters_panel(page)
    expect(panel).to_contain_text(f"Showing Cluster {smallest['id']}", timeout=60_000)
    expect(page.locator(COUNTS)).to_have_text(f"{smallest['size']:,} samples")

    # clearing the App's view bar clears the panel's selection
    page.locator("[data-cy=btn-clear-view-bar]").click()
    expect(page.locator(COUNTS)).to_have_text(f"{len(digits):,} samples")
    expect(panel.get_by_text("Showing", exact=False)).to_have_count(0)

    # a bar of the sizes chart selects its cluster; a second click on the
    # card, or Clear, restores the view
    largest = clusters[0]
    # Plotly takes clicks on its drag layer above the bar
    panel.locator(".js-plotly-plot .bars .point path").nth(0).click(force=True)
    shows_only(page, field, largest["id"], largest["size"])
    card(panel, f"Cluster {largest['id']}").click()
    expect(page.locator(COUNTS)).to_have_text(f"{len(digits):,} samples")
    thumbnails(panel, "Cluster 1").nth(2).click()  # a thumbnail selects its cluster too
    expect(page.locator(COUNTS)).to_have_text(f"{clusters[1]['size']:,} samples")
    expect(panel).to_contain_text("Showing Cluster 1 ")
    panel.get_by_role("button", name="Clear", exact=True).click()
    expect(page.locator(COUNTS)).to_have_text(f"{len(digits):,} samples")
    no_traceback(page)


def test_rename_a_cluster_by_hand_from_the_panel(app, page, digits, digits_run):
    label_field = digits_run + "_cluster_label"
    cluster = clusters_of(digits, digits_run)[2]
    panel = open_panel(page, digits, app.url)
    card(panel, "Cluster 2").click()
    expect(page.locator(COUNTS)).to_have_text(f"{cluster['size']:,} samples")
    panel.get_by_role("button", name="Rename", exact=True).click()

    prompt = page.locator(PROMPT)
    expect(prompt).to_contain_text("Name a cluster")
    form_field(prompt, "Name").locator("input").fill("Slanted  <b>strokes</b>")
    form_field(prompt, "Description").locator("input").fill("Strokes leaning to the right.")
    expect(prompt.get_by_role("button", name="Execute")).to_be_enabled()
    screenshot(page, "panel-03-rename-form")
    with page.expect_response(execution_of(URI + "name_cluster")) as executed:
        prompt.get_by_role("button", name="Execute").click()
    body = executed.value.request.post_data_json
    assert body["params"]["run_key"] == digits_run and body["params"]["cluster"] == "2", body
    assert executed.value.json()["error"] is None, executed.value.json()
    expect(page.locator("#notistack-snackbar")).to_contain_text("is now named 'Slanted strokes'")

    # the card shows the name (cleaned of markup) and that a person gave it
    expect(card(panel, "2 · Slanted strokes")).to_be_visible()
    expect(panel).to_contain_text("named by hand")
    expect(panel).to_contain_text("Strokes leaning to the right.")
    # the selection stays on the renamed cluster
    expect(panel).to_contain_text("Showing 2 · Slanted strokes")

    # the sidebar's label field lists it, and run info records it as manual
    expect(page.locator(f"[data-cy=sidebar-field-{label_field}]")).to_be_visible()
    page.locator(f"[data-cy=sidebar-field-arrow-enabled-{label_field}]").click()
    expect(page.locator(f"[data-cy=categorical-filter-{label_field}]")).to_contain_text(
        "Slanted strokes")
    screenshot(page, "panel-04-renamed")
    info = operator("get_clustering_run_info")(digits, digits_run)
    named = info["clusters"][2]
    assert (named["name"], named["naming"], named["description"]) == (
        "Slanted strokes", "manual", "Strokes leaning to the right."), named
    assert info["config"]["labels"]["label_field"] == label_field
    digits.reload()
    assert digits.count_values(label_field) == {"Slanted strokes": cluster["size"], None:
                                                len(digits) - cluster["size"]}
    no_traceback(page)


def test_name_the_clusters_from_the_panel(app, page, digits, digits_run):
    """The panel's Name clusters opens label_clusters_with_llm's form on the
    shown run; executed (the stock App server names the tests' server),
    the cards show the names the run records, and a name given by hand
    stays."""
    operator("name_cluster")(digits, digits_run, "0", "Named by a person")
    before = len(app.llm.requests)
    panel = open_panel(page, digits, app.url)
    expect(card(panel, "0 · Named by a person")).to_be_visible()
    panel.get_by_role("button", name="Name clusters").click()

    prompt = page.locator(PROMPT)
    expect(prompt).to_contain_text("Label clusters with an LLM")
    expect(form_field(prompt, "Clustering run")).to_contain_text(digits_run)
    form_field(prompt, "Model").locator("input").fill(APP_LLM_MODEL)
    view = page.locator(VIEW)
    with page.expect_response(generator_execution_of(URI + "label_clusters_with_llm"),
                              timeout=120_000):
        prompt.get_by_role("button", name="Execute").click()
    expect(view).to_contain_text(f"9 of 9 clusters named by {APP_LLM_MODEL}",
                                 timeout=120_000)
    view.get_by_role("button", name="Done").click()
    expect(view).to_be_hidden()

    clusters = clusters_of(digits, digits_run)
    assert asked(app.llm.requests[before:]) == (9, groups_to_name(digits, digits_run))
    assert app.llm.problems == []
    assert clusters[0]["name"] == "Named by a person" and clusters[0]["naming"] == "manual"
    for c in clusters:
        assert c["name"], c
        expect(card(panel, f"{c['id']} · {c['name']}")).to_be_visible()
    assert {c["naming"] for c in clusters[1:]} == {"llm"}
    screenshot(page, "panel-05-named")
    no_traceback(page)


def test_tag_a_cluster_from_the_panel(app, page, digits, digits_run):
    tag = "panel_" + uuid.uuid4().hex[:6]
    cluster = clusters_of(digits, digits_run)[3]
    panel = open_panel(page, digits, app.url)
    card(panel, "Cluster 3").click()
    expect(page.locator(COUNTS)).to_have_text(f"{cluster['size']:,} samples")
    panel.get_by_role("button", name="Tag samples").click()

    prompt = page.locator(PROMPT)
    expect(prompt).to_contain_text("Tag clusters")
    form_field(prompt, "Tag").locator("input").fill(tag)
    with page.expect_response(execution_of(URI + "tag_clusters")) as executed:
        prompt.get_by_role("button", name="Execute").click()
    body = executed.value.request.post_data_json
    assert body["params"]["clusters"] == ["3"] and body["params"]["action"] == "add", body
    assert executed.value.json()["error"] is None, executed.value.json()
    digits.reload()
    assert digits.match_tags(tag).count() == cluster["size"]
    assert set(digits.match_tags(tag).values(digits_run + "_cluster")) == {"3"}
    no_traceback(page)
    digits.untag_samples(tag)


def test_compare_and_delete_from_the_panel(app, page, digits, digits_run):
    other = digits_run + "_k4"
    operator("compute_clusters")(digits, run_key=other, embeddings="pixels", method="kmeans",
                                 kmeans__n_clusters=4, reduce="none", random_state=0,
                                 progress=False)
    panel = open_panel(page, digits, app.url)
    # the newest run is shown
    expect(panel.get_by_role("button", name=re.compile(r"^Cluster \d+$"))).to_have_count(4)

    panel.get_by_role("button", name="Compare").click()
    prompt = page.locator(PROMPT)
    expect(prompt).to_contain_text("Compare clustering runs")
    choose(page, prompt, "Second run", digits_run)
    with page.expect_response(execution_of(URI + "compare_clustering_runs")) as executed:
        prompt.get_by_role("button", name="Execute").click()
    body = executed.value.request.post_data_json
    assert (body["params"]["run_a"], body["params"]["run_b"]) == (other, digits_run), body
    expect(prompt).to_contain_text("Adjusted Rand index")
    prompt.get_by_role("button", name="Close").click()
    expect(prompt).to_be_hidden()

    # deleting the shown run clears its selection and shows the run left
    card(panel, "Cluster 1").click()
    expect(page.locator(COUNTS)).not_to_have_text(f"{len(digits):,} samples")
    panel.get_by_role("button", name="Delete run").click()
    expect(prompt).to_contain_text(f"Deletes run '{other}'")
    with page.expect_response(execution_of(URI + "delete_clustering_run")):
        prompt.get_by_role("button", name="Execute").click()
    expect(page.locator(COUNTS)).to_have_text(f"{len(digits):,} samples")
    expect(panel.get_by_role("button", name=re.compile(r"^Cluster \d+$"))).to_have_count(10)
    digits.reload()
    assert other not in digits.list_runs() and not digits.has_field(other + "_cluster")
    no_traceback(page)


def test_a_queued_run_shows_live_and_the_panel_refreshes_when_it_ends(page, app, digits,
                                                                     digits_run):
    """Naming queued for ``fiftyone delegated launch``: the panel shows it
    queued, then its progress as the launcher reports it, then the names,
    with no reload."""
    key, model = "sk-e2e-panel-" + uuid.uuid4().hex, "vision-e2e-panel"
    op = operator("label_clusters_with_llm")(digits, run_key=digits_run, model=model,
                                             concurrency=1, delegate=True)
    panel = open_panel(page, digits, app.url)
    expect(panel).to_contain_text(f"label_clusters_with_llm on run '{digits_run}': queued")
    expect(panel.locator("[role=progressbar]")).to_have_count(1)
    screenshot(page, "panel-06-queued")

    seen = set()
    with LLMServer(key, model, delay=0.5) as server:
        done = {}
        launcher = threading.Thread(target=lambda: done.update(result=run_launcher(
            [op.id], "panel-launcher.log", OPENAI_API_KEY=key, OPENAI_BASE_URL=server.url)))
        launcher.start()
        while launcher.is_alive():
            text = panel.inner_text()
            seen.update(line for line in text.splitlines() if "label_clusters_with_llm" in line)
            if any("clusters named" in line for line in seen) and "shot" not in done:
                screenshot(page, "panel-07-running")
                done["shot"] = True
            page.wait_for_timeout(200)
        launcher.join()
    (finished,), output = done["result"]
    assert finished.run_state == "completed", (finished.run_state, output)
    running = [line for line in seen if ": running" in line]
    assert any(re.search(r"\d+/10 clusters named", line) for line in running), seen

    # the run ended: the live state goes, the names come, nothing reloaded
    expect(panel.locator("[role=progressbar]")).to_have_count(0, timeout=10_000)
    for c in clusters_of(digits, digits_run):
        expect(card(panel, f"{c['id']} · {c['name']}")).to_be_visible()
    screenshot(page, "panel-08-refreshed")


def colour_files(directory, count):
    """``count`` small PNGs of distinct colours; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = os.path.join(directory, f"colour_{i:03d}.png")
        Image.fromarray(np.full((32, 32, 3), rng.integers(0, 256, 3), dtype=np.uint8)).save(
            path)
        paths.append(path)
    return paths


def loaded_images(page):
    """How many of the panel's images have loaded."""
    return page.evaluate("[...document.querySelectorAll("
                         "'[data-cy=panel-content-clusters_panel] img')]"
                         ".filter(i => i.complete && i.naturalWidth > 0).length")


def test_100_clusters_of_100k_samples_render(app, page, tmp_path):
    """Timed, not asserted: opening the panel on a run of 100 clusters over
    100,000 samples, and showing one of them in the grid."""
    dataset = data.dataset(100_000, 16, 100, seed=0, persistent=False)  # inserted in bulk
    try:
        files = colour_files(str(tmp_path), 100)
        for blob, path in enumerate(files):  # one update per blob: the set-up, not the test
            dataset._sample_collection.update_many({"truth": str(blob)},
                                                   {"$set": {"filepath": path}})
        operator("compute_clusters")(
            dataset, run_key="hundred", embeddings="embedding", method="minibatch_kmeans",
            minibatch_kmeans__n_clusters=100, reduce="none", random_state=0,
            distance_field="hundred_distance", progress=False)
        clusters = clusters_of(dataset, "hundred")
        assert len(clusters) == 100

        fresh_page(page, dataset, app.url)
        panel, start = choose_panel(page)
        titles = panel.get_by_role("button", name=re.compile(r"^Cluster \d+$"))
        expect(titles).to_have_count(100, timeout=60_000)
        cards_shown = time.monotonic() - start
        first = thumbnails(panel, "Cluster 0")
        page.wait_for_function("imgs => imgs.length > 0 && imgs.every(i => i.complete && "
                               "i.naturalWidth > 0)", arg=first.element_handles())
        thumbnails_shown = time.monotonic() - start
        loaded = loaded_images(page)
        screenshot(page, "panel-09-hundred")

        # from a settled App: the thumbnails in range have loaded
        settled = [-1]
        while settled[-1] != loaded_images(page):
            settled.append(loaded_images(page))
            page.wait_for_timeout(1000)
        chosen = clusters[57]
        start = time.monotonic()
        card(panel, "Cluster 57").click()
        expect(page.locator(COUNTS)).to_have_text(f"{chosen['size']:,} samples",
                                                  timeout=60_000)
        counted_in = time.monotonic() - start
        expect(page.locator("[data-cy=looker]").first).to_be_visible()
        shown_in = time.monotonic() - start
        print(f"\n100 clusters of 100,000 samples: cards shown in {cards_shown:.2f} s, "
              f"first thumbnails in {thumbnails_shown:.2f} s ({loaded} of 400 images "
              f"loaded so far: the rest load as they scroll into view); a card's "
              f"cluster counted in the grid in {counted_in:.2f} s, its first samples "
              f"shown in {shown_in:.2f} s")
        no_traceback(page)
    finally:
        page.goto(f"{app.url}/datasets/{dataset.name}")
        page.locator("[data-cy=btn-clear-view-bar]").click()
        dataset.delete()
