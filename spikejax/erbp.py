"""Event-driven random back-propagation (eRBP) and its stochastic-synapse variant (peRBP).

Network (papers.md 2.2, after Neftci et al. 2017; semantics only, own code):

* **hidden and output** neurons are two-compartment integrate-and-fire units
  (:class:`spikejax.neurons.TwoCompartmentLIF`): the soma is driven by a first-order kinetic
  synapse ``i`` (the synaptic current ``I_syn``), the dendrite ``u`` (= ``U``) by the error;
  the dendrite does not drive the soma;
* **error** neurons come in two populations, ``err+`` and ``err-``: non-leaky integrators,
  rectified at 0, with subtractive reset at ``err_threshold``.  ``err+`` integrates
  ``+w_label_err`` per label spike and ``-w_out_err`` per output spike, ``err-`` the opposite, so
  they fire at about ``(L - P)+`` and ``(P - L)+`` (label rate minus output rate);
* **feedback**: ``err+ - err-`` reaches the output dendrites one-to-one (weight ``w_err_out``)
  and every hidden layer's dendrites through a fixed random matrix ``G_l [n_out, n_hidden_l]``
  whose columns are centred (each hidden neuron's feedback weights sum to zero);
* **learning** (papers.md 2.1): on every presynaptic spike, for every target ``j``,
  ``w_ij += lr * U_j`` if ``g_low < I_syn,j < g_high`` (boxcar on the postsynaptic synaptic
  current), and only after the first ``t_burnin`` seconds of each presentation.  This is
  :func:`spikejax.plasticity.erbp_rule`; per time step the update is the matrix product
  ``pre_spikes^T @ (boxcar(I_syn) * U)``, summed over the samples of a minibatch presented in
  parallel (``batch_size = 1`` is the pure online rule).  Nothing is back-propagated through
  time: every quantity is local and the weights change while the sample is shown.
* **peRBP**: every synaptic event is transmitted with probability ``p_syn`` and the *same coin*
  gates its weight update (a blanked-out event neither drives nor teaches).  ``mask_mode``:
  ``"per_sample"`` draws one coin per (sample, synapse, step), exact for any batch size but
  ``B x n_pre x n_post`` random numbers per step; ``"shared"`` draws one coin per (synapse, step)
  and uses it for every sample of the minibatch: each sample still sees independent
  Bernoulli(p) transmission in time, and the rule is exact for ``batch_size = 1``, but within a
  step the samples of a batch share coins.  ``"per_sample_offset"`` gives each sample its own
  coins from far fewer random numbers (:func:`offset_coins`: coins of different samples at one
  synapse are independent, and the drive and summed update have exactly the mean and covariance
  of ``"per_sample"``).  ``mask_mode`` applies to training; test presentations,
  which learn nothing, always share coins across the batch (each sample's transmission has the
  same distribution either way).  Coins have 8-bit resolution (p is rounded to a
  multiple of 1/256).  At test time the synapses stay stochastic (``stochastic_test=True``, as in
  Auryn); ``stochastic_test=False`` transmits every event with its expected weight ``p_syn * w``
  instead (the mean network, as dropout is replaced by its expectation at inference).

Discretisation: ``dt`` defaults to 1 ms (Auryn: 0.1 ms), so a refractory period of 3.9 ms becomes
4 steps and the maximum rate is 200 Hz.  Synapses have a one-step delay between layers (a spike
emitted at step ``t`` drives the next layer at ``t + 1``).  Each minibatch starts from rest.

Input: ``input_code="binary"`` (default) follows the reading of Auryn's SRM0 input in papers.md
2.2: pixels above ``input_threshold`` fire regular trains at ``input_rate`` (random phase per
sample and pixel), the rest are silent.  ``"poisson"``: Bernoulli spikes with rate
``input_rate * x``.  ``"srm0"``: Auryn's escape-noise input neuron as its MNIST scripts really
drive it (``SRM0Group`` fed by ``PatternStimulator``, which scales the pixel current by the 0.1 ms
time step, a factor the papers.md reading missed): hazard
``h(x) = 100 Hz * exp(((x - input_threshold) * input_scale - 0.1) / 0.05)`` for ``x > 0`` (0 for
``x = 0``) with a dead time of ``input_t_ref`` after each spike, so the rates are graded (about
235 Hz at x = 1, 25 Hz at 0.5, 4 Hz at 0.3 with Auryn's 0.43 / 0.5 / 4 ms) and irregular; see
:func:`srm0_hazard`.  The PI-MNIST rows were tuned with ``"binary"``, and ``"srm0"`` did not beat
it on validation (experiments/erbp_pimnist_tuning.md).  Labels fire regular trains at
``label_rate`` during training only.

Learning under blank-out: ``blank_updates=True`` (default) blanks the update together with the
transmission (papers.md 2.1, Auryn's ``peRBPConnection``); ``False`` transmits with the coin but
learns on every presynaptic spike, as the connection class of Auryn's MLP program
(``modulatedVmPlasticConnection`` in ``exp_rbp_dual.cpp``) does.  ``hidden_gate`` sets the boxcar
of the hidden->hidden weights apart from ``gate`` (that program leaves them ungated, +-25).

Noise: ``noise_std > 0`` with ``noise_rate > 0`` is Auryn's ``PoissonStimulator``: each step every
hidden and output membrane receives ``Poisson(noise_rate * dt)`` kicks of size ``noise_std`` (1 kHz,
50e-3 in Neftci's one-hidden-layer script); ``noise_rate = 0`` gives a zero-mean Gaussian drive of
standard deviation ``noise_std`` entering like the bias.

Prediction: most output spikes over the presentation; ties (including no spike at all) are broken
by the running sum of the output synaptic current.

The module also holds the non-spiking baselines on the same architectures: ordinary
back-propagation and random back-propagation (feedback alignment, Lillicrap et al. 2016), both
ReLU MLPs with a softmax cross-entropy loss, plus a rate version of the eRBP update
(:func:`rate_updates`) used to compare eRBP's direction with the true gradient, and the **rate
twin** (:func:`train_rate_twin`): the same rule trained without spikes, in seconds, to tell a
shortfall of the rule from one of the spiking simulation.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from ._checks import check_choice, check_positive, check_probability
from .data import epoch_batches, take_batch
from .neurons.lif import TwoCompartmentLIF
from .plasticity import TraceState, boxcar_gate, check_gate, erbp_rule
from .uncertainty import check_rate, dropout_mask
from .surrogate import heaviside
from .synops import DecisionSums, combine_sums, decide, decision_sums, first_spike_steps, summarize, synops_per_step

__all__ = [
    "ERBPConfig",
    "ERBPParams",
    "ERBPState",
    "ErrorState",
    "init_erbp",
    "check_params",
    "centred_feedback",
    "coins",
    "srm0_hazard",
    "offset_coins",
    "init_state",
    "present",
    "make_train_epoch",
    "make_evaluate",
    "run_presentation",
    "rate_forward",
    "rate_updates",
    "train_rate_twin",
    "twin_errors",
    "twin_input",
    "RATE_ACTIVATIONS",
    "init_mlp_params",
    "random_feedback",
    "fa_matmul",
    "mlp_logits",
    "mlp_loss",
]

Array = jax.Array


# ---------------------------------------------------------------------------------------------
# Configuration and parameters


@dataclasses.dataclass(frozen=True)
class ERBPConfig:
    """Static eRBP hyper-parameters (SI units).  Defaults: Auryn values of papers.md 2.2-2.3
    except ``dt`` (1 ms) and the presentation times (100 ms train and test, 20 ms burn-in)."""

    sizes: tuple = (784, 100, 10)
    dt: float = 1e-3
    t_train: float = 0.1
    t_test: float = 0.1
    t_burnin: float = 0.02
    lr: float = 6e-4
    gate: tuple = (-1.15, 1.15)
    hidden_gate: tuple | None = None  # boxcar of the hidden->hidden weights (None: ``gate``); Auryn: (-25, 25)
    p_syn: float = 1.0
    mask_mode: str = "shared"
    stochastic_test: bool = True
    test_noise: bool = True  # membrane noise also during test presentations (as Auryn's PoissonStimulator)
    # two-compartment neurons (hidden and output)
    tau_mem: float = 1e-3
    tau_syn: float = 4e-3
    tau_dend: float = 5e-3
    v_th: float = 0.1
    t_ref: float = 3.9e-3
    bias: float = 0.0
    noise_std: float = 0.0
    noise_rate: float = 0.0
    # error neurons and their pathways
    err_threshold: float = 0.1
    w_label_err: float = 0.09
    w_out_err: float = 0.09
    w_err_out: float = 0.09
    # input and label coding
    input_code: str = "binary"
    input_rate: float = 250.0
    input_threshold: float = 0.43
    input_scale: float = 0.5  # "srm0": pixel current (x - input_threshold) * input_scale
    input_t_ref: float = 4e-3  # "srm0": dead time of the input neurons
    blank_updates: bool = True  # peRBP: a blanked-out event also teaches nothing (False: learns anyway)
    label_rate: float = 250.0
    # initialisation: U(+-sqrt(std_weight / (n_pre + n_post)))
    init_std_weight: float = 7.0
    feedback_std_weight: float = 7.0

    def __post_init__(self):
        sizes = tuple(int(s) for s in self.sizes)
        if len(sizes) < 2 or any(s <= 0 for s in sizes):
            raise ValueError(f"sizes must list at least two positive layer widths (input, ..., output), got {self.sizes}")
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "gate", check_gate(self.gate))
        if self.hidden_gate is not None:
            try:
                object.__setattr__(self, "hidden_gate", check_gate(self.hidden_gate))
            except ValueError as e:
                raise ValueError(f"hidden_gate: {e}") from None
        check_probability("p_syn (synaptic transmission probability)", self.p_syn)
        check_choice("mask_mode", self.mask_mode, {"shared", "per_sample", "per_sample_offset"})
        check_choice("input_code", self.input_code, {"binary", "poisson", "srm0"})
        for name in ("dt", "t_train", "t_test", "tau_mem", "tau_syn", "tau_dend", "v_th", "err_threshold"):
            check_positive(name, getattr(self, name))
        for name in ("t_burnin", "t_ref", "lr", "noise_std", "noise_rate", "input_rate", "label_rate", "init_std_weight", "feedback_std_weight", "input_scale", "input_t_ref"):
            check_positive(name, getattr(self, name), allow_zero=True)
        for name in ("input_rate", "label_rate"):
            if getattr(self, name) * self.dt > 1.0:
                raise ValueError(f"{name} * dt = {getattr(self, name) * self.dt} exceeds one spike per step")
        if self.t_burnin >= self.t_train:
            raise ValueError(f"t_burnin ({self.t_burnin}) must be shorter than t_train ({self.t_train})")

    @property
    def n_train_steps(self) -> int:
        return int(round(self.t_train / self.dt))

    @property
    def n_test_steps(self) -> int:
        return int(round(self.t_test / self.dt))

    @property
    def n_burnin_steps(self) -> int:
        return int(round(self.t_burnin / self.dt))

    @property
    def n_out(self) -> int:
        return self.sizes[-1]

    @property
    def hidden(self) -> tuple:
        return self.sizes[1:-1]


class ERBPParams(NamedTuple):
    """``w[l]``: forward weights ``[n_l, n_{l+1}]``; ``g[l]``: feedback error -> hidden layer ``l``,
    ``[n_out, n_hidden_l]`` (fixed, never learned)."""

    w: tuple
    g: tuple


class ErrorState(NamedTuple):
    v_pos: Array  # err+ integrators [B, n_out]
    v_neg: Array  # err- integrators
    z_pos: Array  # last step's spikes
    z_neg: Array


class ERBPState(NamedTuple):
    layers: tuple  # TwoCompartmentState per layer (hidden..., output), [B, n]
    spikes: tuple  # last step's spikes per layer, [B, n]
    err: ErrorState
    inp: Array | None = None  # input_code="srm0": steps of dead time left per input neuron, [B, n_in]


def centred_feedback(g):
    """Centre each column of ``g [n_out, n_hidden]`` (zero sum over the error neurons; papers.md 2.2)."""
    g = jnp.asarray(g)
    return g - jnp.mean(g, axis=0, keepdims=True)


def init_erbp(key, cfg: ERBPConfig, dtype=jnp.float32) -> ERBPParams:
    """Auryn initialisation: ``W ~ U(+-sqrt(7/(n_pre + n_post)))``, ``G ~ U(+-sqrt(7/(n_out + n_h)))``
    with centred columns."""
    sizes = cfg.sizes
    keys = jax.random.split(key, 2 * len(sizes))
    ws = []
    for k, (a, b) in zip(keys, zip(sizes[:-1], sizes[1:])):
        lim = math.sqrt(cfg.init_std_weight / (a + b))
        ws.append(jax.random.uniform(k, (a, b), dtype, -lim, lim))
    gs = []
    for k, nh in zip(keys[len(sizes) :], cfg.hidden):
        lim = math.sqrt(cfg.feedback_std_weight / (cfg.n_out + nh))
        gs.append(centred_feedback(jax.random.uniform(k, (cfg.n_out, nh), dtype, -lim, lim)))
    return ERBPParams(tuple(ws), tuple(gs))


def check_params(cfg: ERBPConfig, params: ERBPParams) -> ERBPParams:
    """Shape checks; a wrong feedback or weight matrix raises ``ValueError`` naming it."""
    params = ERBPParams(tuple(params.w), tuple(params.g))
    sizes = cfg.sizes
    if len(params.w) != len(sizes) - 1:
        raise ValueError(f"expected {len(sizes) - 1} forward weight matrices for sizes {sizes}, got {len(params.w)}")
    for l, (w, a, b) in enumerate(zip(params.w, sizes[:-1], sizes[1:])):
        if jnp.shape(w) != (a, b):
            raise ValueError(f"forward weight matrix w[{l}] has shape {jnp.shape(w)}, expected ({a}, {b})")
    if len(params.g) != len(cfg.hidden):
        raise ValueError(
            f"expected one feedback matrix per hidden layer ({len(cfg.hidden)}) for sizes {sizes}, got {len(params.g)}"
        )
    for l, (g, nh) in enumerate(zip(params.g, cfg.hidden)):
        if jnp.shape(g) != (cfg.n_out, nh):
            raise ValueError(
                f"feedback matrix G[{l}] (error neurons -> hidden layer {l + 1}) has shape {jnp.shape(g)}, expected "
                f"(n_out, n_hidden) = ({cfg.n_out}, {nh})"
            )
    return params


# ---------------------------------------------------------------------------------------------
# Building blocks


def coins(key, shape, p, dtype=jnp.float32):
    """Bernoulli(p) transmission mask with 8-bit resolution (four coins per 32 random bits; p is
    rounded to a multiple of 1/256, e.g. 0.65 -> 166/256 = 0.648; NSAT uses 4 bits)."""
    u = _bytes(key, int(np.prod(shape))).reshape(shape)
    thr = jnp.uint32(min(int(round(float(p) * 256.0)), 256))
    return (u.astype(jnp.uint32) < thr).astype(dtype)


def _bytes(key, n):
    """``n`` uniform random bytes (four per 32 random bits)."""
    bits = jax.random.bits(key, ((n + 3) // 4,), jnp.uint32)
    return lax.bitcast_convert_type(bits, jnp.uint8).reshape(-1)[:n]


def offset_coins(key, batch: int, shape, p, dtype=jnp.float32):
    """Per-sample Bernoulli(p) masks ``[batch, n_pre, n_post]`` from ``n_pre * n_post + batch * n_pre``
    random bytes instead of ``batch * n_pre * n_post``: ``u[b, k, i] = (R[k, i] + r[b, k]) mod 256``
    with ``R`` and ``r`` uniform bytes, and the coin is ``u < round(256 p)``.

    Every ``u`` is uniform, and any three of them are independent (the map from the four bytes
    involved to three ``u`` has full rank mod 256; with ``b`` fixed the ``R[k, i]`` are independent,
    and for one synapse ``u[b] - u[0] = r[b] - r[0]`` is independent of ``u[0]``).  So the masks of
    the samples of a batch are mutually independent at each synapse, and the mean and covariance of
    anything linear in the mask (the transmitted drive, the summed weight update) are exactly those
    of independent per-sample coins.  Only "rectangles" are dependent:
    ``u[b,k,i] - u[b,k,j] = u[b',k,i] - u[b',k,j]``."""
    n_pre, n_post = (int(s) for s in shape)
    k1, k2 = jax.random.split(key)
    r_syn = _bytes(k1, n_pre * n_post).reshape(n_pre, n_post)
    r_pre = _bytes(k2, batch * n_pre).reshape(batch, n_pre)
    thr = min(int(round(float(p) * 256.0)), 256)
    if thr >= 256:
        return jnp.ones((batch, n_pre, n_post), dtype)
    u = r_syn[None] + r_pre[:, :, None]  # uint8 arithmetic wraps mod 256
    return (u < jnp.uint8(thr)).astype(dtype)


def _neuron(cfg):
    model = TwoCompartmentLIF(spike_fn=heaviside, reset="zero")
    params = TwoCompartmentLIF.params(
        tau_mem=cfg.tau_mem, tau_syn=cfg.tau_syn, tau_dend=cfg.tau_dend, v_th=cfg.v_th, v_reset=0.0, t_ref=cfg.t_ref, bias=cfg.bias
    )
    return model, params


def init_state(cfg: ERBPConfig, batch: int, dtype=jnp.float32) -> ERBPState:
    model, p = _neuron(cfg)
    layers = tuple(model.init(p, (batch, n), dtype) for n in cfg.sizes[1:])
    spikes = tuple(jnp.zeros((batch, n), dtype) for n in cfg.sizes[1:])
    z = jnp.zeros((batch, cfg.n_out), dtype)
    inp = jnp.zeros((batch, cfg.sizes[0]), dtype) if cfg.input_code == "srm0" else None  # no dead time left
    return ERBPState(layers, spikes, ErrorState(z, z, z, z), inp)


# Auryn's SRM0Group constants (papers.md 2.2): rho0, threshold, escape-noise width
SRM0_RHO0, SRM0_THETA, SRM0_DELTA_U = 100.0, 0.1, 0.05


def srm0_hazard(x, threshold: float = 0.43, scale: float = 0.5):
    """Hazard (Hz) of Auryn's SRM0 input neuron for pixel values ``x`` in [0, 1] as Neftci's MNIST
    scripts drive it: ``PatternStimulator`` sets the background current to ``(x - threshold) * 1e4 *
    scale`` times the 0.1 ms time step, i.e. ``(x - threshold) * scale``, and ``x = 0`` to a current
    that silences the neuron; the membrane stays at rest (no synaptic input), so the hazard is
    ``rho0 * exp((bg - theta) / delta_u)``.  With a dead time ``t_ref`` the rate is ``h / (1 + h t_ref)``."""
    x = jnp.asarray(x)
    bg = (x - threshold) * scale
    h = SRM0_RHO0 * jnp.exp((bg - SRM0_THETA) / SRM0_DELTA_U)
    return jnp.where(x > 0, h, jnp.zeros((), h.dtype))


def _n_input_ref(cfg) -> int:
    return max(1, int(round(cfg.input_t_ref / cfg.dt)))


def _encoder(cfg, x, key):
    """Per-presentation input code: (spike probability per step [B, n], phase [B, n]); ``"srm0"``
    has no phase (its state is the dead time, :func:`_input_state`)."""
    x = jnp.asarray(x)
    rate_dt = jnp.asarray(cfg.input_rate * cfg.dt, x.dtype)
    if cfg.input_code == "srm0":
        h = srm0_hazard(x, cfg.input_threshold, cfg.input_scale).astype(x.dtype)
        return -jnp.expm1(-h * cfg.dt), None
    if cfg.input_code == "binary":
        p = jnp.where(x > cfg.input_threshold, rate_dt, jnp.zeros((), x.dtype))
    else:
        p = jnp.clip(x, 0.0, 1.0) * rate_dt
    return p, jax.random.uniform(key, x.shape, x.dtype)


def _input_state(cfg, enc, key):
    """``"srm0"``: dead time left at the start of a presentation, drawn from the stationary
    distribution (blocked with the stationary probability, then at a uniform one of the n - 1
    blocked steps of an interval), so the inputs do not all fire together at the first step;
    ``None`` for the stateless codes."""
    if cfg.input_code != "srm0":
        return None
    n = _n_input_ref(cfg)
    p, _ = enc
    if n == 1:
        return jnp.zeros_like(p)
    # discrete dead-time process: n - 1 blocked steps after a spike, then Bernoulli(p) each step,
    # so the stationary probability of a blocked step is (n - 1) p / ((n - 1) p + 1)
    q = (n - 1) * p / ((n - 1) * p + 1.0)
    k1, k2 = jax.random.split(key)
    # a counter of 2..n at the start of a step blocks it (it counts down first); each of the n - 1
    # blocked steps of an interval is equally likely
    left = jax.random.randint(k2, p.shape, 2, n + 1).astype(p.dtype)
    return jnp.where(jax.random.uniform(k1, p.shape, p.dtype) < q, left, jnp.zeros((), p.dtype))


def _regular(p, phase, t):
    tf = jnp.asarray(t, p.dtype)
    return (jnp.floor((tf + 1.0) * p + phase) > jnp.floor(tf * p + phase)).astype(p.dtype)


def _input_spikes(cfg, enc, t, key, ref=None):
    """Input spikes of step ``t`` and the new input state (dead time left, ``"srm0"`` only).  SRM0
    as in Auryn: the dead-time counter counts down first, a spike needs it at zero and restarts it
    at ``n`` (so inter-spike intervals are ``n - 1`` blocked steps plus a geometric wait)."""
    p, phase = enc
    if cfg.input_code == "binary":
        return _regular(p, phase, t), ref
    if cfg.input_code == "srm0":
        ref = jnp.maximum(ref - 1.0, 0.0)
        s = ((ref == 0) & jax.random.bernoulli(key, p)).astype(p.dtype)
        return s, jnp.where(s > 0, jnp.asarray(_n_input_ref(cfg), p.dtype), ref)
    return jax.random.bernoulli(key, p).astype(p.dtype), ref


def _poisson_counts(key, lam: float, shape, dtype):
    """``Poisson(lam)`` counts by inverse transform of one uniform per entry against the static CDF
    table (truncated where the tail is below 1e-9; float32 resolves the CDF to ~1e-7).  A few times
    cheaper per step on CPU than :func:`jax.random.poisson`, which it replaces for small ``lam``."""
    if lam > 30.0:
        return jax.random.poisson(key, lam, shape).astype(dtype)
    p, cdf, k = math.exp(-lam), [], 0
    acc = p
    while 1.0 - acc > 1e-9 and k < 200:
        cdf.append(acc)
        k += 1
        p *= lam / k
        acc += p
    cdf.append(acc)
    u = jax.random.uniform(key, shape, jnp.float32)
    table = jnp.asarray(cdf, jnp.float32).reshape((1,) * len(tuple(shape)) + (-1,))
    return jnp.sum((u[..., None] >= table).astype(jnp.int32), axis=-1).astype(dtype)


def _error_step(v, drive, theta):
    v = v + drive
    z = (v > theta).astype(v.dtype)
    v = jnp.maximum(v - theta * z, 0.0)
    return v, z


def _step(cfg, params_g, carry, xs, *, enc, lab, learn: bool, train: bool, lr_scale=1.0, record: bool = False):
    """One time step of the whole network (all layers, error neurons, plasticity).  With ``record``
    the outputs also hold this step's input spikes."""
    ws, st = carry
    t, key = xs
    model, nparams = _neuron(cfg)
    L = len(ws)
    B = st.spikes[0].shape[0]
    dtype = st.spikes[0].dtype
    k_in, k_noise, k_mask = jax.random.split(key, 3)
    mask_keys = jax.random.split(k_mask, L)

    s_in, inp = _input_spikes(cfg, enc, t, k_in, st.inp)
    pres = (s_in,) + st.spikes[:-1]  # each layer sees last step's spikes of the layer below
    err_diff = st.err.z_pos - st.err.z_neg  # [B, n_out]
    stochastic = cfg.p_syn < 1.0 and (train or cfg.stochastic_test)
    rule = erbp_rule(cfg.lr)
    empty = TraceState(jnp.zeros((0,), dtype), jnp.zeros((0,), dtype), jnp.zeros((0,), dtype))

    new_layers, new_spikes, new_ws, synops = [], [], [], jnp.zeros((B,), dtype)
    for l in range(L):
        w, pre, ns = ws[l], pres[l], st.layers[l]
        lo, hi = cfg.hidden_gate if (cfg.hidden_gate is not None and 0 < l < L - 1) else cfg.gate
        mask = None
        if stochastic:
            if cfg.mask_mode == "shared" or not train:
                # test presentations learn nothing, so coins shared by the batch give every sample
                # the same marginal transmission as its own coins would, at 1/B of the cost
                mask = coins(mask_keys[l], w.shape, cfg.p_syn, dtype)
                x_soma = pre @ (w * mask)
            else:
                if cfg.mask_mode == "per_sample":
                    mask = coins(mask_keys[l], (B,) + w.shape, cfg.p_syn, dtype)
                else:
                    mask = offset_coins(mask_keys[l], B, w.shape, cfg.p_syn, dtype)
                x_soma = jnp.einsum("bi,bij->bj", pre, w[None] * mask)
            synops = synops + synops_per_step(pre, mask=mask)
        else:
            # eRBP (p_syn = 1), or peRBP tested with its expected transmission (stochastic_test=False)
            x_soma = pre @ (w * cfg.p_syn)
            synops = synops + synops_per_step(pre, fan_out=w.shape[1])
        if l < L - 1:
            x_dend = err_diff @ params_g[l]
        else:
            x_dend = cfg.w_err_out * err_diff
        if learn:
            # three-factor update on this step's presynaptic spikes: pre x boxcar(I_syn) x U
            _, dw = rule.step(
                empty, pre, None, ns.u, dt=cfg.dt, post_value=boxcar_gate(ns.i, lo, hi), mask=mask if cfg.blank_updates else None
            )
            w = w + lr_scale * dw
        np_l = nparams
        noisy = cfg.noise_std > 0 and (train or cfg.test_noise)
        if noisy and cfg.noise_rate > 0:
            # Auryn's PoissonStimulator: Poisson(noise_rate * dt) kicks of size noise_std added to the
            # membrane each step (a bias b moves v by (1 - exp(-dt/tau_mem)) * b, hence the division)
            kicks = _poisson_counts(jax.random.fold_in(k_noise, l), cfg.noise_rate * cfg.dt, x_soma.shape, dtype)
            gain = 1.0 / (1.0 - math.exp(-cfg.dt / cfg.tau_mem))
            np_l = nparams._replace(bias=nparams.bias + (cfg.noise_std * gain) * kicks)
        elif noisy:
            # membrane noise: a Gaussian drive held over the step (enters like the bias)
            noise = cfg.noise_std * jax.random.normal(jax.random.fold_in(k_noise, l), x_soma.shape, dtype)
            np_l = nparams._replace(bias=nparams.bias + noise)
        ns, z = model.step(np_l, ns, (x_soma, x_dend), dt=cfg.dt)
        new_layers.append(ns)
        new_spikes.append(z)
        new_ws.append(w)

    # error neurons: label spikes (training only) against last step's output spikes
    z_out_prev = st.spikes[-1]
    s_lab = _regular(lab[0], lab[1], t) if train else jnp.zeros_like(z_out_prev)
    drive = cfg.w_label_err * s_lab - cfg.w_out_err * z_out_prev
    v_pos, z_pos = _error_step(st.err.v_pos, drive, cfg.err_threshold)
    v_neg, z_neg = _error_step(st.err.v_neg, -drive, cfg.err_threshold)
    new_st = ERBPState(tuple(new_layers), tuple(new_spikes), ErrorState(v_pos, v_neg, z_pos, z_neg), inp)
    out = (new_spikes[-1], new_layers[-1].i, synops)
    if record:
        out = out + (s_in,)
    return (tuple(new_ws), new_st), out


