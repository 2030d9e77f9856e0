"""``python -m compat …``: the port's ``python -m nanobrag_torch …`` command line.

The port's CLI takes the C program's flags; so does ours, so this runs
``nanobragg_jax.cli.main`` (same flags, same output files, same exit statuses).
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the nanoBragg command line on ``argv`` (default ``sys.argv[1:]``)."""
    from nanobragg_jax.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
