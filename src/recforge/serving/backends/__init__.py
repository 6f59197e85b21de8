"""Serving backends by name: `torch` (default) and `onnx` (embedding lookups in torch, the rest in onnxruntime)."""

from recforge.serving.backends import onnx_backend, torch_backend  # noqa: F401  (registers the backends)
from recforge.serving.backends.base import BACKENDS, Backend, make_backend

__all__ = ["BACKENDS", "Backend", "make_backend"]
