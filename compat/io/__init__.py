"""File formats under the port's names (``nanobrag_torch.io``), read and written by
``nanobragg_jax.io`` (the C program's formats)."""

from .hkl import read_fdump, read_hkl_file, try_load_hkl_or_fdump, write_fdump
from .mask import create_circular_mask, create_rectangle_mask, read_smv_mask
from .pgm import write_pgm
from .smv import read_smv, write_smv

__all__ = [
    "create_circular_mask",
    "create_rectangle_mask",
    "read_fdump",
    "read_hkl_file",
    "read_smv",
    "read_smv_mask",
    "try_load_hkl_or_fdump",
    "write_fdump",
    "write_pgm",
    "write_smv",
]
