"""Test configuration.

- Makes the helpers in tests/ (golden.py) importable.
- ``golden_corpus`` fixture: fails (never skips) a test when the golden corpus is missing.
- Under ``-n N``, hands each test module (each golden case) to one pytest-xdist worker.
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


# The golden corpus's test files: their tests of one case go to the same worker.
GOLDEN_FILES = ("tests/test_parity.py", "tests/test_smv_golden.py", "tests/test_geometry_golden.py")


def work_unit(nodeid: str) -> str:
    """The unit of work ``-n N`` hands to one pytest-xdist worker, for a test's node id.

    A test module is one unit: its tests share compiled programs (a parametrised gradient
    check compiles its gradient once for all its cases), and handed out one test at a
    time, neighbouring tests start on both workers at once and both compile the same
    program.  The golden files are split by case instead: every test of one case (float64
    and float32 parity, the command line's files and log, the printed geometry) runs in one
    worker, which renders and compiles the case once.
    """
    path = nodeid.split("::", 1)[0]
    if path in GOLDEN_FILES and nodeid.endswith("]"):
        return "golden-" + nodeid[nodeid.index("[") + 1:-1]
    return path


def pytest_xdist_make_scheduler(config, log):
    """Schedule by ``work_unit`` under ``-n N`` (pytest-xdist's default ``--dist load`` only).

    pytest-xdist's own ``--dist loadgroup`` cannot express this with pytest 9.2: it marks
    groups by rewriting node ids, which pytest 9.2 no longer reads (pytest-xdist issue
    1386), so the groups were silently ignored.
    """
    if config.getoption("dist", "load") != "load":
        return None  # the user chose a distribution mode: theirs
    try:
        from xdist.scheduler import LoadScopeScheduling
    except ImportError:  # a pytest-xdist without it: its default scheduling
        return None

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByWorkUnit(config, log)


@pytest.fixture
def golden_corpus():
    """The golden corpus directory; a missing corpus fails the test (it ships in tests/golden/)."""
    import golden

    golden.require()
    return golden.golden_dir()
