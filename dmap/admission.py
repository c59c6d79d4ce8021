"""What is checked before an execution is accepted on the celery backend (DESIGN §10 detach, §11).

* **The item source** of a detached execution (:func:`check_source`): the cluster will read it
  later, from another machine and another folder, so a local manifest must exist now, be readable
  and is kept as an absolute path; an ``s3://bucket/key`` object must exist (HeadObject) and an
  ``s3://bucket/prefix/`` must be listable. A failure raises :class:`~dmap.errors.SourceNotReadable`
  and nothing is recorded.
* **Task resources against the live workers** (:func:`resource_check`): a handler registered on a
  worker of the queue counts as registered, so a machine without the handler code can submit. States
  that run in this process (outside every DISTRIBUTED Map, when not detached) still need it here.
* **Warnings** (logger ``dmap.admission``; the CLI prints them on stderr): no live worker on the
  queue, workers that disagree on a handler's code, workers whose code differs from this machine's,
  workers missing a handler the definition uses.

It reads the worker registry (:mod:`dmap.store.workers`) and never writes anything.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import SourceNotReadable, StorageError
from .interpreter.tasks import Registry, check_resources, registry
from .store.workers import WorkerInfo, code_hash, list_workers

logger = logging.getLogger(__name__)

Check = Callable[[Mapping[str, Any]], list[Any]]


def check_source(manifest: str | Path | None, engine: Any) -> str | None:
    """Check that the cluster will be able to read a detached execution's item source; return it normalised.

    Args:
        manifest: ``s3://bucket/key``, ``s3://bucket/prefix/``, a local file path, or None (no override).
        engine: The backend whose storage (``DMAP_S3_ROOT`` or S3) ``s3://`` sources are read from.

    Returns:
        The source to record: S3 URIs as given, a local path made absolute, or None.

    Raises:
        SourceNotReadable: The object or file does not exist or cannot be read, or the prefix cannot be listed.
        ConfigurationError: A URI with another scheme than ``s3://``.
    """
    if manifest is None:
        return None
    text = str(manifest)
    if "://" in text:
        _check_s3(text, engine)
        return text
    path = Path(text).expanduser().absolute()
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise SourceNotReadable(text, f"{path} {what}", code="NoSuchKey")
    if not os.access(path, os.R_OK):
        raise SourceNotReadable(text, f"{path} is not readable by this user", code="AccessDenied")
    logger.warning(
        "the manifest is a local file: the workers read %s themselves, so they must see the same path "
        "(shared storage), or use s3://",
        path,
    )
    return str(path)


def _check_s3(uri: str, engine: Any) -> None:
    from .storage import parse_s3_uri

    bucket, key = parse_s3_uri(uri)
    storage = engine.storage()
    try:
        if key == "" or key.endswith("/"):
            next(iter(storage.list_objects(bucket, key)), None)  # one page proves the listing works
        elif hasattr(storage, "client"):  # S3: HeadObject, no body
            from .storage.s3 import _guard

            _guard(lambda: storage.client.head_object(Bucket=bucket, Key=key), bucket, key)
        else:
            storage.open_read(bucket, key).close()
    except StorageError as exc:
        raise SourceNotReadable(uri, str(exc), code=exc.code) from None


def resource_check(engine: Any = None, *, detached: bool = False) -> Check:
    """The Task-resource check of a definition about to run on ``engine``; on celery it also warns.

    Args:
        engine: The backend; anything but a celery backend checks against this process's handlers only.
        detached: The whole execution runs on a worker (``--detach``), not only the DISTRIBUTED Maps.

    Returns:
        A function of the raw definition returning its UNRESOLVED_RESOURCE diagnostics.
    """
    from .backends.celery import CeleryBackend

    if not isinstance(engine, CeleryBackend):
        return lambda data: check_resources(data, registry)
    queue = engine.settings.queue
    workers = list_workers(backend=engine, queue=queue)

    def check(data: Mapping[str, Any]) -> list[Any]:
        cluster = ClusterRegistry(registry, workers)
        found = check_resources(data, cluster)
        if not detached:
            found += _needed_here(data, cluster, {d.location for d in found})
        for message in cluster_warnings(data, workers, queue, detached=detached):
            logger.warning("%s", message)
        return found

    return check


class ClusterRegistry(Registry):
    """This process's handlers plus the names the live workers registered (for checking, never for calling)."""

    def __init__(self, local: Registry, workers: list[WorkerInfo]) -> None:
        super().__init__()
        self.local = local
        self.remote = {name for w in workers for name in w.handlers}
        for name in local.names():
            found = local.lookup(name)
            if found is not None:
                self.register(name, found[1])
        for name in self.remote - set(local.names()):  # a name here keeps its local handler (and warns nobody)
            self.register(name, _on_workers)

    def names(self) -> list[str]:
        """Every known name, each marked with where it is registered (used in error messages)."""
        here = set(self.local.names())

        def where(name: str) -> str:
            if name in here and name in self.remote:
                return f"{name} (here and on workers)"
            return f"{name} (on workers)" if name in self.remote else f"{name} (here)"

        return [where(name) for name in super().names()]


