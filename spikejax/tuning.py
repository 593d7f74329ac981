"""Bayesian hyperparameter optimisation with Optuna, one vmapped sweep per batch of trials.

The optimiser (TPE by default; Optuna's GP sampler with ``sampler="gp"``, which needs PyTorch)
is driven through Optuna's ask-and-tell interface: :class:`BatchTuner` asks for ``batch_size``
points at once, hands them to ``evaluate`` as one dict of length-``K`` arrays (typically
``lambda hp: sweep(task, hp, task.data)``, so the whole batch trains as one compiled program),
and tells Optuna the results.  TPE's *constant liar* keeps the points of one batch apart.

Persistence and several workers
-------------------------------
The study lives in Optuna storage: a SQLite file (``"study.db"`` or ``"sqlite:///..."``) or an
append-only journal file (``"study.log"`` / ``".jsonl"``, :class:`optuna.storages.JournalStorage`,
the safer choice on network file systems).  Several workers (processes or hosts) open the same
study by name and share its history.  Each trial records the ``worker`` that asked for it; a
worker that is restarted with the same ``worker_id`` first finishes its own interrupted trials
(still ``RUNNING`` in the storage, with their parameters already fixed) and then continues, so
trial numbers continue rather than restart and no evaluated point is lost.
:meth:`BatchTuner.fail_stale` marks trials of dead workers as failed.

Search spaces
-------------
``{"lr": Float(1e-4, 1e-1, log=True), "width": Int(8, 512, log=True), "dropout": Float(0, 0.5),
"slope": Categorical([5.0, 10.0, 25.0])}``.  Ranges are validated: ``low >= high`` or a log
range with ``low <= 0`` raise ``ValueError`` naming the parameter.  Categorical choices must be
numbers (a sweep varies array values; run separate studies for choices that change the program).
"""

from __future__ import annotations

import dataclasses
import math
import socket
import time
import zlib
from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = [
    "Float",
    "Int",
    "Categorical",
    "check_space",
    "make_storage",
    "make_sampler",
    "open_study",
    "BatchTuner",
]


# ---------------------------------------------------------------------------------------------
# Search space


@dataclasses.dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False
    step: float | None = None


@dataclasses.dataclass(frozen=True)
class Int:
    low: int
    high: int
    log: bool = False
    step: int = 1


@dataclasses.dataclass(frozen=True)
class Categorical:
    choices: tuple


def _check_range(name, lo, hi, log, kind):
    for what, v in (("low", lo), ("high", hi)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(float(v)):
            raise ValueError(f"search space {name!r}: {what} must be a finite number, got {v!r}")
    if kind == "int" and (float(lo) != int(lo) or float(hi) != int(hi)):
        raise ValueError(f"search space {name!r}: Int bounds must be integers, got [{lo}, {hi}]")
    if not lo < hi:
        raise ValueError(f"search space {name!r}: low ({lo}) must be < high ({hi})")
    if log and lo <= 0:
        raise ValueError(f"search space {name!r}: a log range needs low > 0, got low = {lo}")


def check_space(space: Mapping[str, Any]) -> dict:
    """Validate a search space and return ``{name: optuna distribution}``."""
    import optuna.distributions as od

    if not isinstance(space, Mapping) or not space:
        raise ValueError("the search space is empty: give at least one parameter")
    out = {}
    for name, d in space.items():
        if isinstance(d, Float):
            _check_range(name, d.low, d.high, d.log, "float")
            if d.step is not None:
                if d.log:
                    raise ValueError(f"search space {name!r}: step cannot be combined with log")
                if not d.step > 0:
                    raise ValueError(f"search space {name!r}: step must be > 0, got {d.step}")
            out[name] = od.FloatDistribution(float(d.low), float(d.high), log=d.log, step=d.step)
        elif isinstance(d, Int):
            _check_range(name, d.low, d.high, d.log, "int")
            if int(d.step) < 1:
                raise ValueError(f"search space {name!r}: step must be >= 1, got {d.step}")
            if d.log and d.step != 1:
                raise ValueError(f"search space {name!r}: step cannot be combined with log")
            out[name] = od.IntDistribution(int(d.low), int(d.high), log=d.log, step=int(d.step))
        elif isinstance(d, Categorical):
            ch = tuple(d.choices)
            if not ch:
                raise ValueError(f"search space {name!r}: Categorical needs at least one choice")
            for c in ch:
                if isinstance(c, (str, bytes)) or np.ndim(c) != 0 or not np.isfinite(float(c)):
                    raise ValueError(
                        f"search space {name!r}: categorical choices must be finite numbers (swept as arrays), got {c!r}"
                    )
            if len(set(ch)) != len(ch):
                raise ValueError(f"search space {name!r}: duplicate choices {ch}")
            out[name] = od.CategoricalDistribution(ch)
        else:
            raise ValueError(f"search space {name!r}: expected Float, Int or Categorical, got {d!r}")
    return out


# ---------------------------------------------------------------------------------------------
# Storage, sampler, study


def make_storage(storage):
    """``None`` (in memory), an Optuna storage object or URL, or a file path: ``*.db`` /
    ``*.sqlite`` -> SQLite, ``*.log`` / ``*.jsonl`` / ``*.journal`` -> :class:`JournalStorage`."""
    import os

    import optuna

    if storage is None or not isinstance(storage, (str, os.PathLike)):
        return storage
    s = os.fspath(storage)
    if "://" in s:
        return s
    os.makedirs(os.path.dirname(os.path.abspath(s)), exist_ok=True)
    low = s.lower()
    if low.endswith((".db", ".sqlite", ".sqlite3")):
        return f"sqlite:///{os.path.abspath(s)}"
    if low.endswith((".log", ".jsonl", ".journal")):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(os.path.abspath(s)))
    raise ValueError(f"storage path {s!r}: use a .db/.sqlite file (SQLite) or a .log/.jsonl file (journal)")