def _label_code(cfg, labels, key, dtype):
    onehot = jax.nn.one_hot(labels, cfg.n_out, dtype=dtype)
    return onehot * jnp.asarray(cfg.label_rate * cfg.dt, dtype), jax.random.uniform(key, onehot.shape, dtype)


def present(
    cfg: ERBPConfig, params: ERBPParams, x, labels=None, key=None, *, train: bool = False, record: bool = False, lr_scale=1.0
):
    """Present a minibatch ``x [B, n_in]`` (values in [0, 1]) for one presentation.

    ``train=True`` needs ``labels`` (int ``[B]``): the labels drive the error neurons and the
    weights learn online after the burn-in.  Returns ``(params, outputs)`` with ``outputs`` a
    dict of time-major ``out_spikes [T, B, C]``, ``out_current [T, B, C]``, ``synops [T, B]``
    (and with ``record=True`` every layer's spikes, ``layer_spikes``, the input spikes and the
    error spikes).  ``lr_scale`` (may be traced) multiplies the learning rate, for schedules.
    """
    if key is None:
        raise ValueError("present: a PRNG key is required")
    params = check_params(cfg, params)
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[1] != cfg.sizes[0]:
        raise ValueError(f"x must be [batch, {cfg.sizes[0]}], got shape {x.shape}")
    if train and labels is None:
        raise ValueError("present(train=True) needs labels")
    B = x.shape[0]
    dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
    x = x.astype(dtype)
    k_enc, k_lab, k_run = jax.random.split(key, 3)
    enc = _encoder(cfg, x, k_enc)
    inp0 = _input_state(cfg, enc, k_enc)
    lab = _label_code(cfg, labels, k_lab, dtype) if train else None
    T = cfg.n_train_steps if train else cfg.n_test_steps
    nb = cfg.n_burnin_steps if train else T
    ts = jnp.arange(T, dtype=jnp.int32)
    keys = jax.random.split(k_run, T)
    carry = (tuple(params.w), init_state(cfg, B, dtype)._replace(inp=inp0))

    def body(learn):
        def f(c, xs):
            c, out = _step(cfg, params.g, c, xs, enc=enc, lab=lab, learn=learn, train=train, lr_scale=lr_scale, record=record)
            if record:
                (_, st) = c
                out = out + (st.spikes, st.err.z_pos, st.err.z_neg)
            return c, out

        return f

    outs = []
    if nb > 0:
        carry, o1 = lax.scan(body(False), carry, (ts[:nb], keys[:nb]))
        outs.append(o1)
    if nb < T:
        carry, o2 = lax.scan(body(train), carry, (ts[nb:], keys[nb:]))
        outs.append(o2)
    o = jax.tree_util.tree_map(lambda *a: jnp.concatenate(a, axis=0), *outs) if len(outs) > 1 else outs[0]
    result = {"out_spikes": o[0], "out_current": o[1], "synops": o[2]}
    if record:
        result.update(input_spikes=o[3], layer_spikes=o[4], err_pos=o[5], err_neg=o[6])
    return ERBPParams(carry[0], params.g), result


