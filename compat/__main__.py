"""``python -m compat …``: the port's ``python -m nanobrag_torch …`` command line.

The port's CLI takes the C program's flags; so does ours, so this runs
``nanobragg_jax.cli.main`` (same flags, same output files, same exit statuses).  Its
help (``-h``/``--help``) ends with a few example command lines, as the port's does.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

EXAMPLES = """
Examples:
  nanoBragg -cell 100 100 100 90 90 90 -default_F 100 -N 5 -lambda 1 -distance 100 \\
            -detpixels 256 -floatfile image.bin
  nanoBragg -hkl P1.hkl -mat A.mat -lambda 6.2 -N 10 -detpixels 1024 -pixel 0.1 \\
            -distance 100 -intfile image.img -noisefile noise.img
  nanoBragg -cell 100 100 100 90 90 90 -default_F 100 -xds -twotheta 20 -roi 0 63 0 63
"""


def create_parser():
    """The port's argparse parser of its CLI internals is not reproduced: the command line
    is ``nanobragg_jax``'s (``nanobragg_jax.flags`` parses and validates it)."""
    raise NotImplementedError("compat: the port's argparse internals (create_parser) are not provided; "
                              "run the command line with compat.__main__.main(argv) or parse flags "
                              "with nanobragg_jax.from_cli_args(argv)")


def parse_and_validate_args(args):
    """See ``create_parser``: not provided."""
    raise NotImplementedError("compat: parse_and_validate_args is not provided; use "
                              "nanobragg_jax.from_cli_args(argv)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the nanoBragg command line on ``argv`` (default ``sys.argv[1:]``)."""
    from nanobragg_jax.cli import main as cli_main

    args = list(sys.argv[1:] if argv is None else argv)
    status = cli_main(args)
    if any(a in ("-h", "--help", "-help") for a in args) and status == 0:
        sys.stdout.write(EXAMPLES)
    return status


if __name__ == "__main__":
    sys.exit(main())
