"""A griffe extension for the API reference: slimnas docstrings title their doctests
``Example:``, which the Google-style parser reads as an admonition (the doctest output would
then be read as Markdown); it is read as an ``Examples:`` section, rendered as code."""

from __future__ import annotations

import re

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:\s*$", re.M)


class ExampleSections(griffe.Extension):
    def on_object(self, *, obj, **kwargs) -> None:  # noqa: ARG002 - griffe passes more
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
