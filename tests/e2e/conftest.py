"""End-to-end fixtures: the real FiftyOne App server on a free port of
127.0.0.1 and Debian's Chromium driven by Playwright, both with the tests'
database and plugins dir (set by tests/conftest.py); what the browser tests
share (the palette, forms, the progress and output dialogs); the
``fiftyone delegated launch`` process."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest
import requests

import fiftyone as fo
from conftest import DATABASE, PLUGINS_DIR, REPO, URI
from llm_server import LLMServer

ARTIFACTS = os.path.join(REPO, "tests", "artifacts")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def pytest_collection_modifyitems(items):
    """Every test here goes through a door users use (App server, browser,
    launcher, kernel, kills): the slow e2e tier."""
    for item in items:
        if f"{os.sep}e2e{os.sep}" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def child_env(**changes):
    """The environment of a process run by a test: the tests' database and
    plugins dir; ``NAME=None`` removes ``NAME``."""
    env = dict(os.environ, FIFTYONE_PLUGINS_DIR=PLUGINS_DIR,
               FIFTYONE_DATABASE_NAME=DATABASE)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def cli_path():
    """The ``fiftyone`` command of this environment."""
    return os.path.join(os.path.dirname(sys.executable), "fiftyone")


def cli(*args):
    """Runs the ``fiftyone`` command of this environment; returns the
    completed process (stdout and stderr merged)."""
    return subprocess.run([cli_path(), *args], env=child_env(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=300)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """The App server's operator routes, called with the bodies the App sends."""

    def __init__(self, url):
        self.url = url
        self._streams = {}

    def post(self, route, body, status=200):
        response = requests.post(self.url + route, json=body, timeout=300)
        assert response.status_code == status, (route, response.status_code, response.text)
        return response.json()

    def body(self, dataset, operator, params, view=None, **extra):
        return dict(
            operator_uri=URI + operator, dataset_name=dataset.name, params=params,
            view=view._serialize() if view is not None else [], filters={},
            selected=[], selected_labels=[], current_sample=None, extended={},
            request_delegation=False, **extra,
        )

    def form(self, dataset, operator, params):
        """``{key: property}`` of the operator's form resolved with ``params``."""
        resolved = self.post("/operators/resolve-type", self.body(
            dataset, operator, params, target="inputs"))
        return resolved["type"]["properties"]

    def execute(self, dataset, operator, params, view=None, status=200, **extra):
        """Executes as the App does: operators that stream (executed as
        generators) through the generator route, whose messages are folded
        into ``result`` (from the shown output), ``error`` (the message the
        output shows), ``progress`` and ``requests`` (operators invoked)."""
        body = self.body(dataset, operator, params, view, **extra)
        if not self.streams(operator):
            return self.post("/operators/execute", body, status)
        response = requests.post(self.url + "/operators/execute/generator", json=body,
                                 timeout=300)
        assert response.status_code == status, (response.status_code, response.text)
        if status != 200:
            return response.text
        return fold_stream(response.text)

    def streams(self, operator):
        """Whether the App executes ``operator`` as a generator."""
        if operator not in self._streams:
            listed = self.post("/operators", {})
            for op in listed["operators"]:
                self._streams[op["uri"].rsplit("/", 1)[-1]] = op["config"].get(
                    "execute_as_generator", False)
        return self._streams[operator]


def fold_stream(text):
    """The body of ``/operators/execute/generator`` folded into ``result``
    (from the shown output), ``error`` (the message the output shows),
    ``progress`` (``set_progress`` params, in order), ``requests`` (the
    operators invoked) and ``outputs``; a queued run answers one plain
    result (``result`` is the delegated operation)."""
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    if len(lines) == 1 and "cls" not in lines[0]:  # queued: a plain result
        return dict(lines[0], progress=[], requests=[])
    outcome = dict(result=None, error=None, delegated=False, progress=[], requests=[])
    for message in lines:
        request = message["body"]
        outcome["requests"].append(request["operator_uri"])
        if request["operator_uri"] == "set_progress":
            outcome["progress"].append(request["params"])
        elif request["operator_uri"] == "show_output":
            results = request["params"]["results"]
            outcome["error"] = results.get("error") if isinstance(results, dict) else None
            outcome["result"] = None if outcome["error"] else results
            outcome["outputs"] = request["params"]["outputs"]
    return outcome