def run_presentation(cfg, params, x, key, labels=None, train=False):
    """:func:`present` with everything recorded (for rasters); jitted per config."""
    params = check_params(cfg, params)
    return _jit_present(cfg, train)(params, jnp.asarray(x), labels if labels is None else jnp.asarray(labels), key)


def _jit_present(cfg, train):
    return jax.jit(lambda p, x, y, k: present(cfg, p, x, y, k, train=train, record=True))


def _decide_counts(out_spikes, out_current):
    return decide(jnp.sum(out_spikes, axis=0), jnp.sum(out_current, axis=0), silent=None)


def make_train_epoch(cfg: ERBPConfig, n_train: int, batch_size: int):
    """Jitted ``epoch(params, x [N, n_in], y [N], key, lr_scale=1.0) -> (params, train_acc)``: one shuffled
    pass, minibatches of ``batch_size`` presented in parallel, weights updated every time step.  The
    training accuracy is read from the outputs while the samples are learned (labels present)."""
    if not 1 <= batch_size <= n_train:
        raise ValueError(f"batch_size must be in 1..{n_train}, got {batch_size}")

    @jax.jit
    def epoch(params, x, y, key, lr_scale=1.0):
        lr_scale = jnp.asarray(lr_scale, jnp.float32)
        kp, kb = jax.random.split(key)
        idx = epoch_batches(kp, n_train, batch_size)
        nb = idx.shape[0]

        def body(p, xs):
            bi, k = xs
            xb, yb = take_batch((x, y), bi)
            p, o = present(cfg, p, xb, yb, k, train=True, lr_scale=lr_scale)
            pred = _decide_counts(o["out_spikes"], o["out_current"])
            return p, jnp.sum((pred == yb).astype(jnp.float32))

        params, correct = lax.scan(body, params, (idx, jax.random.split(kb, nb)))
        return params, jnp.sum(correct) / (nb * batch_size)

    return epoch


