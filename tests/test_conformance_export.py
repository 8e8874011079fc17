"""Every registered export format (built-in or plug-in) passes the conformance suite of
:mod:`slimnas.testing` on a tiny model of each family (a file of its own: the edge formats'
conversions are the slowest conformance checks, and the test workers take one file each)."""

from __future__ import annotations

import pytest

from slimnas.export import list_export_formats
from slimnas.testing import check_export_format


@pytest.mark.parametrize("name", list_export_formats())
def test_export_format_conformance(name):
    diffs = check_export_format(name)["max_abs_diff"]
    assert set(diffs) == {"residual_cnn", "mlp", "gru", "paper_cnn"}
