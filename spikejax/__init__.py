"""spikejax: training and simulating spiking neural networks in JAX."""

from . import neurons, surrogate, synapses
from .simulate import Record, simulate

__version__ = "0.1.0"
__all__ = ["neurons", "surrogate", "synapses", "simulate", "Record", "__version__"]
