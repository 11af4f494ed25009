"""Conversion methods, one module each, found by name: ``get_method("qcfs")``."""

from . import qcfs  # noqa: F401  (register the methods)
from .base import ConversionMethod, MethodContext, available_methods, get_method, register_method
from .snn import DirectEncoder, SpikingNetwork, TimeFold

__all__ = ["ConversionMethod", "DirectEncoder", "MethodContext", "SpikingNetwork", "TimeFold",
           "available_methods", "get_method", "register_method"]
