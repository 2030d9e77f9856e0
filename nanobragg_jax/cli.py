"""The ``nanoBragg`` command: the C program's flags → simulate → output files."""

from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

import numpy as np


def _write_atomic(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``nanoBragg`` console script."""
    import jax

    args = list(sys.argv[1:] if argv is None else argv)
    dtype = "float32" if "-dtype" in args and args[args.index("-dtype") + 1:][:1] == ["float32"] else "float64"
    jax.config.update("jax_enable_x64", dtype == "float64")
    from . import from_cli_args, simulate
    from .flags import FlagError

    try:
        exp = from_cli_args(args)
    except (FlagError, ValueError, OSError) as err:
        print(f"nanoBragg: error: {err}", file=sys.stderr)
        return 2
    image = np.asarray(simulate(exp.setup, exp.params))
    _write_atomic(exp.options["floatfile"], image.astype("<f4").tobytes())
    return 0
