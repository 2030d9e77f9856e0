"""Make ``import nanobrag_torch[.x.y]`` return ``compat[.x.y]`` (the same module objects).

Used by ``run_port_suite.py`` in two places: as a pytest plugin (``-p nanobrag_alias``)
in the test process, and from the generated shim package that subprocesses
(``python -m nanobrag_torch …``) import.  Aliasing — rather than loading compat's files
a second time under the port's name — keeps one copy of every class, so an object made
through ``nanobrag_torch.config`` is the one ``compat`` checks with ``isinstance``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys

PORT = "nanobrag_torch"
# Some of the port's tests import the package through its source folder (``src.nanobrag_torch``).
PORT_NAMES = (PORT, "src." + PORT)
TARGET = "compat"


def _target(fullname: str):
    for name in PORT_NAMES:
        if fullname == name or fullname.startswith(name + "."):
            return TARGET + fullname[len(name):]
    return None


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module):  # already executed under its own name
        pass


class AliasFinder(importlib.abc.MetaPathFinder):
    """Resolves ``nanobrag_torch*`` to the matching ``compat*`` module."""

    def find_spec(self, fullname, path=None, target=None):
        real = _target(fullname)
        if real is None:
            return None
        if fullname.endswith(".__main__"):
            # runpy (python -m) needs a loader with get_code: hand it compat's own file.
            spec = importlib.util.find_spec(real)
            if spec is None:
                return None
            return importlib.util.spec_from_file_location(fullname, spec.origin)
        try:
            real_spec = importlib.util.find_spec(real)
        except ModuleNotFoundError:
            return None
        if real_spec is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(real),
                                              is_package=real_spec.submodule_search_locations is not None)


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (idempotent) and drop stale port modules."""
    if not any(isinstance(f, AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, AliasFinder())
    for name in [n for n in sys.modules if _target(n) is not None]:
        if not getattr(sys.modules[name], "__name__", "").startswith(TARGET):
            del sys.modules[name]


install()
