"""The package surface: light import, every capability reachable from ``spikejax``."""

import subprocess
import sys

import pytest

import spikejax


def test_import_is_light():
    code = "import sys, spikejax; print(sorted(m for m in ('mip', 'optuna', 'sklearn', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("name", spikejax._LAZY)
def test_lazy_submodules_resolve(name):
    mod = getattr(spikejax, name)
    assert mod.__name__ == f"spikejax.{name}"
    assert name in dir(spikejax) and name in spikejax.__all__


def test_unknown_attribute_names_itself():
    with pytest.raises(AttributeError, match="no_such_thing"):
        spikejax.no_such_thing  # noqa: B018
