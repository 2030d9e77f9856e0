"""Test configuration.

- Makes the helpers in tests/ (golden.py) importable.
- ``golden_corpus`` fixture: fails (never skips) a test when the golden corpus is missing.
- Compiles the tests' programs with XLA's LLVM backend at optimisation level 0
  (``XLA_FLAGS=--xla_backend_optimization_level=0``; ``NANOBRAGG_TEST_XLA_OPT=default``
  keeps XLA's default): the suite compiles ~1,900 programs and spends most of its time
  compiling them, and level 0 compiles them in about two thirds of the time.  The HLO is
  the same, and the images and gradients differ from the default build's by ≤ 1e-12
  relative (measured ≤ 4e-13 on golden cases; floating-point contraction differs), which
  tests/test_build_levels.py checks in every run against a process at the default level.
- Turns on JAX's persistent compilation cache for the test session, so a
  configuration compiled by one test module (or one pytest-xdist worker) is
  loaded, not recompiled, by the next: the parity, CLI and SMV suites render
  the same 73 golden setups.
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))


TEST_OPT_FLAG = "--xla_backend_optimization_level=0"


def pytest_configure(config):
    # before any JAX backend starts (here and in the subprocesses the tests start)
    if os.environ.get("NANOBRAGG_TEST_XLA_OPT", "") != "default":
        flags = os.environ.get("XLA_FLAGS", "")
        if TEST_OPT_FLAG not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} {TEST_OPT_FLAG}".strip()
    from nanobragg_jax.simulate import enable_compilation_cache

    path = os.environ.get("NANOBRAGG_JAX_CACHE") or os.path.join(tempfile.gettempdir(), "nanobragg-jax-test-xla")
    enable_compilation_cache(path)


import pytest  # noqa: E402


@pytest.fixture
def golden_corpus():
    """The golden corpus directory; a missing corpus fails the test (it ships in tests/golden/)."""
    import golden

    golden.require()
    return golden.golden_dir()
