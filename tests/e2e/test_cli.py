"""The ``fiftyone`` command line sees the plugin and its requirements."""

import os

import yaml

from conftest import PLUGINS_DIR, REPO

from .conftest import cli

NAME = "@clusterlab/clustering"


def test_plugins_list_shows_the_plugin_enabled():
    with open(os.path.join(REPO, "fiftyone.yml")) as f:
        version = yaml.safe_load(f)["version"]
    listed = cli("plugins", "list")
    assert listed.returncode == 0, listed.stdout
    rows = [line.split() for line in listed.stdout.splitlines() if line.startswith(NAME + " ")]
    assert rows == [[NAME, version, "✓", os.path.join(PLUGINS_DIR, "clusterlab")]], listed.stdout


def test_plugin_requirements_are_ensured():
    ensured = cli("plugins", "requirements", NAME, "--ensure", "--error-level", "0")
    assert ensured.returncode == 0, ensured.stdout
    assert f"Plugin {NAME} is compatible" in ensured.stdout
    with open(os.path.join(REPO, "requirements.txt")) as f:
        requirements = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    assert requirements
    for requirement in requirements:
        assert f"Requirement satisfied: {requirement} (found " in ensured.stdout, ensured.stdout