def make_sampler(sampler="tpe", seed: int | None = 0, *, n_startup_trials: int = 10, multi_objective: bool = False):
    """``"tpe"`` (multivariate, constant liar), ``"gp"`` (needs PyTorch), ``"random"``, or a sampler."""
    import optuna

    if not isinstance(sampler, str):
        return sampler
    if sampler == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, constant_liar=True, n_startup_trials=n_startup_trials
        )
    if sampler == "gp":
        try:
            import torch  # noqa: F401
        except ImportError as e:
            raise ValueError("sampler='gp' (Optuna's GPSampler) needs PyTorch, which is not installed; use 'tpe'") from e
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup_trials)
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"sampler must be 'tpe', 'gp', 'random' or an Optuna sampler, got {sampler!r}")


def open_study(study_name: str, storage=None, *, directions=("maximize",), sampler="tpe", seed: int | None = 0, n_startup_trials: int = 10):
    """Create or re-open (``load_if_exists``) a study.  The sampler is not stored with the study;
    its seed is offset by the number of trials already present so a resumed study does not
    re-draw the same random start-up points."""
    import optuna

    if isinstance(directions, str):
        directions = (directions,)
    directions = tuple(directions)
    for d in directions:
        if d not in ("maximize", "minimize"):
            raise ValueError(f"directions must be 'maximize' or 'minimize', got {d!r}")
    st = make_storage(storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=study_name, storage=st, directions=list(directions), load_if_exists=True)
    have = tuple(d.name.lower() for d in study.directions)
    if have != directions:
        raise ValueError(f"study {study_name!r} exists with directions {have}, not {directions}")
    n_prev = len(study.get_trials(deepcopy=False))
    s = None if seed is None else int(seed) + n_prev
    study.sampler = make_sampler(sampler, s, n_startup_trials=n_startup_trials, multi_objective=len(directions) > 1)
    return study


# ---------------------------------------------------------------------------------------------
# Batched ask/tell


def _canon(values: np.ndarray, dist, exact: bool = False) -> np.ndarray:
    """The batch's values of one parameter as a JAX-friendly array (int32 / float32), or, with
    ``exact``, at the sampler's own precision (int64 / float64)."""
    import optuna.distributions as od

    i_t, f_t = (np.int64, np.float64) if exact else (np.int32, np.float32)
    if isinstance(dist, od.IntDistribution):
        return values.astype(i_t)
    if isinstance(dist, od.FloatDistribution):
        return values.astype(f_t)
    arr = np.asarray(values)
    return arr.astype(i_t) if arr.dtype.kind in "iu" else arr.astype(f_t)


