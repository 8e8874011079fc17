"""Tiny models of every family for the compression tests: the conformance suite's own."""

from slimnas.testing import SHAPE, TINY_MODELS

MODELS = TINY_MODELS

__all__ = ["MODELS", "SHAPE"]
