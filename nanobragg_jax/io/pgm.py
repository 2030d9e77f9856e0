"""Preview images: the C program's 8-bit PGM (``-pgmfile``) and a dependency-free PNG writer."""

from __future__ import annotations

import os
import struct
import zlib
from typing import Optional, Sequence, Union

import numpy as np

from ._files import atomic_write_bytes

__all__ = ["pgm_bytes", "pgm_pixels", "write_pgm", "png_bytes", "write_png"]

PathLike = Union[str, "os.PathLike[str]"]


def _roi_mask(shape: tuple[int, int], roi: Optional[Sequence[int]]) -> np.ndarray:
    """Pixels inside ``roi = (xmin, xmax, ymin, ymax)`` (inclusive, x = fast); None = all."""
    if roi is None:
        return np.ones(shape, dtype=bool)
    xmin, xmax, ymin, ymax = (int(v) for v in roi)
    s = np.arange(shape[0])[:, None]
    f = np.arange(shape[1])[None, :]
    return (f >= xmin) & (f <= xmax) & (s >= ymin) & (s <= ymax)


def pgm_pixels(image: np.ndarray, scale: float, roi: Optional[Sequence[int]] = None) -> np.ndarray:
    """8-bit preview pixels as the C program computes them, (slow, fast) uint8.

    ``v = float32 pixel × scale`` (in double), clipped above at 255, then converted like the
    compiled C ``(unsigned char)`` cast: truncation toward zero keeping the low 8 bits (so a
    negative value wraps and NaN gives 0).  Pixels outside the ROI are 0.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D (slow, fast), got shape {img.shape}")
    test = img.astype(np.float64) * float(scale)
    test = np.where(test > 255.0, 255.0, test)
    finite = np.isfinite(test)
    as_int = np.where(finite, np.trunc(np.where(finite, test, 0.0)), 0.0).astype(np.int64)
    out = (as_int & 0xFF).astype(np.uint8)
    out[~_roi_mask(img.shape, roi)] = 0
    return out


def pgm_bytes(image: np.ndarray, scale: float, roi: Optional[Sequence[int]] = None) -> bytes:
    """Complete binary PGM file: ``P5``, size, ``# pixels scaled by <scale %g>``, ``255``, data."""
    pixels = pgm_pixels(image, scale, roi)
    spixels, fpixels = pixels.shape
    header = f"P5\n{fpixels} {spixels}\n# pixels scaled by {float(scale):g}\n255\n"
    return header.encode("ascii") + pixels.tobytes()


def write_pgm(
    path: PathLike, image_float32: np.ndarray, scale: float, roi: Optional[Sequence[int]] = None
) -> None:
    """Write the C program's 8-bit PGM preview of a float image, atomically.

    Args:
        path: output file.
        image_float32: photons per pixel, (slow, fast).
        scale: multiplier to 8-bit grey levels (the C ``pgm_scale``).
        roi: (xmin, xmax, ymin, ymax) inclusive, x = fast; pixels outside are written as 0.
    """
    atomic_write_bytes(path, pgm_bytes(image_float32, scale, roi))


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type+data."""
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_bytes(image_uint8: np.ndarray) -> bytes:
    """An 8-bit greyscale PNG of a (rows, columns) uint8 image (filter 0 on every row)."""
    img = np.asarray(image_uint8)
    if img.ndim != 2:
        raise ValueError(f"PNG image must be 2-D (rows, columns), got shape {img.shape}")
    if img.dtype != np.uint8:
        raise ValueError(f"PNG image must be uint8, got {img.dtype}")
    height, width = img.shape
    if height == 0 or width == 0:
        raise ValueError("PNG image must not be empty")
    # each scanline starts with its filter-type byte (0 = none)
    raw = np.empty((height, width + 1), dtype=np.uint8)
    raw[:, 0] = 0
    raw[:, 1:] = img
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + _png_chunk(b"IEND", b"")
    )


def write_png(path: PathLike, image_uint8: np.ndarray) -> None:
    """Write an 8-bit greyscale PNG (no dependency beyond zlib), atomically."""
    atomic_write_bytes(path, png_bytes(image_uint8))
