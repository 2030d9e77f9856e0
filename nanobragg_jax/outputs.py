"""Output files of the ``nanoBragg`` command: checked before rendering, written all or nothing.

Before anything is rendered, :func:`check_output_paths` makes sure every output can be created
(its folder exists and is writable, the name is a file name the file system accepts, it is not
a folder or a device) and that no two outputs — and no output and an input — are the same file.
After rendering, :class:`StagedOutputs` writes every output to a temporary file beside its
destination and renames them into place only when all were written; if one write fails, the
temporaries are removed and no destination is touched.  Every error names the flag and the
file given on the command line, never the temporary file.
"""

from __future__ import annotations

import os
import secrets
from typing import Callable, Optional

__all__ = ["OutputError", "check_output_paths", "StagedOutputs", "planned_outputs", "planned_inputs"]


class OutputError(ValueError):
    """An output cannot be written: one line naming the flag and the file."""


def planned_outputs(st) -> dict[str, str]:
    """flag → path of every file the command will write, in the C program's order."""
    out = {"-floatfile": st.floatfilename, "-intfile": st.intfilename}
    if st.write_pgm:
        out["-pgmfile"] = st.pgmfilename
    if st.pngfilename:
        out["-pngfile"] = st.pngfilename
    if st.calculate_noise:
        out["-noisefile"] = st.noisefilename
    return out


def planned_inputs(st) -> dict[str, str]:
    """flag → path of every file the command reads (the structure-factor cache included)."""
    pairs = (("-hkl", st.hklfilename), ("-mat", st.matfilename), ("-img", st.imgfilename),
             ("-mask", st.maskfilename), ("-sourcefile", st.sourcefilename),
             ("-stol", st.stolfilename), ("-dump", st.dumpfilename))
    return {flag: path for flag, path in pairs if path}


def _identity(path: str):
    """Something equal for two names of the same file (existing or not)."""
    try:
        info = os.stat(path)
        return ("inode", info.st_dev, info.st_ino)
    except OSError:
        return ("path", os.path.normcase(os.path.realpath(os.path.abspath(path))))


def _limit(folder: str, name: str, default: int) -> int:
    try:
        return int(os.pathconf(folder, name))
    except (OSError, ValueError, AttributeError):
        return default


def check_output_paths(outputs: dict[str, str], inputs: Optional[dict[str, str]] = None) -> None:
    """Raise :class:`OutputError` unless every output in ``outputs`` (flag → path) can be written.

    Checks, for each output: a file name (not empty, not ending in a path separator, not ``.``
    or ``..``), no folder or device of that name, the folder exists and is writable, the name
    and the whole path fit the file system's limits; then that no two outputs and no output and
    input (``inputs``, flag → path) are the same file.
    """
    seen: dict = {}
    for flag, path in outputs.items():
        if not path:
            raise OutputError(f"{flag}: empty file name")
        base = os.path.basename(path)
        if base in ("", ".", "..") or path.endswith(("/",) + ((os.sep,) if os.sep != "/" else ())):
            raise OutputError(f"{flag} {path}: names a folder, not a file")
        if os.path.isdir(path):
            raise OutputError(f"{flag} {path}: is a directory")
        if os.path.lexists(path) and not os.path.isfile(path):
            raise OutputError(f"{flag} {path}: exists and is not a regular file "
                              "(-nonoise and -nopgm skip those outputs)")
        folder = os.path.dirname(os.path.abspath(path)) or "."
        if not os.path.isdir(folder):
            raise OutputError(f"{flag} {path}: folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"{flag} {path}: folder {folder} is not writable")
        if os.path.exists(path) and not os.access(path, os.W_OK) and not os.access(folder, os.W_OK):
            raise OutputError(f"{flag} {path}: file is not writable")
        name_max = _limit(folder, "PC_NAME_MAX", 255)
        if len(os.fsencode(base)) > name_max:
            raise OutputError(f"{flag}: the file name is {len(os.fsencode(base))} bytes long, more than the "
                              f"{name_max} the file system allows")
        path_max = _limit(folder, "PC_PATH_MAX", 4096)
        if len(os.fsencode(os.path.abspath(path))) >= path_max:
            raise OutputError(f"{flag}: the path is longer than the {path_max} bytes the system allows")
        key = _identity(path)
        if key in seen:
            raise OutputError(f"{flag} {path}: the same file as {seen[key]} (give each output its own name)")
        seen[key] = flag
    for flag, path in (inputs or {}).items():
        key = _identity(path)
        if key in seen:
            if flag == "-dump":
                raise OutputError(f"{seen[key]} {path}: is the structure-factor cache file (-dump)")
            raise OutputError(f"{seen[key]} {path}: would overwrite the input file of {flag}")


def _temporary_name(path: str) -> str:
    """A hidden name beside ``path`` that fits the name limit however long ``path``'s name is."""
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    return os.path.join(folder, f".{base[:40]}.{os.getpid()}.{secrets.token_hex(4)}.part")


class StagedOutputs:
    """Write outputs to temporaries, then rename them all into place (all or nothing).

    Use ``add(flag, path, writer)`` for each output (``writer(temporary_path)`` writes the
    file), then ``commit()``; ``discard()`` (or leaving a ``with`` block by an exception)
    removes every temporary.
    """

    def __init__(self) -> None:
        self._staged: list[tuple[str, str, str]] = []

    def add(self, flag: str, path: str, writer: Callable[[str], None]) -> None:
        tmp = _temporary_name(path)
        try:
            writer(tmp)
        except OSError as exc:
            _remove(tmp)
            raise OutputError(f"{flag} {path}: cannot write: {exc.strerror or exc}") from None
        except BaseException:
            _remove(tmp)
            raise
        self._staged.append((flag, path, tmp))

    def commit(self) -> None:
        done: list[str] = []
        for k, (flag, path, tmp) in enumerate(self._staged):
            try:
                os.replace(tmp, path)
            except OSError as exc:
                for _, _, rest in self._staged[k:]:
                    _remove(rest)
                for written in done:
                    _remove(written)
                self._staged = []
                raise OutputError(f"{flag} {path}: cannot write: {exc.strerror or exc}") from None
            done.append(path)
        self._staged = []

    def discard(self) -> None:
        for _, _, tmp in self._staged:
            _remove(tmp)
        self._staged = []

    def __enter__(self) -> "StagedOutputs":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.discard()
        return False


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
