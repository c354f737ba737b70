"""End-to-end fixtures: the real FiftyOne App server on a free port of
127.0.0.1 and Debian's Chromium driven by Playwright, both with the tests'
database and plugins dir (set by tests/conftest.py)."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import requests

import fiftyone as fo
from conftest import DATABASE, PLUGINS_DIR, REPO, URI

ARTIFACTS = os.path.join(REPO, "tests", "artifacts")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


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


def cli(*args):
    """Runs the ``fiftyone`` command of this environment; returns the
    completed process (stdout and stderr merged)."""
    command = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    return subprocess.run([command, *args], env=child_env(), text=True,
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
        lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
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

    def streams(self, operator):
        """Whether the App executes ``operator`` as a generator."""
        if operator not in self._streams:
            listed = self.post("/operators", {})
            for op in listed["operators"]:
                self._streams[op["uri"].rsplit("/", 1)[-1]] = op["config"].get(
                    "execute_as_generator", False)
        return self._streams[operator]


@pytest.fixture(scope="session")
def app():
    """``python -m fiftyone.server.main`` on a free port, stopped at the end."""
    fo.list_datasets()  # the database service runs while this process is connected
    os.makedirs(ARTIFACTS, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(os.path.join(ARTIFACTS, "app-server.log"), "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "fiftyone.server.main", "--port", str(port),
         "--address", "127.0.0.1"],
        env=child_env(), stdout=log, stderr=subprocess.STDOUT)
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


@pytest.fixture
def page(browser):
    """A fresh page; ``IS_PLAYWRIGHT`` keeps the App's promotional popover away."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(60_000)
    context.add_init_script("window.IS_PLAYWRIGHT = true")
    page = context.new_page()
    yield page
    context.close()


def screenshot(page, name):
    """Saves the page as tests/artifacts/<name>.png."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, name + ".png"))
