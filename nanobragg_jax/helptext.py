"""The ``nanoBragg -h`` text, generated from the flag table (imports neither numpy nor JAX)."""

from __future__ import annotations

import textwrap

_GROUP_TITLES = {
    "crystal": "Crystal",
    "beam": "Beam",
    "detector": "Detector",
    "output": "Output",
    "misc": "Other",
}


def help_text(width: int = 100) -> str:
    """Usage and every flag with its value(s), units and default, generated from flags.FLAGS."""
    from .flags import FLAGS

    lines = [
        "usage: nanoBragg -cell a b c alpha beta gamma (or -mat FILE) -hkl FILE (or -default_F F) [flags]",
        "",
        "Simulates the diffraction image of a perfect-lattice nanocrystal (the nanoBragg C program,",
        "rebuilt on JAX).  Flags and outputs follow the C program; lengths in mm, angles in degrees,",
        "wavelength in Angstrom unless stated.  Writes floatimage.bin, intimage.img, image.pgm and",
        "noiseimage.img by default (see -nopgm, -nonoise).",
    ]
    groups: dict[str, list] = {}
    for spec in FLAGS:
        groups.setdefault(spec.group, []).append(spec)
    for group in ("crystal", "beam", "detector", "output", "misc"):
        specs = groups.get(group, [])
        if not specs:
            continue
        lines += ["", _GROUP_TITLES.get(group, group.title()) + ":"]
        for spec in specs:
            lines.append(_help_entry(spec))
    lines += [
        "",
        "Exit status: 0 on success, 2 on a bad flag, value or input file (one line on stderr).",
        "Environment: NANOBRAGG_JAX_CACHE=0 (or a folder) controls the compiled-kernel cache",
        "(default ~/.cache/nanobragg-jax); NANOBRAGG_DEBUG=1 shows a traceback on internal errors.",
        "Full reference: docs/cli.md.",
    ]
    return "\n".join(lines) + "\n"


def _value_words(spec) -> str:
    if spec.kind == "flag":
        return ""
    if spec.names[0] == "-cell":
        return "a b c al be ga"
    if spec.kind == "misset":
        return "x y z|random"
    if spec.kind == "str":
        return "FILE"
    if spec.kind == "pivot":
        return "beam|sample"
    if spec.kind == "dtype":
        return "float64|float32"
    if spec.kind == "abs":
        return "DEPTH|inf"
    if spec.names[0] in ("-printout_pixel",):
        return "f s"
    if spec.names[0] in ("-trace_pixel",):
        return "s f"
    if spec.names[0] == "-roi":
        return "xmin xmax ymin ymax"
    word = "N" if spec.kind == "int" else "X"
    return " ".join([word] * spec.nargs)


def _help_entry(spec) -> str:
    names = " ".join(spec.names)
    values = _value_words(spec)
    left = f"  {names} {values}".rstrip()
    details = spec.help
    extras = []
    if spec.units and spec.units != "file":
        extras.append(f"units: {spec.units}")
    if spec.default:
        extras.append(f"default: {spec.default}")
    if extras:
        details += " [" + "; ".join(extras) + "]"
    body = textwrap.wrap(details, width=max(40, 100 - 34)) or [""]
    pad = " " * 34
    if len(left) < 34:
        first = [f"{left:<34}{body[0]}"]
    else:
        first = [left, pad + body[0]]
    return "\n".join(first + [pad + b for b in body[1:]])
