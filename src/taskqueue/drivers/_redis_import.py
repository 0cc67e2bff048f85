"""redis-py's synchronous client without the rest of its package, until something asks for it.

``import redis`` runs the package's ``__init__``, which imports every client redis-py has: the
asyncio one, the cluster, sentinel and keyspace-notification ones, and their asyncio twins.
The Redis driver uses the synchronous client, taken from its modules (``redis.client``,
``redis.exceptions``, ...), and the cluster client only on a ``redis+cluster://`` URL. Measured
with redis-py 8.2: the package's ``__init__`` adds ~75 million instructions (~25 ms) to the
start of ``taskqueue work`` and ~2.6 MB to each of its processes.

:func:`defer_package_init` puts the ``redis`` and ``redis.asyncio`` packages in ``sys.modules``
with their ``__init__`` not run yet. Importing a submodule works as usual (``import
redis.client``, ``from redis.exceptions import ResponseError``), and so does reaching one as an
attribute (``redis.client``). The first look-up of any other name (``redis.Redis``, ``from
redis import Sentinel``, ``redis.__version__``, ``redis.asyncio.Redis``, ``dir(redis)``) runs
the package's ``__init__`` in place, on the same module object, so an application that uses
redis-py gets the whole package the moment it asks for it, with the same objects the driver
uses. When ``redis`` was imported before (by the application), nothing is deferred.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

#: Deferred packages: ``redis`` (its __init__ imports ``redis.asyncio``, whose own __init__
#: imports the asyncio client) and ``redis.asyncio`` (``redis.commands.core`` imports a module
#: inside it, the asyncio metrics recorder).
PACKAGES = ("redis", "redis.asyncio")

_lock = threading.RLock()
_running: set[str] = set()


class DeferredPackage(types.ModuleType):
    """A package whose ``__init__`` runs at the first look-up of a name it has not got."""

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("__"):  # a submodule, as the import system would find it
            full = f"{self.__name__}.{name}"
            if full in sys.modules:
                return sys.modules[full]
            if self.__name__ not in _running and _is_submodule(full):
                return importlib.import_module(full)
        complete(self)
        try:
            return self.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}") from None

    def __dir__(self) -> list[str]:
        complete(self)
        return sorted(self.__dict__)


def _is_submodule(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def complete(module: types.ModuleType) -> None:
    """Run a deferred package's ``__init__`` (once; a no-op for any other module)."""
    with _lock:
        if not isinstance(module, DeferredPackage) or module.__name__ in _running:
            return
        spec = module.__spec__
        assert spec is not None and spec.loader is not None
        _running.add(module.__name__)
        try:
            spec.loader.exec_module(module)
            module.__class__ = types.ModuleType  # type: ignore[assignment]
        finally:
            _running.discard(module.__name__)


def defer_package_init() -> None:
    """Put redis-py's packages in ``sys.modules`` with their ``__init__`` deferred (see the
    module's docstring); nothing when ``redis`` is imported already or not installed."""
    with _lock:
        if "redis" in sys.modules:
            return
        parent: types.ModuleType | None = None
        for name in PACKAGES:
            # each after its parent is in place: finding a subpackage imports its parent
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                spec = None
            if spec is None or spec.loader is None or spec.submodule_search_locations is None:
                return  # not installed (the driver's import says so), or not a package
            module = importlib.util.module_from_spec(spec)
            module.__class__ = DeferredPackage
            sys.modules[name] = module
            if parent is not None:
                setattr(parent, name.rpartition(".")[2], module)
            parent = module
