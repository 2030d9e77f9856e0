"""File helpers for the readers and writers.

Atomic writes: a temporary file in the destination directory, then ``os.replace``.

A reader (or a crash) never sees a half-written output file, and an existing file is replaced
in one step.  The temporary file is created with mode 0o666 filtered by the process umask, like
a plain ``open(path, "wb")``, so the result has the usual permissions.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from typing import Callable, Union

PathLike = Union[str, "os.PathLike[str]"]


COMMENT_START = ("#", "!")
"""First characters of a comment line in the text inputs (HKL and matrix files)."""


def temporary_beside(dest: str, suffix: str = ".tmp") -> str:
    """A fresh name for a temporary file in ``dest``'s folder (hidden, unique to this call).

    The name is cut so that the temporary fits the file system's name limit whenever
    ``dest``'s own name does.
    """
    folder = os.path.dirname(os.path.abspath(dest))
    base = os.path.basename(dest)
    return os.path.join(folder, f".{base[:40]}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")


def atomic_write(path: PathLike, write: "Callable[[str], None]", suffix: str = ".tmp") -> None:
    """Write ``path`` atomically: ``write(tmp)`` fills a temporary beside it, then ``os.replace``.

    On any failure the temporary is removed and the error re-raised; ``path`` is untouched.
    """
    dest = os.fspath(path)
    tmp = temporary_beside(dest, suffix)
    try:
        write(tmp)
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_bytes(path: PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically (same directory temp file + ``os.replace``)."""
    def write(tmp: str) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)

    atomic_write(path, write)


def read_input_bytes(path: PathLike, what: str) -> bytes:
    """Read a whole input file, turning every OS-level failure into :class:`InputFileError`.

    Args:
        path: the file.
        what: what the file is meant to be ("HKL file", "SMV image" …), used in the message.
    """
    from .errors import InputFileError

    try:
        with open(os.fspath(path), "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise InputFileError(path, f"{what} not found") from None
    except IsADirectoryError:
        raise InputFileError(path, f"{what} is a directory") from None
    except PermissionError:
        raise InputFileError(path, f"{what} is not readable (permission denied)") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot read {what}: {exc.strerror or exc}") from None


def decode_text(path: PathLike, raw: bytes, what: str) -> str:
    """Decode a text input file (UTF-8, falling back to Latin-1 so any byte string decodes)."""
    del path, what  # decoding never fails with the Latin-1 fallback
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# A number as C's atof/strtod reads it *in full*: ASCII decimal with an optional exponent.
# Python's float() is laxer ("1_0", non-ASCII digits, surrounding blanks) and would turn text
# the C program reads as 0 (or stops at) into a value; the readers use this pattern instead.
NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NON_FINITE_RE = re.compile(r"[+-]?(?:inf(?:inity)?|nan(?:\([0-9A-Za-z_]*\))?)", re.IGNORECASE)


def parse_number(token: str) -> float:
    """``token`` as a finite float, or ValueError("not a number" / "not finite")."""
    if NUMBER_RE.fullmatch(token):
        value = float(token)
        if math.isfinite(value):
            return value
        raise ValueError("not finite")  # 1e999: beyond float64
    if _NON_FINITE_RE.fullmatch(token):
        raise ValueError("not finite")
    raise ValueError("not a number")
