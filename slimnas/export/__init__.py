"""Exports of a finished model; every export is checked against eager outputs."""

from slimnas.export._onnx import ExportMismatchError, export_onnx, verify_onnx

__all__ = ["ExportMismatchError", "export_onnx", "verify_onnx"]
