"""Batched Bayesian optimisation (Optuna ask/tell, persisted studies that resume and share
workers, search-space validation) and exact Pareto fronts on hand-built point sets."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from spikejax import pareto as PF
from spikejax import tuning as TU
from spikejax.sweep import sweep

SPACE = {"lr": TU.Float(1e-4, 1e-1, log=True), "width": TU.Int(8, 256, log=True), "slope": TU.Categorical((5.0, 25.0))}


def quadratic(hp):
    """Cheap stand-in for a vmapped training sweep: best at lr = 1e-2, width = 64, slope = 25."""
    lr, width, slope = (np.asarray(hp[k], np.float64) for k in ("lr", "width", "slope"))
    assert lr.shape == width.shape == slope.shape and lr.ndim == 1
    acc = 1.0 - 0.1 * (np.log10(lr) + 2.0) ** 2 - 0.1 * np.log2(width / 64.0) ** 2 - 0.05 * (slope != 25.0)
    return {"test_acc": acc, "synops": width * 100.0}


# ---------------------------------------------------------------------------------------------
# search space validation


@pytest.mark.parametrize(
    "space, match",
    [
        ({"lr": TU.Float(0.1, 0.1)}, r"'lr': low \(0.1\) must be < high \(0.1\)"),
        ({"lr": TU.Float(0.5, 0.1)}, r"'lr': low \(0.5\) must be < high"),
        ({"lr": TU.Float(0.0, 0.1, log=True)}, r"'lr': a log range needs low > 0"),
        ({"lr": TU.Float(-1.0, 0.1, log=True)}, r"'lr': a log range needs low > 0"),
        ({"w": TU.Int(0, 64, log=True)}, r"'w': a log range needs low > 0"),
        ({"w": TU.Int(64, 8)}, r"'w': low \(64\) must be < high"),
        ({"w": TU.Int(1.5, 8)}, "must be integers"),
        ({"lr": TU.Float(float("nan"), 1.0)}, "finite number"),
        ({"lr": TU.Float(1e-3, 1.0, log=True, step=0.1)}, "step cannot be combined with log"),
        ({"opt": TU.Categorical(())}, "at least one choice"),
        ({"opt": TU.Categorical(("adam", "sgd"))}, "finite numbers"),
        ({"opt": TU.Categorical((1.0, 1.0))}, "duplicate"),
        ({"lr": (1e-3, 1e-1)}, "expected Float, Int or Categorical"),
        ({}, "empty"),
    ],
)
def test_invalid_search_spaces_raise(space, match):
    with pytest.raises(ValueError, match=match):
        TU.check_space(space)


def test_tuner_argument_checks(tmp_path):
    with pytest.raises(ValueError, match="both searched and fixed"):
        TU.BatchTuner(SPACE, study_name="a", fixed={"lr": 0.1})
    with pytest.raises(ValueError, match="2 objectives but 1 directions"):
        TU.BatchTuner(SPACE, study_name="a", objectives=("a", "b"), directions=("maximize",))
    with pytest.raises(ValueError, match="sampler must be"):
        TU.BatchTuner(SPACE, study_name="a", sampler="bogus")
    with pytest.raises(ValueError, match="storage path"):
        TU.make_storage(tmp_path / "study.txt")
    db = tmp_path / "d.db"
    TU.BatchTuner(SPACE, study_name="dirs", storage=db)
    with pytest.raises(ValueError, match="exists with directions"):
        TU.BatchTuner(SPACE, study_name="dirs", storage=db, directions=("minimize",))
    t = TU.BatchTuner(SPACE, study_name="x")
    nums, hp = t.ask_batch(2)
    with pytest.raises(ValueError, match="lacks the objective"):
        t.tell_batch(nums, {"acc": np.zeros(2)})


# ---------------------------------------------------------------------------------------------
# ask/tell in batches


def test_batches_are_asked_as_arrays_and_values_are_stored():
    t = TU.BatchTuner(SPACE, study_name="mem", fixed={"seed": 3}, n_startup_trials=4)
    seen = []
    t.run(quadratic, n_batches=3, batch_size=4, callback=lambda b, nums, hp, m: seen.append((nums, hp)))
    assert [nums for nums, _ in seen] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    hp = seen[0][1]
    assert hp["lr"].dtype == np.float32 and hp["width"].dtype == np.int32 and hp["slope"].dtype == np.float32
    np.testing.assert_array_equal(hp["seed"], [3, 3, 3, 3])
    assert len(set(np.round(hp["lr"], 6))) == 4  # the points of one batch differ
    rows = t.table()
    assert len(rows) == 12 and all(r["state"] == "COMPLETE" for r in rows)
    r0 = rows[0]
    assert r0["metrics"]["synops"] == pytest.approx(100.0 * r0["params"]["width"])
    assert r0["values"][0] == pytest.approx(r0["metrics"]["test_acc"])
    assert r0["worker"] == "worker-0"


def test_exact_tuner_hands_out_the_values_the_study_records():
    """With ``exact=True`` a trial is evaluated at the stored parameters to the last bit (a run
    configured from the study's record repeats the trial); the default rounds to float32."""
    for exact, f_t, i_t in ((True, np.float64, np.int64), (False, np.float32, np.int32)):
        t = TU.BatchTuner(SPACE, study_name=f"exact-{exact}", n_startup_trials=4, exact=exact)
        t.study.enqueue_trial({"lr": 0.003, "width": 64, "slope": 25.0})
        got = []
        t.run(quadratic, n_batches=2, batch_size=3, callback=lambda b, nums, hp, m: got.append(hp))
        hp = got[0]
        assert hp["lr"].dtype == f_t and hp["width"].dtype == i_t
        stored = [r["params"] for r in t.table()]
        values = [v for h in got for v in h["lr"].tolist()]
        if exact:
            assert values[0] == 0.003 and values == [p["lr"] for p in stored]
        else:
            assert values[0] == float(np.float32(0.003)) != 0.003
            assert values == [float(np.float32(p["lr"])) for p in stored]


def test_tpe_improves_on_its_random_start():
    t = TU.BatchTuner(SPACE, study_name="bo", seed=1, n_startup_trials=8)
    t.run(quadratic, n_batches=8, batch_size=4)
    vals = [tr.value for tr in t.completed()]
    assert max(vals) > max(vals[:8])
    assert max(vals) > 0.9


def test_non_finite_results_fail_the_trial():
    t = TU.BatchTuner(SPACE, study_name="nan")

    def ev(hp):
        m = quadratic(hp)
        m["test_acc"][1] = np.nan
        return m

    t.run(ev, 1, 3)
    assert [r["state"] for r in t.table()] == ["COMPLETE", "FAIL", "COMPLETE"]


def test_each_batch_runs_as_one_vmapped_sweep():
    def fn(hp):  # a jax objective evaluated by spikejax.sweep, K configs at once
        return {"test_acc": -((jnp.log10(hp["lr"]) + 2.0) ** 2) - 0.001 * hp["width"].astype(jnp.float32)}

    calls = []

    def evaluate(hp):
        calls.append(len(hp["lr"]))
        return sweep(fn, {k: hp[k] for k in ("lr", "width")})

    t = TU.BatchTuner({"lr": SPACE["lr"], "width": SPACE["width"]}, study_name="sw")
    t.run(evaluate, 2, 5)
    assert calls == [5, 5] and len(t.completed()) == 10


@pytest.mark.parametrize("fname", ["study.db", "study.log"])
def test_interrupted_study_resumes_and_trial_numbers_continue(tmp_path, fname):
    storage = tmp_path / fname
    t = TU.BatchTuner(SPACE, study_name="resume", storage=storage, n_startup_trials=4)
    t.run(quadratic, n_batches=2, batch_size=4)

    def interrupted(hp):
        raise KeyboardInterrupt("simulated interruption during the third batch")

    with pytest.raises(KeyboardInterrupt):
        t.run(interrupted, 1, 4)
    del t

    # a new process re-opens the study by name
    t2 = TU.BatchTuner(SPACE, study_name="resume", storage=storage, n_startup_trials=4)
    assert len(t2.study.trials) == 12 and len(t2.completed()) == 8
    pending = t2.pending()
    assert [p.number for p in pending] == [8, 9, 10, 11]
    batches = []
    t2.run(quadratic, n_batches=2, batch_size=4, callback=lambda b, nums, hp, m: batches.append((nums, hp)))
    # the interrupted trials are finished first, with the parameters they were given, then new ones
    assert batches[0][0] == [8, 9, 10, 11]
    np.testing.assert_allclose(batches[0][1]["lr"], [p.params["lr"] for p in pending], rtol=1e-6)
    assert batches[1][0] == [12, 13, 14, 15]
    numbers = sorted(tr.number for tr in t2.completed())
    assert numbers == list(range(16))
    assert not t2.pending()


def test_two_workers_share_a_study_and_resume_only_their_own_trials(tmp_path):
    storage = tmp_path / "shared.db"
    a = TU.BatchTuner(SPACE, study_name="s", storage=storage, worker_id="a")
    b = TU.BatchTuner(SPACE, study_name="s", storage=storage, worker_id="b")
    a.run(quadratic, 1, 3)
    nums_b, _ = b.ask_batch(2)  # b asks, then dies without telling
    a.run(quadratic, 1, 3)
    assert sorted(tr.number for tr in a.completed()) == [0, 1, 2, 5, 6, 7]
    assert not a.pending()  # a does not steal b's running trials
    b2 = TU.BatchTuner(SPACE, study_name="s", storage=storage, worker_id="b")
    assert [p.number for p in b2.pending()] == nums_b == [3, 4]
    b2.run(quadratic, 1, 2)
    assert len(b2.completed()) == 8
    # a dead worker's trials can also be failed explicitly
    c = TU.BatchTuner(SPACE, study_name="s", storage=storage, worker_id="c")
    c.ask_batch(2)
    assert c.fail_stale(older_than_s=-1.0) == 2 and not c.pending()


def test_run_until_counts_every_workers_trials_towards_the_study_size(tmp_path):
    """n_trials is the size of the whole study: b counts a's running trial and its finished ones,
    so it adds only the missing trials; a then finishes its own interrupted trial and adds none;
    a worker arriving at a full study runs nothing."""
    storage = tmp_path / "until.jsonl"
    a = TU.BatchTuner(SPACE, study_name="u", storage=storage, worker_id="a")
    b = TU.BatchTuner(SPACE, study_name="u", storage=storage, worker_id="b")
    a.run(quadratic, 1, 2)  # trials 0, 1 complete
    (n_a,), _ = a.ask_batch(1)  # trial 2 running (a is interrupted)
    sizes = []
    b.run_until(quadratic, 6, 2, callback=lambda i, nums, hp, m: sizes.append(len(nums)))
    assert sizes == [2, 1]  # 3 claimed -> 2 more -> 5 claimed -> the last one
    assert b.claimed() == 6 and sorted(tr.number for tr in b.completed()) == [0, 1, 3, 4, 5]
    evals = []
    a2 = TU.BatchTuner(SPACE, study_name="u", storage=storage, worker_id="a")
    a2.run_until(lambda hp: evals.append(len(hp["lr"])) or quadratic(hp), 6, 4)
    assert evals == [1] and sorted(tr.number for tr in a2.completed()) == [0, 1, 2, 3, 4, 5] == sorted([n_a, 0, 1, 3, 4, 5])
    c = TU.BatchTuner(SPACE, study_name="u", storage=storage, worker_id="c")
    c.run_until(lambda hp: pytest.fail("a full study must not evaluate"), 6, 4)
    with pytest.raises(ValueError, match="n_trials"):
        c.run_until(quadratic, -1, 1)


# ---------------------------------------------------------------------------------------------
# Pareto fronts


def _naive_front(p, maximize):
    s = np.where(maximize, 1.0, -1.0)
    q = np.asarray(p, float) * s
    return np.array([not any(np.all(q[j] >= q[i]) and np.any(q[j] > q[i]) for j in range(len(q))) for i in range(len(q))])


def test_pareto_front_accuracy_vs_cost_hand_built():
    pts = np.array(
        [
            [0.90, 100],  # 0 front
            [0.95, 200],  # 1 front
            [0.85, 50],  # 2 front
            [0.90, 150],  # 3 dominated by 0
            [0.95, 300],  # 4 dominated by 1
            [0.80, 60],  # 5 dominated by 2
            [0.85, 50],  # 6 duplicate of 2: kept
            [0.97, 1000],  # 7 front (most accurate)
            [0.50, 10],  # 8 front (cheapest)
        ]
    )
    mask = PF.pareto_mask(pts, [True, False])
    np.testing.assert_array_equal(np.nonzero(mask)[0], [0, 1, 2, 6, 7, 8])
    np.testing.assert_array_equal(PF.pareto_front(pts, [True, False]), [7, 1, 0, 2, 6, 8])
    assert PF.dominates(pts[0], pts[3], [True, False]) and not PF.dominates(pts[2], pts[6], [True, False])
    assert not PF.dominates(pts[0], pts[1], [True, False])


def test_pareto_three_objectives_and_single_objective():
    # accuracy (max), synops (min), latency steps (min)
    pts = np.array([[0.9, 100, 10], [0.9, 100, 5], [0.8, 50, 20], [0.8, 60, 20], [0.95, 500, 20]])
    np.testing.assert_array_equal(np.nonzero(PF.pareto_mask(pts, [True, False, False]))[0], [1, 2, 4])
    np.testing.assert_array_equal(np.nonzero(PF.pareto_mask([3.0, 1.0, 3.0, 2.0]))[0], [0, 2])


def test_pareto_matches_brute_force_on_random_sets_with_ties():
    rng = np.random.default_rng(0)
    for n, m in itertools.product([1, 2, 7, 40, 300], [1, 2, 3]):
        pts = rng.integers(0, 5, size=(n, m)).astype(float)  # many ties
        mx = rng.random(m) < 0.5
        np.testing.assert_array_equal(PF.pareto_mask(pts, mx, block=16), _naive_front(pts, mx))


def test_cheapest_within_and_hypervolume():
    acc = np.array([0.97, 0.965, 0.96, 0.95, 0.90])
    cost = np.array([1000.0, 300.0, 90.0, 50.0, 10.0])
    r = PF.cheapest_within(acc, cost, 0.01)
    assert r["reference"] == 0 and r["cheapest"] == 2
    assert r["cost_ratio"] == pytest.approx(1000 / 90) and r["accuracy_loss"] == pytest.approx(0.01)
    assert PF.cheapest_within(acc, cost, 0.0)["cheapest"] == 0
    # two points (max x, max y) with reference (0, 0): union of rectangles 2x1 and 1x2 = 3
    assert PF.hypervolume_2d([[2, 1], [1, 2], [0.5, 0.5]], [0, 0]) == pytest.approx(3.0)
    # accuracy up, cost down, reference (acc 0, cost 100)
    assert PF.hypervolume_2d([[0.5, 50]], [0, 100], [True, False]) == pytest.approx(25.0)


def test_pareto_input_validation():
    with pytest.raises(ValueError, match="empty"):
        PF.pareto_mask(np.zeros((0, 2)))
    with pytest.raises(ValueError, match=r"non-finite values \(rows \[1\]\)"):
        PF.pareto_mask([[1, 2], [np.nan, 1]])
    with pytest.raises(ValueError, match="maximize has 3 entries"):
        PF.pareto_mask([[1, 2]], [True, False, True])
    with pytest.raises(ValueError, match="same length"):
        PF.cheapest_within([1, 2], [1], 0.1)