# A made-up key (never a real one: tests/conftest.py removes OPENAI_API_KEY
# from the tests' environment) for the stock App server, whose environment
# points it at the tests' OpenAI-compatible server.
APP_LLM_KEY = "sk-e2e-app-" + uuid.uuid4().hex
APP_LLM_MODEL = "vision-e2e-app"


@contextlib.contextmanager
def app_server(log_name, **env):
    """``python -m fiftyone.server.main`` on a free port with environment
    ``child_env(**env)``, its output in tests/artifacts/``log_name``;
    yields an :class:`App`, stops the server at the end."""
    fo.list_datasets()  # the database service runs while this process is connected
    os.makedirs(ARTIFACTS, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(os.path.join(ARTIFACTS, log_name), "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "fiftyone.server.main", "--port", str(port),
         "--address", "127.0.0.1"],
        env=child_env(**env), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, f"the App server exited; see {log.name}"
            try:
                if requests.get(url, timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"the App server did not answer; see {log.name}"
            time.sleep(0.2)
        yield App(url)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture(scope="session")
def app_llm():
    """The OpenAI-compatible server (tests/llm_server.py) that the stock App
    server's environment names: key ``APP_LLM_KEY``, model ``APP_LLM_MODEL``."""
    with LLMServer(APP_LLM_KEY, APP_LLM_MODEL) as server:
        yield server


@pytest.fixture(scope="session")
def app(app_llm):
    """The App server as installed: no scheduling (FiftyOne's defaults), and
    OPENAI_API_KEY / OPENAI_BASE_URL naming ``app_llm`` (``app.llm``), so
    that labeling can execute in it."""
    with app_server("app-server.log", FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=None,
                    OPENAI_API_KEY=APP_LLM_KEY, OPENAI_BASE_URL=app_llm.url) as server:
        server.llm = app_llm
        yield server


@pytest.fixture(scope="session")
def scheduling_app():
    """A second App server whose environment is what the README tells users
    to set to schedule runs from the App: FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS
    =true (with the tests' database and plugins dir), and no API key."""
    with app_server("app-server-scheduling.log", FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS="true",
                    OPENAI_API_KEY=None, OPENAI_BASE_URL=None) as server:
        yield server


def run_launcher(op_ids, log_name, timeout=180, **env):
    """Runs ``fiftyone delegated launch`` (environment ``child_env(**env)``,
    output in tests/artifacts/``log_name``) until every operation of
    ``op_ids`` has completed or failed, then stops it. Returns the
    operations (as the service reads them) and the launcher's output."""
    from fiftyone.operators.delegated import DelegatedOperationService

    service = DelegatedOperationService()
    os.makedirs(ARTIFACTS, exist_ok=True)
    log_path = os.path.join(ARTIFACTS, log_name)
    with open(log_path, "w") as log:
        launcher = subprocess.Popen([cli_path(), "delegated", "launch"], env=child_env(**env),
                                    stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and launcher.poll() is None:
                if all(service.get(i).run_state in ("completed", "failed") for i in op_ids):
                    break
                time.sleep(0.05)
        finally:
            launcher.terminate()
            try:
                launcher.wait(timeout=60)
            except subprocess.TimeoutExpired:
                launcher.kill()
                launcher.wait()
    with open(log_path) as f:
        return [service.get(i) for i in op_ids], f.read()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright (never downloaded)."""
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), (
        f"{CHROMIUM} is missing: install Debian's chromium (scripts/setup.sh --browser)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the test item, for ``page`` to see a failure."""
    report = yield
    setattr(item, "report_" + report.when, report)
    return report


@pytest.fixture
def page(browser, request):
    """A fresh page; ``IS_PLAYWRIGHT`` keeps the App's promotional popover away.
    When the test fails, the page is saved as tests/artifacts/failed-<test>.png
    with the App's console beside it, since a browser failure is otherwise
    seen only as a timeout."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(60_000)
    context.add_init_script("window.IS_PLAYWRIGHT = true")
    page = context.new_page()
    console = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        name = "failed-" + request.node.name
        screenshot(page, name)
        with open(os.path.join(ARTIFACTS, name + ".console.txt"), "w") as out:
            out.write("\n".join(console))
    context.close()


def screenshot(page, name):
    """Saves the page (or one element: a Playwright locator) as
    tests/artifacts/<name>.png."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, name + ".png"))


# The App's operator dialogs: the prompt (form, "Executing...", and the
# output of operators that are not generators) and, for operators executed
# as generators, the view dialog (progress, then the output, and "Done").
PROMPT = "[data-cy=operators-prompt-modal]"
VIEW = "[data-cy=operators-prompt-view-modal]"


def open_operator(page, name, shot=None):
    """Presses backtick, types ``name`` and chooses it; returns the prompt.
    The palette is saved as screenshot ``shot``."""
    from playwright.sync_api import expect

    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("`")
    expect(page.locator("[data-cy=operators-browser-search]")).to_be_focused()
    page.keyboard.type(name)
    if shot:
        screenshot(page, shot)
    page.locator("[data-cy=operators-browser]").get_by_text(name, exact=True).click()
    prompt = page.locator(PROMPT)
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


def execution_of(uri):
    """Matches the App's execution of ``uri`` through the plain route
    (operators that are not generators)."""
    def match(response):
        return response.url.endswith("/operators/execute") and (
            json.loads(response.request.post_data)["operator_uri"] == uri)
    return match


def generator_execution_of(uri):
    """Matches the App's execution of ``uri`` through the generator route
    (operators executed as generators, and every scheduled run)."""
    def match(response):
        return response.url.endswith("/operators/execute/generator") and (
            json.loads(response.request.post_data)["operator_uri"] == uri)
    return match


def record_progress(page):
    """Starts recording, in the page, every state of the progress bar the
    view dialog shows: ``{"value": aria-valuenow, "text": lines shown}``;
    read them with :func:`recorded_progress`. A DOM observer sees each state
    React renders, however briefly."""
    page.evaluate("""(selector) => {
        window.__progress = [];
        const observer = new MutationObserver(() => {
            const bar = document.querySelector(`${selector} [role=progressbar]`);
            if (!bar) return;
            const content = bar.closest(".MuiDialogContent-root") || bar.parentElement;
            const state = {value: bar.getAttribute("aria-valuenow"),
                           text: content.innerText.trim()};
            const last = window.__progress[window.__progress.length - 1];
            if (!last || last.value !== state.value || last.text !== state.text) {
                window.__progress.push(state);
            }
        });
        observer.observe(document.body, {subtree: true, childList: true,
                                         characterData: true, attributes: true});
    }""", VIEW)


def recorded_progress(page):
    """``[(percent, label)]`` of the progress states recorded since
    :func:`record_progress`: the label is the text shown beside the bar
    other than its percentage."""
    states = []
    for state in page.evaluate("window.__progress"):
        lines = [line.strip() for line in state["text"].splitlines() if line.strip()]
        label = " ".join(line for line in lines if not line.endswith("%"))
        states.append((None if state["value"] is None else float(state["value"]), label))
    return states


def no_traceback(page):
    """Asserts that nothing on the page shows a Python traceback."""
    text = page.locator("body").inner_text()
    assert "Traceback" not in text and 'File "/' not in text, text
