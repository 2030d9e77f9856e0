"""Entry point of the ``nanoBragg`` command: answers ``-h`` before anything heavy is imported.

``nanoBragg -h`` (or no argument) needs only the flag table, so it prints the help without
importing numpy or JAX (0.05 s instead of 2–3 s); everything else goes to
:func:`nanobragg_jax.cli.main`.
"""

from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

HELP_FLAGS = ("-h", "-help", "--help")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``nanoBragg`` command; returns the exit status."""
    args = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    if not args or any(a in HELP_FLAGS for a in args):
        from .helptext import help_text

        try:
            sys.stdout.write(help_text())
            sys.stdout.flush()
        except BrokenPipeError:  # `nanoBragg -h | head`
            if argv is None:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
        return 0
    from .cli import main as cli_main

    return cli_main(argv)