class BatchTuner:
    """Batched Bayesian optimisation: ``ask_batch`` -> one vmapped evaluation -> ``tell_batch``.

    Args:
      space: ``{name: Float | Int | Categorical}``.
      study_name / storage: see :func:`open_study` and :func:`make_storage`.
      objectives: names of the metrics (keys of ``evaluate``'s output dict) that are optimised,
        in the order of ``directions``.  Other metrics of the output are stored as trial user
        attributes (``metric:<name>``).
      worker_id: names this worker's trials; restart with the same id to finish its
        interrupted trials.  Default ``"worker-0"``.
      fixed: hyperparameters held constant, added to every batch (e.g. ``{"seed": 0}``).
      exact: hand ``evaluate`` the sampled values at full precision (float64 / int64) instead of
        float32 / int32.  The default suits one vmapped JAX program per batch; use ``exact=True``
        when each trial is its own run configured from the values (e.g. an experiment's
        ``--set`` overrides), so that a trial runs at exactly the parameters the study records and
        can be re-run from them.  (Spiking runs can be that sensitive: the float32 rounding of the
        learning rate 0.003 moved a 784-200-200-10 peRBP run's 5-epoch validation error from
        3.28% to 3.10%; ``experiments/erbp_pimnist_tuning.md``.)
    """

    def __init__(
        self,
        space: Mapping[str, Any],
        *,
        study_name: str,
        storage=None,
        objectives: Sequence[str] = ("test_acc",),
        directions: Sequence[str] = ("maximize",),
        sampler="tpe",
        seed: int | None = 0,
        n_startup_trials: int = 10,
        worker_id: str = "worker-0",
        fixed: Mapping[str, Any] | None = None,
        exact: bool = False,
    ):
        self.distributions = check_space(space)
        self.exact = bool(exact)
        if isinstance(objectives, str):
            objectives = (objectives,)
        if isinstance(directions, str):
            directions = (directions,)
        if len(objectives) != len(directions):
            raise ValueError(f"{len(objectives)} objectives but {len(directions)} directions")
        self.objectives = tuple(objectives)
        self.fixed = dict(fixed or {})
        clash = sorted(set(self.fixed) & set(self.distributions))
        if clash:
            raise ValueError(f"parameters {clash} are both searched and fixed")
        self.worker_id = str(worker_id)
        self._live: dict = {}
        wseed = None if seed is None else int(seed) + zlib.crc32(self.worker_id.encode()) % 10_000
        self.study = open_study(
            study_name, storage, directions=directions, sampler=sampler, seed=wseed, n_startup_trials=n_startup_trials
        )

    # -- helpers -----------------------------------------------------------------------------------
    def _hp(self, params_list: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        K = len(params_list)
        hp = {n: _canon(np.asarray([p[n] for p in params_list]), d, self.exact) for n, d in self.distributions.items()}
        for n, v in self.fixed.items():
            hp[n] = np.repeat(np.asarray(v)[None], K, axis=0)
        return hp

    def pending(self) -> list:
        """This worker's trials left ``RUNNING`` (asked, never told: an interrupted batch)."""
        from optuna.trial import TrialState

        return [
            t
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.user_attrs.get("worker") == self.worker_id
        ]

    def fail_stale(self, older_than_s: float) -> int:
        """Mark every ``RUNNING`` trial started more than ``older_than_s`` seconds ago as failed
        (trials of workers that died and will not come back).  Returns how many."""
        import datetime as dt

        from optuna.trial import TrialState

        now = dt.datetime.now()
        n = 0
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.datetime_start is not None and (now - t.datetime_start).total_seconds() > older_than_s:
                self.study.tell(t.number, state=TrialState.FAIL)
                n += 1
        return n

    # -- ask / tell ----------------------------------------------------------------------------------
    def ask_batch(self, n: int, *, resume: bool = True):
        """``(trial_numbers, hp)``: this worker's pending trials first (when ``resume``), then
        fresh points from the sampler, ``n`` in all (or more, if more are pending)."""
        if not isinstance(n, (int, np.integer)) or n <= 0:
            raise ValueError(f"batch size must be a positive int, got {n!r}")
        import optuna

        numbers, params = [], []
        if resume:
            for t in self.pending():
                numbers.append(t.number)
                params.append(dict(t.params))
                self._live[t.number] = optuna.trial.Trial(self.study, t._trial_id)
        while len(numbers) < n:
            trial = self.study.ask(self.distributions)
            trial.set_user_attr("worker", self.worker_id)
            trial.set_user_attr("host", socket.gethostname())
            numbers.append(trial.number)
            params.append(dict(trial.params))
            self._live[trial.number] = trial
        return numbers, self._hp(params)

    def tell_batch(self, numbers: Sequence[int], metrics: Mapping[str, Any]) -> list:
        """Report ``metrics`` (dict of ``[K]`` arrays) for the trials ``numbers``.  Non-finite
        objective values mark the trial as failed.  Returns the objective values told."""
        from optuna.trial import TrialState

        missing = [o for o in self.objectives if o not in metrics]
        if missing:
            raise ValueError(f"evaluate's output lacks the objective(s) {missing}; it has {sorted(metrics)}")
        K = len(numbers)
        vals = np.stack([np.asarray(metrics[o], dtype=np.float64).reshape(-1) for o in self.objectives], axis=1)
        if vals.shape[0] != K:
            raise ValueError(f"evaluate returned {vals.shape[0]} results for {K} trials")
        told = []
        for i, num in enumerate(numbers):
            if num not in self._live:
                raise ValueError(f"trial {num} was not asked by this tuner")
            trial = self._live.pop(num)
            for name, arr in metrics.items():
                a = np.asarray(arr)
                if a.ndim >= 1 and a.shape[0] == K and a[i].size == 1:
                    v = float(a[i])
                    trial.set_user_attr(f"metric:{name}", v if math.isfinite(v) else str(v))
            v = vals[i]
            if np.all(np.isfinite(v)):
                self.study.tell(trial, v.tolist() if len(v) > 1 else float(v[0]))
            else:
                self.study.tell(trial, state=TrialState.FAIL)
            told.append(v.tolist())
        return told

    def run(
        self,
        evaluate: Callable[[dict], Mapping[str, Any]],
        n_batches: int,
        batch_size: int,
        *,
        callback: Callable[[int, list, dict, Mapping[str, Any]], None] | None = None,
    ):
        """``n_batches`` rounds of ask -> ``evaluate(hp)`` -> tell.  The first round also finishes
        this worker's interrupted trials (the batch is then larger than ``batch_size`` only if
        more than ``batch_size`` trials were pending).  Returns the study."""
        if not isinstance(n_batches, (int, np.integer)) or n_batches < 0:
            raise ValueError(f"n_batches must be a non-negative int, got {n_batches!r}")
        for b in range(n_batches):
            self._round(evaluate, batch_size, b, callback)
        return self.study

    def run_until(
        self,
        evaluate: Callable[[dict], Mapping[str, Any]],
        n_trials: int,
        batch_size: int,
        *,
        callback: Callable[[int, list, dict, Mapping[str, Any]], None] | None = None,
    ):
        """Rounds as in :meth:`run` until the study holds ``n_trials`` trials that are finished
        or running, by any worker (failed ones do not count), after first finishing this worker's
        interrupted trials.  So ``n_trials`` is the size of the whole study: several workers given
        the same number share the work, and a rerun of a full study runs nothing.  Each round asks
        at most the trials still missing.  Returns the study."""
        if not isinstance(n_trials, (int, np.integer)) or n_trials < 0:
            raise ValueError(f"n_trials must be a non-negative int, got {n_trials!r}")
        b = 0
        while self.pending() or self.claimed() < n_trials:
            self._round(evaluate, max(1, min(batch_size, n_trials - self.claimed())), b, callback)
            b += 1
        return self.study

    def _round(self, evaluate, batch_size, b, callback):
        numbers, hp = self.ask_batch(batch_size)
        t0 = time.time()
        metrics = dict(evaluate(hp))
        metrics.setdefault("eval_time_s", np.full(len(numbers), (time.time() - t0) / len(numbers)))
        self.tell_batch(numbers, metrics)
        if callback is not None:
            callback(b, numbers, hp, metrics)

    # -- results ---------------------------------------------------------------------------------------
    def completed(self) -> list:
        from optuna.trial import TrialState

        return self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))

    def claimed(self) -> int:
        """Trials finished or running, by any worker."""
        from optuna.trial import TrialState

        return len(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)))

    def table(self) -> list[dict]:
        """Every finished trial as ``{"number", "state", "worker", "params", "values", "metrics"}``."""
        rows = []
        for t in self.study.get_trials(deepcopy=False):
            rows.append(
                {
                    "number": t.number,
                    "state": t.state.name,
                    "worker": t.user_attrs.get("worker"),
                    "params": dict(t.params),
                    "values": list(t.values) if t.values is not None else None,
                    "metrics": {k[len("metric:") :]: v for k, v in t.user_attrs.items() if k.startswith("metric:")},
                }
            )
        return rows
