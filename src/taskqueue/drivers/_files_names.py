"""File-system names for ids and queue names in the files backend."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

_MAX_NAME = 200


_PLAIN = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9_.~-]{0,199}")


def fs_name(text: str) -> str:
    """A file name for ``text`` (an id or a queue name): quoted, never hidden, never a path."""
    if _PLAIN.fullmatch(text):
        return text  # what quote() would return (a UUID, a plain queue name), only faster
    name = quote(text, safe="")
    if name.startswith("."):
        name = "%2E" + name[1:]
    if not name or len(name) > _MAX_NAME:
        raise ValueError(f"{text!r} cannot be used as a name in the files backend "
                         f"(empty or longer than {_MAX_NAME} characters once quoted)")
    return name


def from_fs_name(name: str) -> str:
    return unquote(name)
