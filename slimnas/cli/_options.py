"""Library errors named as the command's options."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from slimnas.errors import ConfigError


@contextlib.contextmanager
def as_options(*fields: str) -> Iterator[None]:
    """Report a :class:`ConfigError` on one of the library's ``fields`` (``format``) under the
    command's option (``--format``), so the message names what the user typed."""
    try:
        yield
    except ConfigError as e:
        if e.field not in fields:
            raise
        raise ConfigError("--" + e.field.replace("_", "-"), e.expected, e.got) from None
