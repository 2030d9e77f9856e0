"""File formats of the C program: HKL text and Fdump.bin, SMV images, MOSFLM matrices,
source lists, PGM previews (and PNG).  Host-side numpy; every reader raises
:class:`InputFileError` (a ``ValueError``) with a one-line message naming the file."""

from .errors import InputFileError
from .hkl import HKLData, read_fdump, read_hkl, write_fdump
from .matrix import read_mosflm_matrix
from .pgm import write_pgm, write_png
from .smv import SMVImage, c_value_of, header_value, read_smv, write_smv
from .sources import read_source_file

__all__ = [
    "InputFileError",
    "HKLData",
    "read_hkl",
    "read_fdump",
    "write_fdump",
    "read_mosflm_matrix",
    "write_pgm",
    "write_png",
    "SMVImage",
    "read_smv",
    "write_smv",
    "header_value",
    "c_value_of",
    "read_source_file",
]
