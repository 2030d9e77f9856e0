"""Test configuration.

- Makes the helpers in tests/ (golden.py) importable.
- ``golden_corpus`` fixture: fails (never skips) a test when the golden corpus is missing.
- Turns on JAX's persistent compilation cache for the test session, so a
  configuration compiled by one test module (or one pytest-xdist worker) is
  loaded, not recompiled, by the next: the parity, CLI and SMV suites render
  the same 73 golden setups.
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))


def pytest_configure(config):
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