def make_evaluate(cfg: ERBPConfig, batch_size: int = 1000, steps: Sequence[int] | None = None):
    """Jitted ``evaluate(params, x, y, key) -> DecisionSums`` over the whole set (padding masked);
    turn it into numbers with :func:`evaluation_summary`.  ``steps``: the decision times of the
    accuracy-vs-SynOps curve (default: 16 points from 1% to 100% of the presentation).  The
    full-presentation decision counts spikes, breaking ties (and silence) by the summed output
    synaptic current."""
    T = cfg.n_test_steps
    if steps is None:
        fr = (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
        steps = sorted({min(T, max(1, int(round(T * f)))) for f in fr})
    steps = [int(s) for s in steps]

    @jax.jit
    def _eval_scan(params, xb, yb, key):
        def body(acc, xs):
            xi, yi, k = xs
            _, o = present(cfg, params, xi, None, k, train=False)
            valid = (yi >= 0).astype(o["synops"].dtype)  # padded rows carry label -1
            s = decision_sums(o["out_spikes"], o["synops"] * valid[None, :], yi, steps, tie_break=o["out_current"], count_silent=True)
            t1 = first_spike_steps(o["out_spikes"]).astype(valid.dtype)
            decided = (t1 < o["out_spikes"].shape[0]).astype(valid.dtype)
            s = s._replace(n=jnp.sum(valid), first_decided=jnp.sum(decided * valid), first_steps=jnp.sum(t1 * valid))
            return combine_sums(acc, s), None

        z = jnp.zeros((), jnp.float32)
        acc0 = DecisionSums(z, jnp.zeros((len(steps),)), jnp.zeros((len(steps),)), z, z, z, z)
        acc, _ = lax.scan(body, acc0, (xb, yb, jax.random.split(key, xb.shape[0])))
        return acc

    def evaluate(params, x, y, key):
        params = check_params(cfg, params)
        x, y = jnp.asarray(x), jnp.asarray(y).astype(jnp.int32)
        n = int(x.shape[0])
        bs = min(batch_size, n)
        nbt = -(-n // bs)
        pad = nbt * bs - n
        xp = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)]) if pad else x
        yp = jnp.concatenate([y, jnp.full((pad,), -1, y.dtype)]) if pad else y
        return _eval_scan(params, xp.reshape((nbt, bs) + x.shape[1:]), yp.reshape(nbt, bs), key)

    evaluate.steps = steps
    return evaluate


