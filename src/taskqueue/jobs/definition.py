"""Two ways to define a job, one registry.

* class-based: subclass :class:`Job` and implement ``handle()``; push instances with
  ``manager.push(SendInvoice({"order": 42}, queue="billing"))``;
* function-based: decorate with ``@task(...)`` and call ``.delay(*args, **kwargs)``.

Both register under a name (``module.QualName`` unless given). A worker resolves a stored job's
name only through this registry, so nothing in the queue ever chooses code to import.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from taskqueue.errors import ConfigError, UnknownTask
from taskqueue.jobs.context import JobContext
from taskqueue.jobs.dispatch import default_client
from taskqueue.jobs.priority import Priority

if TYPE_CHECKING:
    from taskqueue.jobs.dispatch import Enqueuer
    from taskqueue.jobs.handle import JobHandle

P = ParamSpec("P")
R = TypeVar("R")

#: Options a job or task may set, with their defaults (None: decided elsewhere).
OPTION_DEFAULTS: dict[str, Any] = {
    "queue": "default",
    "priority": int(Priority.NORMAL),
    "max_attempts": 3,
    "timeout": None,
    "delay": None,
    "eta": None,
    "tags": (),
    "idempotency_key": None,
    "depends_on": (),
    "batch_id": None,
    "retry_backoff": 1.0,
    "retry_backoff_max": 600.0,
    "retry_jitter": True,
    # owned by the scheduling and workflow features (rate limits, conditions, uniqueness, ...)
    "rate": None,
    "rate_key": None,
    "concurrency": None,
    "conditions": (),
    "unique": None,
    "unique_for": None,
    "every": None,
    "pass_result": False,
    "continue_on_failure": False,
    "requires": (),
}


def check_options(options: Mapping[str, Any], where: str) -> None:
    """Reject unknown option names early, with a hint."""
    for key in options:
        if key not in OPTION_DEFAULTS:
            from difflib import get_close_matches

            hint = get_close_matches(key, OPTION_DEFAULTS, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ConfigError(f"{where}: unknown job option {key!r}{extra}")


@dataclass(frozen=True, slots=True)
class Call:
    """One enqueue request: which registered name, what body, which options."""

    name: str
    body: dict[str, Any]
    options: dict[str, Any]

    def set(self, **options: Any) -> Call:
        """The same call with more options: ``fetch.s(url).set(queue="io", pass_result=True)``."""
        check_options(options, f"job {self.name}")
        return Call(self.name, self.body, {**self.options, **options})


_set_call_name, _set_call_body, _set_call_options = (
    Call.__dict__[name].__set__ for name in ("name", "body", "options"))


def _new_call(name: str, body: dict[str, Any], options: dict[str, Any]) -> Call:
    """``Call(name, body, options)`` with its slots filled directly (the frozen ``__init__``
    goes through ``object.__setattr__`` per field): one is made per job of a batch."""
    call = object.__new__(Call)
    _set_call_name(call, name)
    _set_call_body(call, body)
    _set_call_options(call, options)
    return call


class Runnable:
    """What the registry holds: a name, default options, and how to run a decoded body."""

    name: str
    defaults: dict[str, Any]

    def run(self, body: dict[str, Any], ctx: JobContext) -> Any:
        raise NotImplementedError  # abstract: Task and JobClass implement it

    def is_async(self) -> bool:
        raise NotImplementedError  # abstract

    def on_failure(self, body: dict[str, Any], exc: BaseException) -> None:
        """Called once when the job lands in the dead letter queue."""


REGISTRY: dict[str, Runnable] = {}


def register(runnable: Runnable) -> None:
    existing = REGISTRY.get(runnable.name)
    if existing is not None and existing is not runnable and _origin(existing) != _origin(
        runnable
    ):
        raise ConfigError(f"two jobs are registered under the name {runnable.name!r}")
    REGISTRY[runnable.name] = runnable


def _origin(runnable: Runnable) -> str:
    target = getattr(runnable, "fn", None) or getattr(runnable, "cls", None)
    return f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', '')}"


def resolve(name: str) -> Runnable:
    try:
        return REGISTRY[name]
    except KeyError:
        from difflib import get_close_matches

        hint = get_close_matches(name, REGISTRY, n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise UnknownTask(
            f"no task named {name!r} is registered in this worker{extra}; "
            "import the module that defines it (taskqueue work --app yourmodule)"
        ) from None


# -- function-based -----------------------------------------------------------------------------

#: A plain signature (positional-or-keyword parameters only): each name's position, and the
#: positions and names of the parameters without a default.
Plain = tuple[dict[str, int], tuple[tuple[int, str], ...]]


def _plain_parameters(signature: inspect.Signature) -> Plain | None:
    params = list(signature.parameters.values())
    if any(p.kind is not p.POSITIONAL_OR_KEYWORD for p in params):
        return None
    return ({p.name: i for i, p in enumerate(params)},
            tuple((i, p.name) for i, p in enumerate(params) if p.default is p.empty))


def _fits(plain: Plain | None, args: Sequence[Any], kwargs: Mapping[str, Any],
          partial: bool) -> bool:
    """True when the arguments certainly bind to a plain signature: the answer of
    ``Signature.bind`` (``bind_partial`` when ``partial``) without its cost, a few
    microseconds per enqueue. False means "ask inspect", which raises or accepts."""
    if plain is None:
        return False
    index, required = plain
    count = len(args)
    if count > len(index):
        return False
    for key in kwargs:
        position = index.get(key)
        if position is None or position < count:
            return False
    return partial or all(i < count or name in kwargs for i, name in required)


class Task(Runnable, Generic[P, R]):
    """A function registered as a job. Calling it runs it directly; ``delay`` enqueues it."""

    def __init__(self, fn: Callable[P, R], name: str, defaults: dict[str, Any]) -> None:
        self.fn = fn
        self.name = name
        self.defaults = defaults
        self.signature = inspect.signature(fn)
        self._plain = _plain_parameters(self.signature)
        functools.update_wrapper(self, fn)  # type: ignore[arg-type, unused-ignore]

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def call(self, args: Sequence[Any], kwargs: Mapping[str, Any], *, partial: bool = False,
             **options: Any) -> Call:
        """Build an enqueue request, checking arguments against the function's signature
        (``partial``: some arguments, like a previous step's result, arrive later)."""
        if options:
            check_options(options, f"task {self.name}")
        partial = partial or bool(options.get("pass_result"))
        if not _fits(self._plain, args, kwargs, partial):
            self._bind(args, kwargs, partial)
        body: dict[str, Any] = {"args": list(args), "kwargs": dict(kwargs)} if kwargs else {
            "args": list(args)}
        return _new_call(self.name, body, {**self.defaults, **options})

    def s(self, *args: P.args, **kwargs: P.kwargs) -> Call:
        """A call to enqueue later, e.g. as a step of ``chain()`` or ``group()``; arguments
        filled in at run time (``previous``, ``results``, ``batch``) may be left out.
        (``call(args, kwargs, partial=True)`` without its options: the batch path, where a
        call is built per job.)"""
        plain = self._plain
        # positional arguments alone bind partially when there are not too many of them
        if (kwargs or plain is None or len(args) > len(plain[0])) and not _fits(
                plain, args, kwargs, True):
            self._bind(args, kwargs, True)
        body: dict[str, Any] = {"args": list(args), "kwargs": kwargs} if kwargs else {
            "args": list(args)}
        return _new_call(self.name, body, {**self.defaults})

    def _bind(self, args: Sequence[Any], kwargs: Mapping[str, Any], partial: bool) -> None:
        """Let inspect decide whether the arguments bind (and word the TypeError)."""
        try:
            binder = self.signature.bind_partial if partial else self.signature.bind
            binder(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"task {self.name}: {exc}") from None

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle:
        """Enqueue with the task's default options on the default manager; return the job id."""
        return self.push(args, kwargs)

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle:
        """``delay`` for asyncio code: the store call runs in a thread."""
        import asyncio

        return await asyncio.to_thread(self.push, args, kwargs)

    def run_now(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run in this process through the worker machinery (retries, records); return the
        result or raise JobFailed."""
        result: R = default_client().run_now(self.call(args, kwargs))
        return result

    def push(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        manager: Enqueuer | None = None,
        **options: Any,
    ) -> JobHandle:
        """Enqueue with per-call options (queue, priority, delay, eta, tags, ...)."""
        return (manager or default_client()).push(self.call(args, kwargs or {}, **options))

    def run(self, body: dict[str, Any], ctx: JobContext) -> Any:
        return self.fn(*body.get("args", ()), **body.get("kwargs", {}))


@overload
def task(fn: Callable[P, R], *, name: str | None = None, **options: Any) -> Task[P, R]: ...


@overload
def task(
    fn: None = None, *, name: str | None = None, **options: Any
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(
    fn: Callable[P, R] | None = None, *, name: str | None = None, **options: Any
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Register a function as a job: ``@task`` or ``@task(queue="emails", max_attempts=5)``."""

    def wrap(f: Callable[P, R]) -> Task[P, R]:
        check_options(options, f"@task on {f.__qualname__}")
        t = Task(f, name or f"{f.__module__}.{f.__qualname__}", {**options})
        register(t)
        return t

    return wrap(fn) if fn is not None else wrap


# -- class-based --------------------------------------------------------------------------------

class JobClass(Runnable):
    """Registry entry for a Job subclass."""

    def __init__(self, cls: type[Job]) -> None:
        self.cls = cls
        self.name = cls.job_name()
        self.defaults = {k: getattr(cls, k) for k in OPTION_DEFAULTS if hasattr(cls, k)}

    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.cls.handle)

    def build(self, body: dict[str, Any], ctx: JobContext | None) -> Job:
        job = self.cls.__new__(self.cls)
        job.data = body.get("data", {})
        job.options = {}
        job.context = ctx
        return job

    def run(self, body: dict[str, Any], ctx: JobContext) -> Any:
        return self.build(body, ctx).handle()

    def on_failure(self, body: dict[str, Any], exc: BaseException) -> None:
        self.build(body, None).failed(exc)


class Job:
    """Base class for class-based jobs (the original's ``AbstractJob``).

    Subclasses implement ``handle()`` (``def`` or ``async def``) and may set class defaults:
    ``queue``, ``priority``, ``max_attempts``, ``timeout``, ``tags``, ``retry_backoff``,
    ``retry_backoff_max``, ``retry_jitter``. ``data`` must be JSON-serializable.
    """

    #: Registered name; defaults to ``module.QualName``.
    name: str | None = None
    data: Any
    options: dict[str, Any]
    context: JobContext | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_options({k: v for k, v in vars(cls).items() if k in OPTION_DEFAULTS}, cls.__name__)
        register(JobClass(cls))

    @classmethod
    def job_name(cls) -> str:
        return cls.__dict__.get("name") or f"{cls.__module__}.{cls.__qualname__}"

    def __init__(
        self,
        data: Any = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        tags: Sequence[str] | None = None,
        delay: float | timedelta | None = None,
        eta: datetime | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        depends_on: Sequence[str] | None = None,
        batch_id: str | None = None,
    ) -> None:
        self.data = {} if data is None else data
        given = {"queue": queue, "priority": priority, "tags": tags, "delay": delay, "eta": eta,
                 "max_attempts": max_attempts, "timeout": timeout,
                 "idempotency_key": idempotency_key, "depends_on": depends_on,
                 "batch_id": batch_id}
        self.options = {k: v for k, v in given.items() if v is not None}
        self.context = None

    def handle(self) -> Any | Awaitable[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement handle() (abstract)")

    def failed(self, exc: BaseException) -> None:
        """Called once when the job lands in the dead letter queue; override to react."""

    def dispatch(self, manager: Enqueuer | None = None) -> JobHandle:
        """Enqueue this job (on the default manager unless one is given)."""
        return (manager or default_client()).push(self)

    def dispatch_sync(self, manager: Enqueuer | None = None) -> Any:
        """Run this job now in this process, recorded like any other; return its result."""
        return (manager or default_client()).run_now(self)

    def to_call(self) -> Call:
        entry = REGISTRY[type(self).job_name()]
        return Call(entry.name, {"data": self.data}, {**entry.defaults, **self.options})