def _on_workers(event: Any, context: Any) -> Any:
    raise RuntimeError("a handler registered only on the workers cannot run in this process")


def _needed_here(data: Mapping[str, Any], cluster: ClusterRegistry, reported: set[Any]) -> list[Any]:
    """Diagnostics for states that run in this process with a handler only the workers have."""
    from .asl.diagnostics import Diagnostic, Severity, pointer

    found = []
    for where, name, state, distributed in _states(data, (), False):
        if state.get("Type") != "Task":
            continue
        location = pointer(*where, "Resource")
        name_here = _handler_name(state, cluster.local)
        if distributed or location in reported or name_here is not None:
            continue
        on_workers = _handler_name(state, cluster)
        if on_workers is None:
            continue  # unresolved anywhere: already reported by check_resources
        message = (
            f"state '{name}' runs in this process (outside every DISTRIBUTED Map) but its handler "
            f"{on_workers!r} is registered only on the workers; import its module here (--import) "
            "or submit with --detach so a worker runs the whole execution"
        )
        found.append(Diagnostic(Severity.ERROR, "UNRESOLVED_RESOURCE", message, location))
    return found


def cluster_warnings(
    data: Mapping[str, Any], workers: list[WorkerInfo], queue: str, *, detached: bool = False
) -> list[str]:
    """What a submitter should know about the workers of ``queue`` before its execution runs there.

    Args:
        data: The raw definition.
        workers: The live workers of the queue.
        queue: The queue's name (for the messages).
        detached: The whole execution runs on a worker.

    Returns:
        One message per problem; empty when the workers can run the definition as this machine would.
    """
    states = list(_states(data, (), False))
    needs_workers = detached or any(distributed for *_, distributed in states)
    tasks = [entry for entry in states if entry[2].get("Type") == "Task"]
    if not workers:
        return [f"no dmap worker is listening on queue {queue!r}; start one with: dmap worker"] if needs_workers else []
    messages = []
    if detached and sum(w.concurrency for w in workers) <= 1:
        # The coordinator of a detached execution holds a worker slot for the whole run.
        messages.append(
            f"the workers on queue {queue!r} have 1 slot in all and a detached execution's coordinator takes it: "
            "no child can run until another worker starts (use --concurrency 2 or more)"
        )
    cluster = ClusterRegistry(registry, workers)
    used = sorted({n for *_, state, d in tasks if (d or detached) and (n := _handler_name(state, cluster))})
    for name in used:
        versions: dict[str, list[str]] = {}
        for worker in workers:
            if name in worker.handlers:
                versions.setdefault(worker.handlers[name], []).append(f"{worker.host}:{worker.pid}")
        missing = [f"{w.host}:{w.pid}" for w in workers if name not in w.handlers]
        if missing and versions:
            messages.append(
                f"handler {name} is not registered on {len(missing)} of {len(workers)} workers "
                f"({', '.join(missing)}): children they take fail"
            )
        if len(versions) > 1:
            listing = "; ".join(f"{digest}: {', '.join(hosts)}" for digest, hosts in sorted(versions.items()))
            messages.append(
                f"workers disagree on handler code: {name} has {len(versions)} versions across workers ({listing})"
            )
        found = registry.lookup(name)
        if found is not None and versions:
            mine = code_hash(found[1])
            if mine not in versions:
                theirs = ", ".join(sorted(versions))
                messages.append(
                    f"the workers run different code for handler {name} than this machine: restart them "
                    f"(this machine {mine}, workers {theirs})"
                )
    return messages


def _handler_name(state: Mapping[str, Any], handlers: Registry) -> str | None:
    """The registered name a Task state's resource resolves to in ``handlers`` (None: unresolved or dynamic)."""
    resource = state.get("Resource")
    if not isinstance(resource, str):
        return None
    parameters = state.get("Parameters") or state.get("Arguments")
    resolved = handlers.resolve(resource, parameters)
    return resolved.name if resolved is not None and resolved.name else None


def _states(
    node: Any, prefix: tuple[str | int, ...], distributed: bool
) -> Iterator[tuple[tuple[str | int, ...], str, Mapping[str, Any], bool]]:
    """Every state of a raw definition, nested ones included, with its JSON-pointer parts and whether a worker
    runs it (it sits in the ItemProcessor of a DISTRIBUTED Map, at any depth)."""
    states = node.get("States") if isinstance(node, Mapping) else None
    if not isinstance(states, Mapping):
        return
    for name, state in states.items():
        if not isinstance(state, Mapping):
            continue
        where = (*prefix, "States", name)
        yield where, str(name), state, distributed
        branches = state.get("Branches") if state.get("Type") == "Parallel" else None
        for i, branch in enumerate(branches if isinstance(branches, list) else []):
            yield from _states(branch, (*where, "Branches", i), distributed)
        if state.get("Type") == "Map":
            for key in ("ItemProcessor", "Iterator"):
                processor = state.get(key)
                config = processor.get("ProcessorConfig") if isinstance(processor, Mapping) else None
                mode = config.get("Mode") if isinstance(config, Mapping) else None
                yield from _states(processor, (*where, key), distributed or mode == "DISTRIBUTED")
