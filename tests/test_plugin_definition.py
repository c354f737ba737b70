"""The plugin as FiftyOne sees it, and the docs generated from its declarations."""

import os
import subprocess
import sys

import yaml

import fiftyone.operators as foo
import fiftyone.plugins as fop
from conftest import REPO, plugin_module


def test_fiftyone_yml_matches_the_code():
    definition = yaml.safe_load(open(os.path.join(REPO, "fiftyone.yml")))
    assert definition["name"] == "@clusterlab/clustering"
    assert definition["version"] == plugin_module("clustering").VERSION
    assert definition["secrets"] == ["OPENAI_API_KEY"]
    plugin = fop.get_plugin("@clusterlab/clustering")
    # FiftyOne lists panels among the operators it loads
    assert sorted(plugin.operators) == sorted(definition["operators"] + definition["panels"])
    # every operator and panel listed is registered and loadable
    from conftest import operator
    for name in definition["operators"] + definition["panels"]:
        assert operator(name).config.name == name
    assert definition["panels"] == ["clusters_panel"]
    assert isinstance(operator("clusters_panel"), foo.Panel)


def test_readme_parameter_tables_are_generated_from_the_declarations():
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "readme_params.py"),
                           "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