def evaluation_summary(sums: DecisionSums, steps, cfg: ERBPConfig, pj_per_synop: float = 20.0) -> dict:
    """:func:`spikejax.synops.summarize` plus ``test_acc`` (full presentation)."""
    s = summarize(sums, steps, cfg.dt, pj_per_synop)
    s["test_acc"] = s["after_steps"]["accuracy"][-1]
    return s


__all__.append("evaluation_summary")


# ---------------------------------------------------------------------------------------------
# Rate version of the rule (spikes replaced by rates): direction checks against the gradient


RATE_ACTIVATIONS = ("gate", "rate")


def rate_forward(cfg: ERBPConfig, params: ERBPParams, x, activation: str = "gate"):
    """Rate proxy of the network: ``a_l = r_{l-1} @ W_l`` and ``r_l = f(a_l)``.  Returns
    ``(rates [r_0 = x, ..., r_L], currents [a_1..a_L])``.

    ``activation``: ``"gate"`` is ``f(a) = clip(a, g_low, g_high)``, so that ``dr/da`` is exactly the
    boxcar gate and the rule is a true gradient when ``G = W^T`` (the direction tests).  ``"rate"``
    is ``f(a) = clip(a, 0, 1)``: a firing rate that is zero below rest and saturates, in units of
    ``1/tau_syn`` (a train of that rate through a weight ``w`` holds the synaptic current at ``w``
    on average; 250 Hz with the 4 ms synapse), the rate twin of :func:`train_rate_twin`."""
    check_choice("activation", activation, set(RATE_ACTIVATIONS))
    lo, hi = (cfg.gate if activation == "gate" else (0.0, 1.0))
    r, rates, currents = jnp.asarray(x), [jnp.asarray(x)], []
    for w in params.w:
        a = r @ w
        r = jnp.clip(a, lo, hi)
        currents.append(a)
        rates.append(r)
    return rates, currents


