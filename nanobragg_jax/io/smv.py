"""SMV (ADSC) images: 16-bit unsigned pixels after a text header of ``KEY=VALUE;`` lines.

Reading follows the C program's ``GetFrame``: the file must start like an ADSC frame
(``"{\\nHEADER_BYT"``), ``HEADER_BYTES`` gives the header length, ``SIZE1`` is the fast
(width) and ``SIZE2`` the slow (height) dimension (``DETECTOR_DIMENSIONS`` if ``SIZE1`` is 0 or
missing), and the pixel data start right after the header.  Where the C program is lax we are
strict or correct, and say so:

* the C computes whether to swap bytes from ``BYTE_ORDER`` but never applies it; we do
  (``big_endian`` data is byte-swapped to native);
* a file shorter than the header plus ``2·SIZE1·SIZE2`` bytes is zero-filled by the C; we raise;
* a ``TYPE`` other than ``unsigned_short`` is read as 16-bit anyway by the C; we raise.

Header values: :func:`header_value` looks a key up exactly (the last occurrence of a repeated key
wins) and converts it like C ``atof``.  The C's ``ValueOf`` matches the keyword as a *substring*
anywhere in the header and takes its last occurrence, so ``ValueOf("DISTANCE")`` returns the
``CLOSE_DISTANCE`` value when that line comes later (as in the C program's own output) and
``ValueOf("ORGX")`` finds ``XDS_ORGX``; :func:`c_value_of` reproduces that for callers that must
behave exactly like the C program.
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass
from typing import Iterable, Optional, Union

import numpy as np

from ._files import atomic_write_bytes, read_input_bytes
from .errors import InputFileError

__all__ = [
    "SMVImage",
    "read_smv",
    "write_smv",
    "header_value",
    "c_value_of",
    "c_atof",
    "parse_smv_header",
    "format_smv_header",
]

PathLike = Union[str, "os.PathLike[str]"]

# GetFrame compares only this much of "{\nHEADER_BYTES=  512;\nDIM=2;\nBYTE_ORDER="
_ADSC_MAGIC = b"{\nHEADER_BYT"
_BLOCK = 512
# keys that write_smv derives from the data itself (in the C program's order)
_STRUCTURAL_KEYS = ("HEADER_BYTES", "DIM", "BYTE_ORDER", "TYPE", "SIZE1", "SIZE2")


@dataclass(frozen=True, eq=False)
class SMVImage:
    """An SMV image as read from disk.

    Attributes:
        header: ``KEY -> VALUE`` strings (stripped, ``;`` removed); last occurrence wins.
        data: uint16 pixels, shape (SIZE2 = slow, SIZE1 = fast), native byte order.
        header_bytes: length of the header block in bytes (``HEADER_BYTES``).
        header_text: the raw header block decoded as Latin-1 up to its first NUL (what the C
            program's ``ValueOf`` searches; see :func:`c_value_of`).
    """

    header: dict[str, str]
    data: np.ndarray
    header_bytes: int
    header_text: str = ""


_ATOF_RE = re.compile(
    r"""[ \t\n\v\f\r]*
    (?P<num>
        [+-]?
        (?:
            0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?
          | (?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?
          | inf(?:inity)?
          | nan(?:\([0-9A-Za-z_]*\))?
        )
    )""",
    re.VERBOSE | re.IGNORECASE,
)


def c_atof(text: str) -> float:
    """C ``atof``: the longest numeric prefix after leading white space, 0.0 if there is none.

    Accepts decimal and hexadecimal floating constants, ``inf``/``infinity`` and ``nan``
    (case-insensitive), like glibc's ``strtod``.
    """
    m = _ATOF_RE.match(text)
    if not m:
        return 0.0
    num = m.group("num")
    body = num.lstrip("+-")
    sign = -1.0 if num.startswith("-") else 1.0
    low = body.lower()
    if low.startswith("0x"):
        try:
            return sign * float.fromhex(body)
        except ValueError:  # pragma: no cover - the pattern only admits valid constants
            return 0.0
    if low.startswith("inf"):
        return sign * math.inf
    if low.startswith("nan"):
        return math.nan
    return sign * float(body)


def parse_smv_header(text: str) -> dict[str, str]:
    """``KEY=VALUE`` pairs of an SMV header text (between ``{`` and ``}``), last one wins.

    Each line is one entry; a missing ``;`` (the C writer forgets it after ``DIALS_ORIGIN``) is
    tolerated, anything after the first ``;`` on a line is ignored.
    """
    header: dict[str, str] = {}
    body = text
    if body.startswith("{"):
        body = body[1:]
    end = body.find("}")
    if end >= 0:
        body = body[:end]
    for line in body.splitlines():
        entry = line.split(";", 1)[0]
        if "=" not in entry:
            continue
        key, value = entry.split("=", 1)
        key = key.strip()
        if key:
            header[key] = value.strip()
    return header


def header_value(header: dict[str, str], key: str) -> Optional[float]:
    """The value of ``key`` as a float (C ``atof`` rules: no number → 0.0), or None if absent."""
    if key not in header:
        return None
    return c_atof(header[key])


def c_value_of(header_text: str, keyword: str) -> float:
    """Exactly the C program's ``ValueOf``: NaN if ``keyword`` occurs nowhere in the header.

    Finds the *last* occurrence of ``keyword`` as a substring, then the next ``=`` after it
    (0.0 if none) and returns ``atof`` of what follows.
    """
    pos = header_text.rfind(keyword)
    if pos < 0 or not keyword:
        return math.nan
    eq = header_text.find("=", pos + len(keyword))
    if eq < 0:
        return 0.0
    return c_atof(header_text[eq + 1 :])


def _header_block_text(block: bytes) -> str:
    """Header bytes as text up to the first NUL (the C treats the header as a C string)."""
    nul = block.find(b"\0")
    if nul >= 0:
        block = block[:nul]
    return block.decode("latin-1")


def _dimension(header: dict[str, str], key: str) -> int:
    """Integer value of a size key (C ``(int) atof``), 0 when absent or not finite."""
    v = header_value(header, key)
    if v is None or not math.isfinite(v):
        return 0
    return int(v)


def read_smv(path: PathLike) -> SMVImage:
    """Read an SMV/ADSC image.

    Returns:
        :class:`SMVImage` with ``data`` shaped (slow, fast) = (SIZE2, SIZE1), uint16, native
        byte order.

    Raises:
        InputFileError: missing/unreadable file, not an ADSC frame, bad ``HEADER_BYTES``,
            unsupported ``TYPE``, missing/invalid dimensions, or truncated pixel data.
    """
    raw = read_input_bytes(path, "SMV image")
    if len(raw) < _BLOCK:
        raise InputFileError(
            path, f"too short for an SMV image ({len(raw)} bytes, header needs 512)"
        )
    if not raw.startswith(_ADSC_MAGIC):
        raise InputFileError(
            path, "does not look like an ADSC/SMV frame (no '{ HEADER_BYTES=' start)"
        )
    first = _header_block_text(raw[:_BLOCK])
    size_value = header_value(parse_smv_header(first), "HEADER_BYTES")
    if size_value is None or not math.isfinite(size_value) or size_value < 1:
        raise InputFileError(path, "HEADER_BYTES is missing or invalid")
    header_size = int(size_value)
    if len(raw) < header_size:
        raise InputFileError(path, f"file ends inside its {header_size}-byte header")
    text = _header_block_text(raw[:header_size])
    header = parse_smv_header(text)

    dtype_name = header.get("TYPE", "unsigned_short").strip().lower()
    if dtype_name not in ("unsigned_short", ""):
        raise InputFileError(
            path, f"unsupported pixel TYPE {header.get('TYPE')!r} (need unsigned_short)"
        )

    width = _dimension(header, "SIZE1")
    height = _dimension(header, "SIZE2")
    if width == 0:
        width = height = _dimension(header, "DETECTOR_DIMENSIONS")
    if width <= 0 or height <= 0:
        raise InputFileError(path, f"invalid image size SIZE1={width} SIZE2={height}")

    order = header.get("BYTE_ORDER", "little_endian").strip().lower()
    big = order.startswith("big")
    needed = 2 * width * height
    pixels = raw[header_size : header_size + needed]
    if len(pixels) < needed:
        raise InputFileError(
            path, f"pixel data truncated: {len(pixels)} of {needed} bytes for {width}x{height}"
        )
    data = np.frombuffer(pixels, dtype=(">u2" if big else "<u2")).reshape(height, width)
    data = data.astype(np.uint16)  # native byte order, own memory
    return SMVImage(header=header, data=data, header_bytes=header_size, header_text=text)


def _native_byte_order() -> str:
    """``little_endian`` or ``big_endian``: how this machine (and so the C program) writes."""
    return "little_endian" if sys.byteorder == "little" else "big_endian"


def format_smv_header(items: Iterable[tuple[str, str]], header_bytes: int = _BLOCK) -> bytes:
    """Header block: ``"{\\n"`` + ``KEY=VALUE;\\n`` lines + ``"}\\f"``, space-padded to length.

    Raises:
        ValueError: when the text does not fit in ``header_bytes``, or a key/value would break
            the format (``=``, ``;``, newline, ``{`` or ``}`` in it).
    """
    lines = []
    for key, value in items:
        key, value = str(key), str(value)
        bad_key = not key.strip() or "=" in key
        if bad_key or any(c in key + value for c in "\n\r;{}\0"):
            raise ValueError(f"invalid SMV header item {key!r}={value!r}")
        lines.append(f"{key}={value};\n")
    text = ("{\n" + "".join(lines) + "}\f").encode("latin-1")
    if len(text) > header_bytes:
        raise ValueError(f"SMV header needs {len(text)} bytes, more than {header_bytes}")
    return text + b" " * (header_bytes - len(text))


def write_smv(path: PathLike, data_uint16: np.ndarray, header_items: list[tuple[str, str]]) -> None:
    """Write a uint16 (slow, fast) image as an SMV file, atomically.

    The structural keys ``HEADER_BYTES, DIM, BYTE_ORDER, TYPE, SIZE1, SIZE2`` are written first,
    derived from the data (native byte order, as the C program writes); the same keys in
    ``header_items`` are ignored.  The remaining items follow in the given order, each as
    ``KEY=VALUE;``.  The header is 512 bytes, or the next multiple of 512 that holds it.
    """
    data = np.asarray(data_uint16)
    if data.ndim != 2:
        raise ValueError(f"SMV data must be 2-D (slow, fast), got shape {data.shape}")
    if data.dtype != np.uint16:
        raise ValueError(f"SMV data must be uint16, got {data.dtype}")
    height, width = data.shape
    user_items = [(str(k), str(v)) for k, v in header_items if str(k) not in _STRUCTURAL_KEYS]
    header_bytes = _BLOCK
    while True:
        items = [
            ("HEADER_BYTES", str(header_bytes)),
            ("DIM", "2"),
            ("BYTE_ORDER", _native_byte_order()),
            ("TYPE", "unsigned_short"),
            ("SIZE1", str(width)),
            ("SIZE2", str(height)),
        ] + user_items
        try:
            block = format_smv_header(items, header_bytes)
            break
        except ValueError as exc:
            if "more than" not in str(exc):
                raise
            header_bytes += _BLOCK
    payload = block + np.ascontiguousarray(data, dtype=np.uint16).tobytes()
    atomic_write_bytes(path, payload)
