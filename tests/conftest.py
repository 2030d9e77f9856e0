"""Test configuration.

- Makes the helpers in tests/ (golden.py) importable.
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
