"""The one exception every reader in :mod:`nanobragg_jax.io` raises for a bad input file."""

from __future__ import annotations

import os
from typing import Union

__all__ = ["InputFileError"]


class InputFileError(ValueError):
    """An input file is missing, unreadable, empty or garbled.

    The message is one line that names the file and says what is wrong, e.g.
    ``"x.hkl: line 3: expected h k l F, found 2 fields"``.

    Attributes:
        path: the file as given by the caller (str).
        reason: what is wrong with it (one line).
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], reason: str) -> None:
        self.path = os.fspath(path)
        # keep the message on one line even if the reason quotes file content
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self):  # picklable with its two arguments
        return (type(self), (self.path, self.reason))
