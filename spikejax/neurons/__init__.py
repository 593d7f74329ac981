"""Neuron models: parameter NamedTuple + state NamedTuple + pure step function.

Units throughout spikejax: **time in seconds, potentials in volts** (or dimensionless threshold
units for abstract networks).  Time constants are stored as ``tau_*`` (never as inverses).
Every model exposes ``params(...)`` (validated constructor), ``init(params, shape)`` and
``step(params, state, x, *, dt, key=None) -> (new_state, spikes)``.
"""

from .lif import (
    LIF,
    LIFParams,
    LIFState,
    LIFSyn1,
    LIFSyn1Params,
    LIFSyn1State,
    LIFSyn2,
    LIFSyn2Params,
    LIFSyn2State,
    TwoCompartmentLIF,
    TwoCompartmentParams,
    TwoCompartmentState,
    exp_pair,
)
from .mihalas_niebur import (
    MN_PRESETS,
    MihalasNiebur,
    MNParams,
    MNPreset,
    MNState,
    MNTrace,
    mn_preset,
    mn_preset_names,
    mn_stimulus,
)
from .mihalas_niebur import run_preset as run_mn_preset  # generic name kept module-local
