"""Conversion methods, one module each, found by name: ``get_method("qcfs")``."""

from . import aec, qcfs, snm  # noqa: F401  (register the methods)
from .base import ConversionMethod, MethodContext, available_methods, get_method, register_method
from .snn import BiasOnce, DirectEncoder, SpikingNetwork, TimeFold

__all__ = ["BiasOnce", "ConversionMethod", "DirectEncoder", "MethodContext", "SpikingNetwork", "TimeFold",
           "available_methods", "get_method", "register_method"]