def rate_updates(cfg: ERBPConfig, params: ERBPParams, x, target, activation: str = "gate"):
    """The eRBP update with spikes replaced by rates (same three-factor rule, summed over the batch):
    ``dW_l = lr * r_{l-1}^T @ (boxcar(a_l) * U_l)`` with ``U_out = target - r_L`` and
    ``U_l = U_out @ G_l`` for hidden layers; rates from :func:`rate_forward` with ``activation``.
    Returns a tuple of ``dW`` like ``params.w``."""
    params = check_params(cfg, params)
    rates, currents = rate_forward(cfg, params, x, activation)
    e = jnp.asarray(target) - rates[-1]
    rule = erbp_rule(cfg.lr)
    lo, hi = cfg.gate
    dtype = rates[0].dtype
    empty = TraceState(jnp.zeros((0,), dtype), jnp.zeros((0,), dtype), jnp.zeros((0,), dtype))
    dws = []
    L = len(params.w)
    for l in range(L):
        U = e if l == L - 1 else e @ params.g[l]
        _, dw = rule.step(empty, rates[l], None, U, dt=cfg.dt, post_value=boxcar_gate(currents[l], lo, hi))
        dws.append(dw)
    return tuple(dws)


def twin_input(cfg: ERBPConfig, x):
    """Input rates of the rate twin, in units of ``1/tau_syn``: the binary code's ``input_rate``
    above ``input_threshold`` (``"binary"``), or ``clip(x, 0, 1) * input_rate`` (``"poisson"``)."""
    x = jnp.asarray(x)
    unit = cfg.input_rate * cfg.tau_syn
    if cfg.input_code == "binary":
        return jnp.where(x > cfg.input_threshold, unit, 0.0).astype(x.dtype)
    if cfg.input_code == "poisson":
        return (jnp.clip(x, 0.0, 1.0) * unit).astype(x.dtype)
    raise ValueError(f"rate twin: input_code {cfg.input_code!r} has no rate twin (use 'binary' or 'poisson')")


