"""Names of a task's positional parameters, for the tasks this process has imported (the
dashboard's ``--app`` modules, or the app that mounts it): ``args.user_id:42`` then matches
``send(42)`` as well as ``send(user_id=42)``, and the job page names positional arguments.

Only registered tasks are looked at: a job's name is never imported (that would run code named
by whoever pushed the job).
"""

from __future__ import annotations

import inspect
from typing import Any

from taskqueue.jobs.definition import REGISTRY

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def positional_names(task_name: str) -> tuple[str, ...] | None:
    """The task's positional parameter names in order, or None when it is not registered here
    (or is a class-based job, whose arguments are named already)."""
    fn = getattr(REGISTRY.get(task_name), "fn", None)
    if fn is None:
        return None
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    names: list[str] = []
    for parameter in parameters:
        if parameter.kind not in _POSITIONAL:
            break
        names.append(parameter.name)
    return tuple(names)


def named_positionals(task_name: str, body: Any) -> dict[str, Any] | None:
    """``{name: value}`` of the positional arguments in a decoded payload ``body``."""
    names = positional_names(task_name)
    args = body.get("args") if isinstance(body, dict) else None
    if not names or not isinstance(args, list):
        return None
    return dict(zip(names, args, strict=False))
