"""The experiment machinery: smoke configs end to end, self-describing results, bad --set keys,
resume after an interruption, and the RESULTS table generator."""

import json
import types

import pytest

import experiments
from experiments.__main__ import main as cli
from spikejax.experiment import parse_overrides, run_experiment

REQUIRED = {"experiment", "command", "config", "seed", "wall_time_s", "environment", "metrics", "claims"}


@pytest.mark.parametrize("name", experiments.available())
def test_every_experiment_smoke_config_end_to_end(name, tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEJAX_CKPT", str(tmp_path / "ckpt"))
    path = run_experiment(experiments.load(name), quick=True, out_dir=tmp_path, quiet=True)
    rec = json.loads(path.read_text())
    assert REQUIRED <= set(rec)
    assert rec["quick"] is True and rec["experiment"] == name
    env = rec["environment"]
    assert env["packages"]["jax"] and env["devices"] and "python" in env
    # every claim points at a metric that exists
    for c in rec["claims"]:
        cur = rec["metrics"]
        for part in c["metric"].split("."):
            cur = cur[int(part)] if isinstance(cur, list) else cur[part]
    assert not list((tmp_path / "ckpt").glob("*.ckpt")), "checkpoint must be cleared after success"


def test_mnist_surrogate_smoke_learns(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEJAX_CKPT", str(tmp_path / "ckpt"))
    path = run_experiment(experiments.load("mnist_surrogate"), quick=True, out_dir=tmp_path, quiet=True)
    rec = json.loads(path.read_text())
    assert rec["metrics"]["test_acc"] > 0.8  # digits, 4 epochs; chance is 0.1
    assert (tmp_path / "mnist_surrogate-quick.raster.npz").exists()


def test_unknown_set_key_lists_valid_keys(capsys):
    with pytest.raises(ValueError, match="valid keys: .*hidden"):
        parse_overrides({"hidden": 10, "lr": 0.1}, ["hiden=3"])
    assert cli(["mnist_surrogate", "--quick", "--set", "bogus=1"]) == 2
    assert "valid keys" in capsys.readouterr().err


def test_set_parses_types():
    cfg = parse_overrides({"a": 1, "b": 0.5, "c": "x", "d": True, "e": [1, 2]}, ["a=3", "b=1e-3", "c=y", "d=false", "e=[3, 4]"])
    assert cfg == {"a": 3, "b": 1e-3, "c": "y", "d": False, "e": [3, 4]}
    with pytest.raises(ValueError, match="bad value for 'a'"):
        parse_overrides({"a": 1}, ["a=x"])


def _fake_experiment(fail_after):
    """A tiny experiment that checkpoints every step and can be made to 'crash'."""
    mod = types.ModuleType("experiments.fake_resume")
    mod.CONFIG = {"steps": 5, "seed": 0}
    mod.QUICK = {}
    mod.calls = []

    def run(cfg, ctx):
        start, total = 0, 0
        ck = ctx.load_checkpoint()
        if ck is not None:
            start, total = ck
        for i in range(start, cfg["steps"]):
            mod.calls.append(i)
            total += i
            ctx.save_checkpoint(i + 1, total)
            if fail_after is not None and i + 1 == fail_after:
                raise KeyboardInterrupt("simulated interruption")
        return {"total": total}

    mod.run = run
    return mod


def test_interrupted_run_resumes_without_redoing_work(tmp_path):
    ck = tmp_path / "ck"
    mod = _fake_experiment(fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(mod, out_dir=tmp_path, ckpt_dir=ck, quiet=True)
    assert not (tmp_path / "fake_resume.json").exists()  # nothing half-written
    mod2 = _fake_experiment(fail_after=None)
    path = run_experiment(mod2, out_dir=tmp_path, ckpt_dir=ck, quiet=True)
    rec = json.loads(path.read_text())
    assert mod2.calls == [3, 4]  # finished steps are not redone
    assert rec["metrics"]["total"] == sum(range(5))
    assert rec["resumed_from_step"] == 3


def test_changed_config_does_not_resume_a_foreign_checkpoint(tmp_path):
    ck = tmp_path / "ck"
    with pytest.raises(KeyboardInterrupt):
        run_experiment(_fake_experiment(fail_after=2), out_dir=tmp_path, ckpt_dir=ck, quiet=True)
    mod = _fake_experiment(fail_after=None)
    run_experiment(mod, overrides=["steps=4"], out_dir=tmp_path, ckpt_dir=ck, quiet=True)
    assert mod.calls == [0, 1, 2, 3]


def test_results_table_reads_numbers_from_results_files(tmp_path):
    from experiments.results_table import render

    rec = {
        "command": "python -m experiments x",
        "claims": [{"claim": "acc", "published": "97.3", "metric": "a.b", "fmt": ".1f"}],
        "metrics": {"a": {"b": 98.04}},
    }
    (tmp_path / "x.json").write_text(json.dumps(rec))
    (tmp_path / "x-quick.json").write_text(json.dumps(rec))  # smoke results never enter the table
    table = render(tmp_path)
    assert table.count("| acc | 97.3 | 98.0 |") == 1


def test_atomic_write_gives_ordinary_file_mode(tmp_path):
    import os

    from spikejax.experiment import atomic_write_bytes

    old = os.umask(0o022)
    try:
        p = atomic_write_bytes(tmp_path / "r.json", b"{}")
    finally:
        os.umask(old)
    assert p.read_bytes() == b"{}"
    assert (p.stat().st_mode & 0o777) == 0o644  # not mkstemp's 0600
    assert not [q for q in tmp_path.iterdir() if q.name != "r.json"]  # no temp file left


def test_commit_of_a_tree_without_git_comes_from_the_environment(monkeypatch):
    """A copy of the tree without ``.git`` (the GPU machine of ``benchmarks/gpu.sh``) records the
    commit it was copied from (``SPIKEJAX_GIT_COMMIT``), in experiment results and benchmark
    machine lines; inside a git checkout the checkout's own commit wins."""
    import subprocess
    from pathlib import Path

    from spikejax import experiment as E

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import _common as C

    monkeypatch.setenv("SPIKEJAX_GIT_COMMIT", "0123abc+dirty")
    here = E._git_commit()
    assert here and here.split("+")[0] == subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                                         cwd=Path(E.__file__).parent).stdout.strip()

    def no_git(*a, **k):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    assert E._git_commit() == "0123abc+dirty"
    assert E.environment_info()["git_commit"] == "0123abc+dirty"
    info = C.machine_info()
    assert info["git_commit"] == "0123abc+dirty" and "gpus" not in info  # no nvidia-smi either
    monkeypatch.delenv("SPIKEJAX_GIT_COMMIT")
    assert E._git_commit() is None


def test_eta_after_resume_uses_only_this_process_pace(tmp_path, monkeypatch, capsys):
    """Steps 1-3 were done by an earlier process; here steps 4 and 5 take 10 s each on a fake
    clock, so after step 4 one step of 10 s is left (not 10 s * 1 / 4 of the whole run)."""
    from spikejax import experiment as ex

    clock = [1000.0]
    monkeypatch.setattr(ex.time, "time", lambda: clock[0])
    first = ex.Context("fake_eta", {"steps": 5}, tmp_path, tmp_path / "ck")
    first.save_checkpoint(3, {"total": 3})
    clock[0] += 500.0  # a new process starts later
    ctx = ex.Context("fake_eta", {"steps": 5}, tmp_path, tmp_path / "ck")
    assert ctx.load_checkpoint()[0] == 3
    capsys.readouterr()
    clock[0] += 10.0
    ctx.progress(4, 5)
    clock[0] += 10.0
    ctx.progress(5, 5)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].endswith("4/5  (eta 10s)"), lines
    assert lines[1].endswith("5/5  (eta 0s)"), lines
    # a second loop (another n, e.g. evaluation) is timed from the last report, from step 0
    clock[0] += 4.0
    ctx.progress(100, 400)
    assert capsys.readouterr().err.strip().endswith("100/400  (eta 12s)")
    # a run that did not resume measures from its start
    fresh = ex.Context("fake_eta2", {"steps": 4}, tmp_path, tmp_path / "ck2")
    clock[0] += 30.0
    fresh.progress(1, 4)
    assert capsys.readouterr().err.strip().endswith("1/4  (eta 90s)")
