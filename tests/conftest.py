"""Strict test settings: CPU only, explicit rank/dtype promotion, seeded keys, optional float64."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("SPIKEJAX_DATA", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")))

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def x64():
    """Run a test in float64 (closed-form comparisons)."""
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", False)


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


def shared_data_dir():
    return os.environ["SPIKEJAX_DATA"]