def twin_errors(cfg: ERBPConfig, w, x, y) -> float:
    """Error (%) of rate-twin weights ``w`` (a tuple like ``ERBPParams.w``) on digits ``x``, labels
    ``y``: the output with the largest current wins (the rates saturate, so ties are broken as the
    spiking decision breaks them)."""
    _, currents = rate_forward(cfg, ERBPParams(tuple(w), ()), twin_input(cfg, x), "rate")
    wrong = int(jnp.sum(jnp.argmax(currents[-1], -1) != jnp.asarray(y)))
    return 100.0 * wrong / max(len(y), 1)


def train_rate_twin(cfg: ERBPConfig, params: ERBPParams, x, y, *, lrs, epochs: int, batch_size: int, lr_decay: float = 1.0,
                    key, optimizer: str = "rule", log=None):
    """Train the **rate twin** of an eRBP network: the rule of :func:`rate_updates` with
    ``activation="rate"`` (no spikes, no time steps, no coins), on minibatches of ``batch_size``
    digits, one vmapped program for every learning rate in ``lrs``.

    What is kept from the spiking network: the architecture, the initial weights and the fixed
    feedback ``params``, the input code (:func:`twin_input`), the boxcar gate ``cfg.gate`` on every
    layer, the rate-matching error ``label - rate`` with the label at ``label_rate``, and the
    learning-rate schedule ``lr * lr_decay**epoch``.  ``optimizer="rule"`` applies the summed
    update ``lr * dW`` as the spiking rule does; ``"adam"`` feeds ``-dW / batch_size`` to
    ``optax.adam(lr)`` instead, to see how far a better optimiser of the same update would go.

    It answers, in seconds, whether a shortfall of the spiking network is already in its rule at
    the rate level (compare its error with the spiking run's) or comes from the spikes.  Returns the
    weights, a tuple like ``params.w`` with a leading axis over ``lrs``."""
    check_choice("optimizer", optimizer, {"rule", "adam"})
    check_positive("lr_decay", lr_decay)
    lrs = jnp.asarray(np.asarray(lrs, np.float32).reshape(-1))
    if lrs.size == 0 or bool(jnp.any(lrs <= 0)):
        raise ValueError(f"train_rate_twin: lrs must be positive learning rates, got {np.asarray(lrs).tolist()}")
    if int(epochs) < 1 or int(batch_size) < 1:
        raise ValueError(f"train_rate_twin: epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
    params = check_params(cfg, params)
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    if x.ndim != 2 or x.shape[1] != cfg.sizes[0] or y.shape != (x.shape[0],):
        raise ValueError(f"train_rate_twin: x must be [n, {cfg.sizes[0]}] with labels y [n], got {x.shape} and {y.shape}")
    n = int(x.shape[0]) // int(batch_size)
    if n < 1:
        raise ValueError(f"train_rate_twin: {x.shape[0]} digits do not fill one minibatch of {batch_size}")
    unit_cfg = dataclasses.replace(cfg, lr=1.0)
    label = cfg.label_rate * cfg.tau_syn
    tx = optax.adam(1.0) if optimizer == "adam" else optax.identity()

    def epoch(carry, lr, k):
        def body(c, idx):
            w, st = c
            xb = twin_input(cfg, x[idx])
            dw = rate_updates(unit_cfg, ERBPParams(w, params.g), xb, jax.nn.one_hot(y[idx], cfg.n_out, dtype=xb.dtype) * label, "rate")
            if optimizer == "adam":
                with jax.numpy_dtype_promotion("standard"):  # optax mixes int counts and floats
                    u, st = tx.update(tuple(-d / batch_size for d in dw), st, w)
                dw = u  # Adam's descent step on the loss whose gradient is -dW / batch
            return (tuple(wl + lr * d for wl, d in zip(w, dw)), st), None

        perm = jax.random.permutation(k, x.shape[0])[: n * batch_size].reshape(n, batch_size)
        carry, _ = lax.scan(body, carry, perm)
        return carry

    run = jax.jit(jax.vmap(epoch, in_axes=(0, 0, None)))
    stack = lambda t: jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (lrs.size,) + a.shape), t)
    with jax.numpy_dtype_promotion("standard"):
        carry = (stack(tuple(params.w)), stack(tx.init(tuple(params.w))))
    for e in range(int(epochs)):
        key, k = jax.random.split(key)
        carry = run(carry, lrs * float(lr_decay) ** e, k)
        if log is not None:
            log(f"rate twin: epoch {e + 1}/{epochs} done")
    return carry[0]


