"""Conversion methods, one module each, found by name: ``get_method("qcfs")``."""

from ..encoding import DirectEncoder, FirstStepEncoder
from . import aec, qcfs, snm, spikezip  # noqa: F401  (register the methods)
from .base import ConversionMethod, MethodContext, available_methods, get_method, register_method
from .snn import SpikingNetwork, TimeFold
from .transforms import BiasOnce

__all__ = ["BiasOnce", "ConversionMethod", "DirectEncoder", "FirstStepEncoder", "MethodContext", "SpikingNetwork",
           "TimeFold", "available_methods", "get_method", "register_method"]
