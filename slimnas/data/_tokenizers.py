"""Tokenizers: texts to fixed-length rows of token ids, by registered name.

The default, ``word``, learns a word-level vocabulary from the training split only (validation
and test words it never saw become ``<unk>``); ``hf`` reads a Hugging Face tokenizer from a local
path (``tokenizer.json`` or a saved ``transformers`` tokenizer folder), never downloading one.
"""

from __future__ import annotations

import abc
import inspect
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from slimnas.errors import ConfigError
from slimnas.registry import Registry

MAX_LENGTH_CAP = 512  # the longest rows a tokenizer makes when max_length is not given


class BaseTokenizer(abc.ABC):
    """Texts to ``(N, max_length)`` int64 token ids, padded with :attr:`pad_id`.

    Call order: built from the ``data.tokenizer`` options (``__init__`` only stores them),
    :meth:`fit` on the training texts, then :meth:`encode` for every split; :meth:`state`
    returns what :meth:`from_state` rebuilds it from (saved with the run, so a deployed model's
    inputs are encoded the same way).

    Example:
        >>> tok = WordTokenizer(max_length=4).fit(["a good film", "a bad film"])
        >>> tok.encode(["a good day"]).tolist()
        [[2, 5, 1, 0]]
    """

    name: ClassVar[str] = ""
    #: id of the padding token (models mask or ignore it)
    pad_id: int = 0

    @abc.abstractmethod
    def fit(self, texts: Sequence[str]) -> BaseTokenizer:
        """Learn what the tokenizer needs from the training texts; returns ``self``."""

    @abc.abstractmethod
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), max_length)`` int64 token ids."""

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int:
        """Number of distinct ids (the size an embedding table needs)."""

    @abc.abstractmethod
    def state(self) -> dict[str, Any]:
        """JSON-ready, with ``name``: what :meth:`from_state` rebuilds the fitted tokenizer from."""

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BaseTokenizer:
        options = {k: v for k, v in state.items() if k != "name"}
        return cls(**options)


TOKENIZERS: Registry[type[BaseTokenizer]] = Registry("data.tokenizer")


def register_tokenizer(name: str) -> Callable[[type[BaseTokenizer]], type[BaseTokenizer]]:
    """Class decorator: register a :class:`BaseTokenizer` under ``name`` (``data.tokenizer``)."""

    return TOKENIZERS.register_class(name)


def list_tokenizers() -> list[str]:
    return TOKENIZERS.names()


def build_tokenizer(spec: str | dict[str, Any]) -> BaseTokenizer:
    """An unfitted tokenizer from ``data.tokenizer`` (a name, or ``{name: ..., option: ...}``);
    unknown names and options are refused in one line."""
    options = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = options.pop("name", "word")
    if name not in TOKENIZERS:
        raise ConfigError("data.tokenizer", f"one of {list_tokenizers()}", name)
    cls = TOKENIZERS.get(name)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in options:
        if key not in accepted:
            raise ConfigError(f"data.tokenizer.{key}", f"an option of the {name!r} tokenizer ({accepted})")
    return cls(**options)


def tokenizer_from_state(state: dict[str, Any]) -> BaseTokenizer:
    """The fitted tokenizer a :meth:`BaseTokenizer.state` describes."""
    return TOKENIZERS.get(state["name"]).from_state(state)


def _length(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(field, "an integer >= 1", value)
    return value


WORD = re.compile(r"\w+|[^\w\s]")


@register_tokenizer("word")
class WordTokenizer(BaseTokenizer):
    """Words and punctuation marks, a vocabulary of the training split's most frequent ones.

    Ids: 0 padding, 1 unknown, then words by falling frequency (ties alphabetical), so the same
    training texts always give the same ids.

    Args:
        max_length: tokens per row, longer texts cut; ``None``: the longest training text
            (at most 512).
        max_vocab: most words kept (with padding and unknown).
        min_count: words seen fewer times in training become unknown.
        lowercase: fold case first.
        vocab: a fitted vocabulary (read back from a saved state).
    """

    PAD, UNK = "<pad>", "<unk>"

    def __init__(self, max_length: int | None = None, max_vocab: int = 20000, min_count: int = 1,
                 lowercase: bool = True, vocab: list[str] | None = None) -> None:
        self.max_length = _length(max_length, "data.tokenizer.max_length")
        self.max_vocab = _length(max_vocab, "data.tokenizer.max_vocab")
        self.min_count = _length(min_count, "data.tokenizer.min_count")
        if not isinstance(lowercase, bool):
            raise ConfigError("data.tokenizer.lowercase", "true or false", lowercase)
        self.lowercase, self.vocab = lowercase, vocab
        self._ids = None if vocab is None else {w: i for i, w in enumerate(vocab)}

    def words(self, text: str) -> list[str]:
        return WORD.findall(text.lower() if self.lowercase else text)

    def fit(self, texts):
        counts = Counter(w for t in texts for w in self.words(t))
        kept = sorted((w for w, c in counts.items() if c >= self.min_count), key=lambda w: (-counts[w], w))
        self.vocab = [self.PAD, self.UNK, *kept[: max(0, self.max_vocab - 2)]]
        self._ids = {w: i for i, w in enumerate(self.vocab)}
        if self.max_length is None:
            self.max_length = min(MAX_LENGTH_CAP, max((len(self.words(t)) for t in texts), default=1) or 1)
        return self

    def encode(self, texts):
        if self._ids is None or self.max_length is None:
            raise RuntimeError("fit the tokenizer on the training texts first")
        out = np.zeros((len(texts), self.max_length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self._ids.get(w, 1) for w in self.words(text)[: self.max_length]]
            out[row, : len(ids)] = ids
        return out

    @property
    def vocab_size(self) -> int:
        return len(self.vocab or ())

    def state(self):
        return {"name": self.name, "max_length": self.max_length, "max_vocab": self.max_vocab,
                "min_count": self.min_count, "lowercase": self.lowercase, "vocab": list(self.vocab or [])}


@register_tokenizer("hf")
class HuggingFaceTokenizer(BaseTokenizer):
    """A pretrained Hugging Face tokenizer from a local path: a ``tokenizer.json`` file (the
    ``tokenizers`` package) or a folder saved by ``transformers`` (``AutoTokenizer``,
    ``local_files_only``). Nothing is learnt from the data and nothing is downloaded.

    Args:
        path: the file or folder.
        max_length: tokens per row (cut and padded); ``None``: the longest training text.
    """

    def __init__(self, path: str | None = None, max_length: int | None = None) -> None:
        if not isinstance(path, str) or not path:
            raise ConfigError("data.tokenizer.path", "a local tokenizer.json file or saved tokenizer folder", path)
        self.path, self.max_length = path, _length(max_length, "data.tokenizer.max_length")
        self._tok: Any = None
        self._pad = 0

    def _load(self):
        if self._tok is not None:
            return self._tok
        path = Path(self.path)
        if not path.exists():
            raise ConfigError("data.tokenizer.path", "an existing tokenizer.json file or tokenizer folder", self.path)
        try:
            if path.is_file():
                from tokenizers import Tokenizer

                self._tok = Tokenizer.from_file(str(path))
                pad = self._tok.token_to_id("[PAD]")
                pad = self._tok.token_to_id("<pad>") if pad is None else pad
            else:
                from transformers import AutoTokenizer

                self._tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
                pad = self._tok.pad_token_id
        except ImportError as e:
            raise ConfigError("data.tokenizer", "the 'tokenizers' or 'transformers' package installed for 'hf'",
                              str(e)) from None
        except (OSError, ValueError, Exception) as e:  # noqa: BLE001 - a broken file is the user's, one line
            raise ConfigError("data.tokenizer.path", "a readable Hugging Face tokenizer",
                              f"{self.path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        self._pad = int(pad or 0)
        return self._tok

    @property
    def pad_id(self) -> int:  # type: ignore[override]
        self._load()
        return self._pad

    def _ids(self, texts) -> list[list[int]]:
        tok = self._load()
        if hasattr(tok, "encode_batch"):  # tokenizers.Tokenizer
            return [e.ids for e in tok.encode_batch(list(texts))]
        return [list(ids) for ids in tok(list(texts), add_special_tokens=True)["input_ids"]]

    def fit(self, texts):
        if self.max_length is None:
            self.max_length = min(MAX_LENGTH_CAP, max((len(i) for i in self._ids(texts)), default=1) or 1)
        return self

    def encode(self, texts):
        if self.max_length is None:
            raise RuntimeError("fit the tokenizer on the training texts first")
        out = np.full((len(texts), self.max_length), self.pad_id, dtype=np.int64)
        for row, ids in enumerate(self._ids(texts)):
            ids = ids[: self.max_length]
            out[row, : len(ids)] = ids
        return out

    @property
    def vocab_size(self) -> int:
        tok = self._load()
        return int(tok.get_vocab_size() if hasattr(tok, "get_vocab_size") else len(tok))

    def state(self):
        return {"name": self.name, "path": str(Path(self.path).resolve()), "max_length": self.max_length}
