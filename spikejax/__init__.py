"""spikejax: training and simulating spiking neural networks in JAX.

Core (imported with the package): ``neurons`` (LIF family, two-compartment LIF,
Mihalas-Niebur), ``surrogate``, ``simulate``, ``synapses``, ``fixed_point`` (hardware-like
integer mode), ``nn`` (feedforward spiking networks), ``data``, ``encoding``, ``training``.

Loaded on first use (``spikejax.whetstone`` etc. or ``import spikejax.whetstone``), so that
``import spikejax`` stays light: ``experiment`` (reproducible runs), ``whetstone`` (sharpened
activations -> binary spiking nets), ``softlif`` and ``uncertainty`` (SoftLIF conversion,
permanent dropout, KS agreement), ``erbp``, ``plasticity`` and ``synops`` (event-driven random
backpropagation, three-factor rules, SynOps/energy), ``integer`` and ``metrics`` (integer
weights by MIP / branch and bound, Design Index), ``integer_snn`` (integer-weight spiking MLPs
run in fixed point), ``bgl`` (Blue Gene/L log templates, node-failure features), ``sweep``, ``tuning`` and ``pareto``
(vmapped sweeps, Bayesian optimisation, Pareto fronts), ``whetstone_sweep`` (vmappable Whetstone
training for sweeps), ``runtime`` (CPU allocator tuning).
"""

import importlib as _importlib

from . import data, encoding, fixed_point, neurons, nn, surrogate, synapses, training
from .simulate import Record, simulate

__version__ = "0.1.0"

_LAZY = (
    "experiment",
    "whetstone",
    "softlif",
    "uncertainty",
    "erbp",
    "plasticity",
    "synops",
    "integer",
    "integer_snn",
    "metrics",
    "bgl",
    "sweep",
    "whetstone_sweep",
    "runtime",
    "tuning",
    "pareto",
)


def __getattr__(name):
    if name in _LAZY:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'spikejax' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


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
    *_LAZY,
]
