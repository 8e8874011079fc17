"""MkDocs hooks (``hooks:`` in mkdocs.yml): the pages generated from the code at build time, so
they cannot drift from it: the configuration reference (``docs/_gen/config_reference.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the slimnas of this checkout, as the API reference reads it
sys.path.insert(0, str(Path(__file__).resolve().parent))

import config_reference  # noqa: E402 - after the path is set


def on_config(config):
    # Docstrings index mappings and arrays (``d["op"]``, ``x[25, 12]``) in plain text; autorefs'
    # legacy ``[text][id]`` syntax would read those as links to nowhere and warn.
    autorefs = config.plugins.get("autorefs")
    if autorefs is not None:
        autorefs.legacy_refs = False
    return config


def on_files(files, config):
    files.append(File.generated(config, "reference/configuration.md", content=config_reference.render()))
    return files
