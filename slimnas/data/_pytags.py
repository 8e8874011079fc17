"""``pysource-tags``: sequence labelling of the Python standard library's own source, each
character tagged by the lexical class of what it belongs to.

The files, their split **by file** (so test text comes from files the model never saw), the
character vocabulary and the windows are ``pysource``'s (:mod:`slimnas.data._pysource`); the
tags come from the standard library's ``tokenize`` (:data:`TAGS`). A character's tag often
depends on text far from it (a string or docstring opened lines earlier, maybe before the
window; a name that a ``def`` defines; a builtin name against one of the file's own), so a small
model is far from perfect. Deterministic for a given Python version.
"""

from __future__ import annotations

import builtins
import io
import keyword
import tokenize

import numpy as np

from slimnas.data._pysource import encode_text, file_windows

#: the tags, by id: what each character of the source belongs to
TAGS = ("space",       # spaces, tabs, indentation, line continuations
        "newline",     # the end of a line
        "keyword",     # if, def, return, None, ...
        "builtin",     # a name of the builtins module (len, print, ValueError, ...)
        "name",        # any other name
        "definition",  # the name a def or class statement defines
        "number",
        "string",      # strings, f-strings with what they hold, docstrings
        "comment",
        "operator")    # operators and punctuation
_TAG = {t: i for i, t in enumerate(TAGS)}
_BUILTINS = frozenset(dir(builtins))
#: windows at most from one file
PER_FILE = 8


def _name_tag(name: str, previous: str) -> int:
    if keyword.iskeyword(name):
        return _TAG["keyword"]
    if previous in ("def", "class"):
        return _TAG["definition"]
    return _TAG["builtin"] if name in _BUILTINS else _TAG["name"]


def tag_source(text: str) -> np.ndarray | None:
    """A tag id (:data:`TAGS`) per character of ``text``, or ``None`` where ``tokenize`` cannot
    read it. Characters no token covers are ``space`` (``newline`` for a line's end)."""
    starts = np.cumsum([0] + [len(line) for line in io.StringIO(text)])  # lines as tokenize reads them
    tags = np.full(len(text), _TAG["space"], np.int64)
    tags[np.frombuffer(text.encode("utf-32-le"), np.uint32) == 10] = _TAG["newline"]
    previous, fstring = "", 0  # the last name read; how deep inside f-strings (Python 3.12's tokens)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            kind = tokenize.tok_name[tok.type]
            if kind in ("NEWLINE", "NL", "INDENT", "DEDENT", "ENDMARKER"):
                continue
            fstring += kind.endswith("STRING_START")
            if fstring or kind == "STRING":
                tag = _TAG["string"]
            elif kind == "NAME":
                tag = _name_tag(tok.string, previous)
            else:
                tag = {"NUMBER": _TAG["number"], "COMMENT": _TAG["comment"]}.get(kind, _TAG["operator"])
            fstring -= kind.endswith("STRING_END")
            previous = tok.string if kind == "NAME" else ""
            (r0, c0), (r1, c1) = tok.start, tok.end
            tags[starts[r0 - 1] + c0: starts[r1 - 1] + c1] = tag
    except (tokenize.TokenError, SyntaxError, IndexError):
        return None
    return tags


def pysource_tags(text: str) -> np.ndarray | None:
    """A file's character ids and tags, ``(2, length)``."""
    tags = tag_source(text)
    return None if tags is None else np.stack([encode_text(text), tags])


def make_pysource_tags(n: int = 2000, seq_len: int = 64) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{'train' | 'val' | 'test': (x, y)}``: ``x`` ``(m, seq_len)`` character ids, ``y`` each
    character's tag; ``n`` training windows, a fifth of that for validation and for test (fewer
    where the files run out), cut in file order without overlap, at most :data:`PER_FILE` of a
    file, spread through it (the corpus covers many files, not the first few)."""
    windows = file_windows(pysource_tags, n, seq_len, per_file=PER_FILE)
    return {k: (w[:, 0].copy(), w[:, 1].copy()) for k, w in windows.items()}
