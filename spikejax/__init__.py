"""spikejax: training and simulating spiking neural networks in JAX.

Submodules: ``neurons`` (LIF family, two-compartment LIF, Mihalas-Niebur), ``surrogate``,
``simulate``, ``synapses``, ``fixed_point`` (hardware-like integer mode), ``nn`` (feedforward
spiking networks), ``data``, ``encoding``, ``training``, ``experiment``.
"""

from . import data, encoding, fixed_point, neurons, nn, surrogate, synapses, training
from .simulate import Record, simulate

__version__ = "0.1.0"
__all__ = [
    "data",
    "encoding",
    "fixed_point",
    "neurons",
    "nn",
    "surrogate",
    "synapses",
    "training",
    "simulate",
    "Record",
    "__version__",
]
