"""The drivers' SQL and Lua sources, read with ``read_text``."""

from __future__ import annotations

import os
from typing import Any


def read_text(filename: str) -> str:
    """The text of ``filename`` in this folder, through the package's loader (so it also works
    from a zip); lighter than ``importlib.resources``, whose imports cost a worker's start
    ~10-20 ms."""
    loader: Any = __spec__.loader
    data: bytes = loader.get_data(os.path.join(os.path.dirname(__file__), filename))
    return data.decode()
