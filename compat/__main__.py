"""``python -m compat …``: the port's ``python -m nanobrag_torch …`` command line.

The port's CLI takes the C program's flags; so does ours, so this runs
``nanobragg_jax.cli.main`` (same flags, same output files, same exit statuses).  Its
help (``-h``/``--help``) ends with a few example command lines, as the port's does.
``create_parser().parse_args(argv)`` and ``parse_and_validate_args`` give the parsed
command line as a dict under the port's key names.  The port's ``-pix0_vector_mm`` (mm)
is accepted and passed on as ``-pix0_vector`` (m).
"""

from __future__ import annotations

import argparse
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


def _port_flags(argv: Sequence[str]) -> list:
    """Translate the port's own unit alias ``-pix0_vector_mm X Y Z`` (mm) into the C program's
    ``-pix0_vector`` (m).  The C program has no such flag: its substring match would read
    the three numbers as metres.  Giving both forms is an error, as in the port."""
    argv = [str(a) for a in argv]
    if "-pix0_vector_mm" not in argv:
        return argv
    if "-pix0_vector" in argv:
        raise ValueError("Cannot specify both -pix0_vector and -pix0_vector_mm")
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "-pix0_vector_mm":
            values = argv[i + 1:i + 4]
            try:
                metres = [float(v) / 1000.0 for v in values]
            except ValueError:
                metres = []
            if len(metres) != 3:
                raise ValueError(f"-pix0_vector_mm needs 3 numbers (mm), got {values}")
            out += ["-pix0_vector"] + [repr(m) for m in metres]
            i += 4
        else:
            out.append(argv[i])
            i += 1
    return out


class _Parser:
    """What the port's ``create_parser()`` returns, for its two uses: ``parse_args(argv)``
    checks the flags against our flag table and keeps them; ``parse_and_validate_args`` then
    reads them as the C program does."""

    def parse_args(self, args: Optional[Sequence[str]] = None) -> argparse.Namespace:
        from nanobragg_jax.flags import FlagError, validate_argv

        argv = _port_flags(sys.argv[1:] if args is None else args)
        try:
            validate_argv(argv)
        except FlagError as exc:  # argparse's way: a message on stderr and exit status 2
            print(f"nanoBragg: error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        return argparse.Namespace(argv=argv)


def create_parser() -> _Parser:
    """The command-line parser (the port's name).  Flags are the C program's, as checked by
    ``nanobragg_jax.flags``."""
    return _Parser()


def _given(st, *flags: str) -> bool:
    return any(f in st.given for f in flags)


def parse_and_validate_args(args: argparse.Namespace) -> dict:
    """The parsed command line as a dict under the port's key names (a subset: the keys its
    scripts read), from the C program's variables after its argument loops
    (``nanobragg_jax.flags.parse_c_state``).  Units are the port's: metres for vectors,
    Å for λ, mm for distances and pixels.  A key whose flag was not given is None (or, for
    ``polarization_factor``, absent), so that the configs' own defaults apply."""
    from nanobragg_jax.flags import parse_c_state

    argv = list(args.argv)
    st = parse_c_state(argv)

    def vector(flag: str, value) -> Optional[tuple]:
        return tuple(float(x) for x in value) if _given(st, flag) else None

    pix0 = tuple(float(x) for x in st.pix0_vector) if st.pix0_given else None
    config = {
        "convention": st.beam_convention,
        "pivot": st.detector_pivot,
        "pix0_override_m": pix0,
        "custom_pix0_vector": pix0,
        "custom_beam_vector": vector("-beam_vector", st.beam_vector),
        "custom_fdet_vector": vector("-fdet_vector", st.fdet_vector),
        "custom_sdet_vector": vector("-sdet_vector", st.sdet_vector),
        "custom_odet_vector": vector("-odet_vector", st.odet_vector),
        "wavelength_A": st.lambda0 * 1e10,
        "distance_mm": st.distance * 1000.0,
        "pixel_size_mm": st.pixel_size * 1000.0,
        "default_F": st.default_F,
        "hkl_file": st.hklfilename,
        "mat_file": st.matfilename,
        "floatfile": st.floatfilename if _given(st, "-floatfile") else None,
        "intfile": st.intfilename if _given(st, "-intfile") else None,
        "noisefile": st.noisefilename if _given(st, "-noisefile", "-noiseimage") else None,
        "suppress_noise": not st.calculate_noise,
        "adc": st.adc_offset,
        # the C program stores -seed S as -S (ran1 starts from a negative seed)
        "seed": -st.seed if st.seed is not None else None,
        "roi": tuple(st.roi) if _given(st, "-roi") else None,
        "nopolar": bool(st.nopolar),
    }
    if _given(st, "-polar"):
        config["polarization_factor"] = st.polarization
    return config


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the nanoBragg command line on ``argv`` (default ``sys.argv[1:]``)."""
    from nanobragg_jax.cli import main as cli_main

    try:
        args = _port_flags(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        print(f"nanoBragg: error: {exc}", file=sys.stderr)
        return 2
    status = cli_main(args)
    if any(a in ("-h", "--help", "-help") for a in args) and status == 0:
        sys.stdout.write(EXAMPLES)
    return status


if __name__ == "__main__":
    sys.exit(main())
