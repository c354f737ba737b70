"""The App in headless Chromium: the operator palette, the form, the sidebar
filter and the run-info output, as a user clicks through them."""

import json
import re

from playwright.sync_api import expect

from conftest import plugin_module, URI

from .conftest import screenshot

RUN_KEY = "app_minibatch"
FIELD = RUN_KEY + "_cluster"


def open_operator(page, name, shot):
    """Presses backtick, types ``name`` and chooses it; returns the prompt.
    The palette is saved as screenshot ``shot``."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("`")
    expect(page.locator("[data-cy=operators-browser-search]")).to_be_focused()
    page.keyboard.type(name)
    screenshot(page, shot)
    page.locator("[data-cy=operators-browser]").get_by_text(name, exact=True).click()
    prompt = page.locator("[data-cy=operators-prompt-modal]")
    expect(prompt).to_be_visible()
    return prompt


def form_field(prompt, label):
    """The form row whose label is ``label``."""
    return prompt.locator("form").get_by_text(label, exact=True).locator(
        "xpath=ancestor::div[contains(@class,'MuiGrid-item')][1]")


def choose(page, prompt, label, value):
    """Picks ``value`` in the dropdown labelled ``label``."""
    form_field(prompt, label).get_by_role("combobox").click()
    page.locator(f'li[role=option][data-value="{value}"]').click()


def resolved_with(uri, **params):
    """Matches the App's resolve-type response for a form holding ``params``."""
    def match(response):
        if not response.url.endswith("/operators/resolve-type"):
            return False
        body = json.loads(response.request.post_data)
        return body["operator_uri"] == uri and all(
            body["params"].get(k) == v for k, v in params.items())
    return match


def execution_of(uri):
    """Matches the App's execute response for operator ``uri``."""
    def match(response):
        return response.url.endswith("/operators/execute") and (
            json.loads(response.request.post_data)["operator_uri"] == uri)
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
    with page.expect_response(resolved_with(
            compute, run_key=RUN_KEY, embeddings="pixels", method="minibatch_kmeans",
            minibatch_kmeans__n_clusters=10)):
        form_field(prompt, "N clusters").locator("input").fill("10")
    expect(prompt.locator("[aria-invalid=true]")).to_have_count(0)
    expect(prompt.get_by_role("button", name="Execute")).to_be_enabled()
    screenshot(page, "03-compute-form")

    with page.expect_response(execution_of(compute), timeout=180_000) as executed:
        prompt.get_by_role("button", name="Execute").click()
    outcome = executed.value.json()
    assert outcome["error"] is None, outcome["error"]
    sent = json.loads(executed.value.request.post_data)["params"]
    assert sent["cluster_field"] == FIELD  # the default followed the run key
    expect(prompt.get_by_text("Clusters computed")).to_be_visible()
    expect(prompt).to_contain_text(f"10 clusters in {FIELD} (minibatch_kmeans)")
    screenshot(page, "04-compute-output")

    digits.reload()
    config = digits.get_run_info(RUN_KEY).config
    assert config.method == "minibatch_kmeans" and config.params["n_clusters"] == 10
    counts = digits.count_values(FIELD)
    assert sum(counts.values()) == len(digits) and len(counts) == 10

    prompt.get_by_role("button", name="Close").click()
    expect(prompt).to_be_hidden()
    expect(page.locator(f"[data-cy=sidebar-field-{FIELD}]")).to_be_visible()
    screenshot(page, "05-sidebar")

    # filter on the smallest cluster: the App counts as many samples as the
    # database holds for it, and every thumbnail shown carries that value
    value = min(counts, key=counts.get)
    page.locator(f"[data-cy=sidebar-field-arrow-enabled-{FIELD}]").click()
    page.locator(f"[data-cy=selector-sidebar-search-{FIELD}]").fill(value)
    page.locator(f"[data-cy=selector-results-container-sidebar-search-{FIELD}]").get_by_text(
        value, exact=True).click()
    expect(page.locator("[data-cy=entry-counts]")).to_have_text(f"{counts[value]:,} samples")
    page.locator(f"[data-cy=checkbox-{FIELD}]").click()
    page.wait_for_function("""([field, value]) => {
        const shown = document.querySelectorAll("[data-cy=looker]").length;
        const tags = [...document.querySelectorAll(`[data-cy="tag-${field}"]`)];
        return shown > 0 && tags.length === shown && tags.every(t => t.innerText === value);
    }""", arg=[FIELD, value])
    screenshot(page, "06-filtered")

    prompt = open_operator(page, "get_clustering_run_info", "07-palette")
    choose(page, prompt, "Clustering run", RUN_KEY)
    screenshot(page, "08-run-info-form")
    with page.expect_response(execution_of(URI + "get_clustering_run_info")) as executed:
        prompt.get_by_role("button", name="Execute").click()
    assert executed.value.json()["error"] is None
    expect(prompt).to_contain_text("FiftyOne version")
    text = prompt.inner_text()
    assert json_shows(text, "method", "minibatch_kmeans"), text
    assert json_shows(text, "cluster_field", FIELD), text
    for name, param in config.params.items():
        assert json_shows(text, name, param), (name, param, text)
    screenshot(page, "09-run-info")