# ---------------------------------------------------------------------------------------------
# Non-spiking baselines: back-propagation and random back-propagation (feedback alignment)


def init_mlp_params(key, sizes: Sequence[int], dtype=jnp.float32):
    """He-uniform weights and zero biases: a list of ``(w [n_in, n_out], b [n_out])``."""
    sizes = [int(s) for s in sizes]
    out = []
    for k, (a, b) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
        lim = math.sqrt(6.0 / a)
        out.append((jax.random.uniform(k, (a, b), dtype, -lim, lim), jnp.zeros((b,), dtype)))
    return out


def random_feedback(key, sizes: Sequence[int], dtype=jnp.float32):
    """Fixed random feedback matrices ``B_l`` (shape of ``W_l``) for layers ``l >= 1``: the backward
    pass of random back-propagation sends ``delta_l @ B_l^T`` instead of ``delta_l @ W_l^T``."""
    sizes = [int(s) for s in sizes]
    out = []
    for k, (a, b) in zip(jax.random.split(key, len(sizes) - 2), zip(sizes[1:-1], sizes[2:])):
        lim = math.sqrt(6.0 / a)
        out.append(jax.random.uniform(k, (a, b), dtype, -lim, lim))
    return out


@jax.custom_vjp
def fa_matmul(x, w, b):
    """``x @ w`` whose backward pass to ``x`` uses the fixed matrix ``b`` instead of ``w``."""
    return x @ w


def _fa_fwd(x, w, b):
    return x @ w, (x, b)


def _fa_bwd(res, g):
    x, b = res
    return g @ b.T, x.T @ g, jnp.zeros_like(b)


fa_matmul.defvjp(_fa_fwd, _fa_bwd)


def mlp_logits(params, x, feedback=None, *, dropout: float = 0.0, key=None):
    """ReLU MLP logits; ``feedback`` (from :func:`random_feedback`) turns ``jax.grad`` into RBP.

    ``dropout`` > 0 with a ``key`` zeroes each hidden unit with that probability and scales the
    kept ones by ``1 / (1 - dropout)`` (training; leave ``key=None`` to evaluate)."""
    dropout = check_rate(dropout)
    keys = jax.random.split(key, len(params)) if (key is not None and dropout > 0) else None
    h = x
    for l, (w, b) in enumerate(params):
        if feedback is not None and l >= 1:
            h = fa_matmul(h, w, feedback[l - 1]) + b[None, :]
        else:
            h = h @ w + b[None, :]
        if l < len(params) - 1:
            h = jax.nn.relu(h)
            if keys is not None:
                h = h * dropout_mask(keys[l], h.shape, dropout, h.dtype)
    return h


def mlp_loss(params, x, y, feedback=None, *, dropout: float = 0.0, key=None):
    """Mean softmax cross-entropy of :func:`mlp_logits` (same ``dropout`` / ``key``)."""
    return optax.softmax_cross_entropy_with_integer_labels(mlp_logits(params, x, feedback, dropout=dropout, key=key), y).mean()
