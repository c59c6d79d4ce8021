"""Execution identity: AWS's StartExecution rule for names, and who runs an execution right now.

Owns two things:

* the **name rule** (DESIGN §10): within one state machine, a name that is free starts a new
  execution; a RUNNING execution with the same input and item source is *attached to* (the
  crash-resume of §6: no new execution, no second coordinator); anything else — a closed
  execution, or a RUNNING one with another input or source — raises
  :class:`~dmap.errors.ExecutionAlreadyExists`, and the stored record is never touched;
* the **execution claim**: a mark that a live process runs an execution's coordinator. On the
  celery backend it is a Redis key with a short TTL that the running process renews (plus the
  detached lease of :mod:`dmap.detach` while a detached execution waits in the queue); on the
  local backend a set in this process. A second caller of the same name waits while the claim is
  alive and takes the execution over (resumes it) only once its process died: at once when that
  process ran on this machine and its pid is gone, else when the claim expires (:data:`CLAIM_MS`).

It does not own the records (:mod:`dmap.journal`) nor the detached leases (:mod:`dmap.detach`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

import redis

from .errors import ExecutionAlreadyExists, HandedOver, InvalidName
from .interpreter.context import execution_arn
from .journal import RedisJournal
from .per_backend import PerBackend
from .records import Execution, ExecutionStatus, new_execution

logger = logging.getLogger(__name__)


def _lua(name: str) -> str:
    """The text of ``dmap/lua/<name>.lua`` (the claim scripts need nothing from ``_lib.lua``)."""
    return (resources.files("dmap") / "lua" / f"{name}.lua").read_text("utf-8")


CLAIM_MS = 15_000
"""How long a claim lives without renewal: a coordinator killed with SIGKILL is taken over after this."""


# -- the item source, as the name rule compares it -----------------------------------------------


def source_of(manifest: Any) -> str | None:
    """How an item source compares for the name rule (None: no ``manifest``, items from the input).

    A local path compares resolved (``str(Path(x).resolve())``), an ``s3://`` URI as written, a
    list or tuple by a digest of its items as JSON. Any other iterable (a generator...) cannot be
    compared without consuming it, so it never matches: re-using the name of a RUNNING execution
    with one raises :class:`~dmap.errors.ExecutionAlreadyExists`.
    """
    if manifest is None:
        return None
    if isinstance(manifest, str | Path):
        text = str(manifest)
        return text if "://" in text else str(Path(text).resolve())
    if isinstance(manifest, list | tuple):
        digest = hashlib.sha256()
        for item in manifest:
            digest.update(_canonical(item).encode())
            digest.update(b"\n")
        return f"items:{len(manifest)}:{digest.hexdigest()}"
    return f"iterator:{uuid.uuid4().hex}"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


# -- where claims and sources live ---------------------------------------------------------------


class _Claims:
    """Claims and recorded sources of one backend (the base is the local backend's: this process only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: set[str] = set()
        self._sources: dict[str, str | None] = {}
        self._lost: set[str] = set()

    def claim(self, arn: str) -> bool:
        """Take the claim if nobody holds it; True if taken."""
        with self._lock:
            if arn in self._held:
                return False
            self._held.add(arn)
            return True

    def hold(self, arn: str) -> None:
        """Hold the claim while this process runs the execution (taken if need be) until :meth:`release`."""
        with self._lock:
            self._held.add(arn)
            self._lost.discard(arn)

    def release(self, arn: str) -> None:
        """Drop the claim (only this process's own; a no-op if not held)."""
        with self._lock:
            self._held.discard(arn)
            self._lost.discard(arn)

    def alive(self, arn: str) -> bool:
        """True while some live process runs (or is about to run) the execution."""
        with self._lock:
            return arn in self._held

    def lost(self, arn: str) -> bool:
        """True once this process learned that another one took over the execution it runs."""
        with self._lock:
            return arn in self._lost

    def mark_lost(self, arn: str) -> None:
        """Note that another process took the execution over: its coordinator here stops at its next check."""
        with self._lock:
            self._lost.add(arn)

    def remember(self, arn: str, source: str | None) -> None:
        """Record the item source a new execution starts with."""
        with self._lock:
            self._sources[arn] = source

    def source(self, arn: str) -> tuple[bool, str | None]:
        """``(known, source)`` recorded for the execution."""
        with self._lock:
            return (arn in self._sources, self._sources.get(arn))


class _RedisClaims(_Claims):
    """Claims in Redis, seen by every machine of the cluster (the celery backend)."""

    def __init__(self, journal: RedisJournal) -> None:
        super().__init__()
        self.client, self.prefix, self.retention = journal.client, journal.prefix, journal.retention
        self._claim = self.client.register_script(_lua("claim"))
        self._renew = self.client.register_script(_lua("claim_renew"))
        self._release = self.client.register_script(_lua("claim_release"))
        self._tokens: dict[str, tuple[str, threading.Event]] = {}

    def _key(self, arn: str) -> str:
        return f"{self.prefix}:j:claim:{arn}"

    def _detached(self) -> str:
        return f"{self.prefix}:j:detached"  # dmap.detach's lease ZSET: a queued detached execution is alive

    def claim(self, arn: str) -> bool:
        """Take the claim if no live process holds it and no detached task carries the execution.

        A claim whose process is gone — same host, its pid no longer exists (a SIGKILLed ``dmap run``)
        — is taken over at once; one from another machine only once it expires.
        """
        token, keys = _owner(), [self._key(arn), self._detached()]
        if not self._claim(keys=keys, args=[token, CLAIM_MS, arn, ""]):
            current = self.client.get(keys[0])
            dead = current.decode() if isinstance(current, bytes) else current
            if not dead or not _dead_here(dead) or not self._claim(keys=keys, args=[token, CLAIM_MS, arn, dead]):
                return False
            logger.info("claim of execution %s taken over from %s: that process is gone", arn, dead)
        with self._lock:
            self._tokens[arn] = (token, threading.Event())
        return True

    def hold(self, arn: str) -> None:
        """Hold the claim (taking it over if this process did not claim it first) and renew it in a thread."""
        with self._lock:
            token, stop = self._tokens.get(arn) or (_owner(), threading.Event())
            self._tokens[arn] = (token, stop)
            self._lost.discard(arn)
        try:
            self.client.set(self._key(arn), token, px=CLAIM_MS)
        except redis.RedisError:  # the run reports a lost Redis itself; the first beat sets the claim again
            logger.warning("could not set the claim of execution %s", arn, exc_info=True)
        threading.Thread(target=self._beat, args=(arn, token, stop), name="dmap-execution-claim", daemon=True).start()

    def _beat(self, arn: str, token: str, stop: threading.Event) -> None:
        while not stop.wait(CLAIM_MS / 3000):
            try:
                if not self._renew(keys=[self._key(arn)], args=[token, CLAIM_MS]):
                    logger.warning("lost the claim of execution %s (another process took it over)", arn)
                    self.mark_lost(arn)  # the coordinator here stops: two must never run one execution
                    return
            except Exception:  # a Redis hiccup: the next beat tries again, the TTL leaves room for two misses
                logger.warning("could not renew the claim of execution %s", arn, exc_info=True)

    def release(self, arn: str) -> None:
        """Stop renewing and drop the claim if this process still owns it."""
        with self._lock:
            held = self._tokens.pop(arn, None)
            self._lost.discard(arn)
        if held is not None:
            held[1].set()
            try:
                self._release(keys=[self._key(arn)], args=[held[0]])
            except redis.RedisError:  # must not mask how the run ended; the claim expires on its own
                logger.warning("could not drop the claim of execution %s", arn, exc_info=True)

    def alive(self, arn: str) -> bool:
        """True while a process renews the claim or the execution is detached (queued or running on a worker)."""
        return bool(self.client.exists(self._key(arn))) or self.client.zscore(self._detached(), arn) is not None

    def remember(self, arn: str, source: str | None) -> None:
        """Record the item source a new execution starts with (kept as long as its record)."""
        self.client.set(f"{self.prefix}:j:source:{arn}", json.dumps(source), ex=int(self.retention))

    def source(self, arn: str) -> tuple[bool, str | None]:
        """``(known, source)`` recorded for the execution."""
        text = self.client.get(f"{self.prefix}:j:source:{arn}")
        return (False, None) if text is None else (True, json.loads(text))


def _owner() -> str:
    """A claim's value: ``host:pid:token`` (host and pid let a restart on the same machine see the owner died)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"


def _dead_here(owner: str) -> bool:
    """True if ``owner`` is a process of this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, owned by another user
        return False
    return False


def _claims_of(engine: Any) -> _Claims:
    journal = getattr(engine, "journal", None)
    return _RedisClaims(journal) if isinstance(journal, RedisJournal) else _Claims()


claims: PerBackend[_Claims] = PerBackend(_claims_of)
"""The claims of a backend: in Redis when its journal is, else in this process."""


@contextmanager
def running(engine: Any, arn: str) -> Iterator[None]:
    """Hold the claim of ``arn`` while this process runs its coordinator (the backend wraps every run in it)."""
    registry = claims(engine)
    registry.hold(arn)
    try:
        yield
    finally:
        registry.release(arn)


def release(engine: Any, arn: str) -> None:
    """Drop a claim :func:`admit` took, when the execution will not run here after all."""
    claims(engine).release(arn)


def check_held(engine: Any, arn: str) -> None:
    """Raise :class:`~dmap.errors.HandedOver` once another process took over the execution this one runs.

    A coordinator that rode out a long Redis outage may find its claim expired and taken: it must
    stop, leaving the records to the new owner (two coordinators never run one execution).
    """
    if claims(engine).lost(arn):
        raise HandedOver(f"execution {arn} was taken over by another process (this one lost its claim)")


# -- the name rule -------------------------------------------------------------------------------


@dataclass(slots=True)
class Admission:
    """What :func:`admit` decided.

    Attributes:
        execution: The execution to run or follow (a new record, or the stored one — never a mix).
        owned: This caller holds the claim and must run it (``new``, or a RUNNING one nobody runs any more);
            False: a live process runs it, follow it with :func:`follow`.
        new: The execution is new: its record is not stored yet.
    """

    execution: Execution
    owned: bool
    new: bool


def admit(engine: Any, state_machine: str, name: str | None, input: Any, manifest: Any) -> Admission:
    """Apply the name rule to a start request.

    Args:
        engine: The backend whose journal holds the executions.
        state_machine: The state machine name the execution is filed under.
        name: The execution name; None generates one (always new).
        input: The execution input (None is ``{}``).
        manifest: The item source (as given to :func:`dmap.run`).

    Returns:
        An :class:`Admission`. When ``owned``, the caller holds the claim: it must run the execution
        (the backend's run holds and then drops it) or :func:`release` it.

    Raises:
        ExecutionAlreadyExists: The name belongs to a closed execution, or to a RUNNING one with
            another input or item source.
    """
    if name is not None:
        check_name(name)
    value = {} if input is None else input
    source, registry = source_of(manifest), claims(engine)
    if name is None:
        execution = new_execution(state_machine, None, value)
        registry.claim(execution.execution_arn)
        registry.remember(execution.execution_arn, source)
        return Admission(execution, owned=True, new=True)
    arn = execution_arn(state_machine, name)
    while True:
        existing = engine.journal.execution(arn)
        if existing is not None:
            _check(registry, existing, value, source)
        if registry.claim(arn):
            try:
                existing = engine.journal.execution(arn)  # again, under the claim: it may have ended meanwhile
                if existing is None:
                    registry.remember(arn, source)
                    return Admission(new_execution(state_machine, name, value), owned=True, new=True)
                _check(registry, existing, value, source)
            except BaseException:
                registry.release(arn)
                raise
            logger.warning("execution %s is RUNNING but no live process runs it any more: resuming it here", arn)
            existing.map_runs = []  # the coordinator re-attaches (and resumes) its Map Runs
            return Admission(existing, owned=True, new=False)
        if existing is not None:
            return Admission(existing, owned=False, new=False)
        time.sleep(0.02)  # claimed by a caller that is recording the new execution right now


_NOT_IN_NAMES = frozenset(' <>{}[]?*"#%\\^|~`$&,;:/')


def check_name(name: str) -> None:
    """Apply AWS's rule for execution names: 1-80 characters, none of whitespace, ``<>{}[]?*"#%\\^|~`$&,;:/``
    or control characters.

    Raises:
        InvalidName: The name breaks the rule (nothing is started).
    """
    bad = sorted({c for c in name if c in _NOT_IN_NAMES or c.isspace() or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F})
    if not 1 <= len(name) <= 80 or bad:
        why = f"{len(name)} characters (1-80 allowed)" if not 1 <= len(name) <= 80 else f"it contains {bad!r}"
        raise InvalidName(name, why)


def attached(execution: Execution) -> None:
    """Say (a warning: the caller asked to start it) that a start request attached to a RUNNING execution."""
    logger.warning(
        "execution %s is already RUNNING (started %s) with this input and item source: attached to it",
        execution.execution_arn,
        execution.start_date,
    )


def _check(registry: _Claims, existing: Execution, value: Any, source: str | None) -> None:
    """Raise ExecutionAlreadyExists unless ``existing`` is RUNNING with the same input and item source."""
    arn = existing.execution_arn
    if existing.status != ExecutionStatus.RUNNING:
        raise ExecutionAlreadyExists(arn, existing.status, "closed")
    if _canonical(existing.input) != _canonical(value):
        raise ExecutionAlreadyExists(arn, existing.status, "input")
    known, stored = registry.source(arn)
    if not known:  # recorded before sources were: compare the manifest the record keeps
        stored = source_of(existing.manifest)
    if stored != source:
        raise ExecutionAlreadyExists(arn, existing.status, "source")


def stamp(execution: Execution, origin: dict[str, str] | None) -> None:
    """Record where a new execution was started from: its state machine's role, its caller's ARN prefix."""
    for field, value in (origin or {}).items():
        setattr(execution, field, value)


def start(
    engine: Any,
    machine: Any,
    state_machine: str,
    name: str | None,
    input: Any,
    manifest: Any,
    *,
    wait: bool,
    max_concurrency: int | None,
    flow: dict[str, Any] | None = None,
    origin: dict[str, str] | None = None,
) -> Execution:
    """Start, resume or attach to an execution by the name rule, with its coordinator in this process if it runs here.

    Raises:
        ExecutionAlreadyExists: See :func:`admit`.
    """
    admission = admit(engine, state_machine, name, input, manifest)
    execution = admission.execution
    if not admission.owned:
        attached(execution)
        if wait:
            return follow(engine, machine, execution, manifest=manifest, max_concurrency=max_concurrency, wait=True)
        threading.Thread(
            target=_follow_quietly,
            args=(engine, machine, execution, manifest, max_concurrency),
            name="dmap-attached",
            daemon=True,
        ).start()
        return execution
    if admission.new:
        execution.flow = flow  # kept in the record: a resumed coordinator applies the same flow options
        stamp(execution, origin)
    try:
        result: Execution = engine.run(
            machine, execution, manifest=manifest, max_concurrency=max_concurrency, wait=wait
        )
    except BaseException:
        release(engine, execution.execution_arn)
        raise
    return result


def follow(
    engine: Any, machine: Any, execution: Execution, *, manifest: Any, max_concurrency: int | None, wait: bool
) -> Execution:
    """Keep ``execution`` up to date from the journal until it ends; take it over if its process dies.

    Another live process runs the coordinator; this one only reads. Once nobody holds the claim any
    more (that process died) and the execution is still RUNNING, this caller claims it and resumes it
    here (``wait`` decides whether in this thread or a background one).
    """
    arn, registry = execution.execution_arn, claims(engine)
    poll = 0.2 if isinstance(registry, _RedisClaims) else 0.02
    while True:
        record = engine.journal.execution(arn)
        if record is None:  # expired from the journal (retention): nothing more to learn
            return execution
        _copy(record, execution)
        if record.status != ExecutionStatus.RUNNING:
            return execution
        if registry.claim(arn):  # nobody holds it any more: the process that ran it stopped
            record = engine.journal.execution(arn)
            if record is None or record.status != ExecutionStatus.RUNNING:
                registry.release(arn)
                continue
            logger.warning("resuming execution %s here: the process that ran it stopped", arn)
            _copy(record, execution)
            execution.map_runs = []
            try:
                resumed: Execution = engine.run(
                    machine, execution, manifest=manifest, max_concurrency=max_concurrency, wait=wait
                )
            except BaseException:
                registry.release(arn)
                raise
            return resumed
        time.sleep(poll)


def _follow_quietly(engine: Any, machine: Any, execution: Execution, manifest: Any, concurrency: int | None) -> None:
    try:
        follow(engine, machine, execution, manifest=manifest, max_concurrency=concurrency, wait=False)
    except Exception:  # a background follower has nobody to raise to
        logger.error("lost track of execution %s", execution.execution_arn, exc_info=True)


def _copy(source: Execution, target: Execution) -> None:
    """Make ``target`` show ``source``; the status last, so a reader that sees it ended also sees the outcome."""
    for item in fields(Execution):
        if item.name != "status":
            setattr(target, item.name, getattr(source, item.name))
    target.status = source.status
