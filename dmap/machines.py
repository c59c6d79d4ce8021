"""State machines as Step Functions keeps them: a durable registry of named definitions.

``dmap serve`` (CreateStateMachine...) and nested workflows (``states:startExecution``) look state
machines up here. The registry lives beside the journal: in Redis on the celery backend (every
machine of the cluster sees it), in files under ``DMAP_HOME`` on the local backend (it survives a
restart of ``dmap serve``). Lower layers may use it; it imports nothing of the server.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .config import get_settings
from .journal import RedisJournal
from .per_backend import PerBackend


@dataclass(slots=True)
class StateMachineRecord:
    """One state machine: its ARN, name, definition text and the attributes DescribeStateMachine returns."""

    arn: str
    name: str
    definition: str
    role_arn: str
    type: str = "STANDARD"  # or "EXPRESS"
    creation_date: str = ""
    updated_date: str | None = None
    status: str = "ACTIVE"
    description: str = ""
    revision_id: str = ""
    logging_configuration: dict[str, Any] = field(
        default_factory=lambda: {"level": "OFF", "includeExecutionData": False}
    )
    tracing_configuration: dict[str, Any] = field(default_factory=lambda: {"enabled": False})
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every attribute."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StateMachineRecord:
        """The record a :meth:`to_dict` dict describes (unknown keys ignored, so old records still load)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class MachineRegistry(Protocol):
    """Where state machines are kept."""

    def put(self, record: StateMachineRecord) -> None:
        """Create or replace the state machine ``record.arn``."""

    def get(self, arn: str) -> StateMachineRecord | None:
        """The state machine with this ARN, or None."""

    def delete(self, arn: str) -> bool:
        """Delete a state machine; False if there was none."""

    def page(self, *, limit: int = 100, after: str | None = None) -> tuple[list[StateMachineRecord], str | None]:
        """State machines in ARN order, ``limit`` at a time after the ARN ``after``; the last ARN if more follow."""


class RedisMachines:
    """State machines in Redis (one hash field per machine, a sorted set of ARNs for paging)."""

    def __init__(self, journal: RedisJournal) -> None:
        self.client, self.prefix = journal.client, journal.prefix

    def _key(self, kind: str) -> str:
        return f"{self.prefix}:sm:{kind}"

    def put(self, record: StateMachineRecord) -> None:
        """Create or replace a state machine."""
        pipe = self.client.pipeline()
        pipe.hset(self._key("h"), record.arn, json.dumps(record.to_dict()))
        pipe.zadd(self._key("z"), {record.arn: 0})  # equal scores: ZRANGEBYLEX pages in ARN order
        pipe.execute()

    def get(self, arn: str) -> StateMachineRecord | None:
        """A state machine by ARN."""
        text = self.client.hget(self._key("h"), arn)
        return StateMachineRecord.from_dict(json.loads(text)) if text else None

    def delete(self, arn: str) -> bool:
        """Delete a state machine."""
        pipe = self.client.pipeline()
        pipe.hdel(self._key("h"), arn)
        pipe.zrem(self._key("z"), arn)
        removed, _ = pipe.execute()
        return bool(removed)

    def page(self, *, limit: int = 100, after: str | None = None) -> tuple[list[StateMachineRecord], str | None]:
        """One page of state machines in ARN order."""
        low = f"({after}" if after else "-"
        found = self.client.zrangebylex(self._key("z"), low, "+", 0, limit + 1)
        arns = [a.decode() if isinstance(a, bytes) else str(a) for a in found]
        more = len(arns) > limit
        arns = arns[:limit]
        texts = self.client.hmget(self._key("h"), arns) if arns else []
        records = [StateMachineRecord.from_dict(json.loads(t)) for t in texts if t]
        return records, (arns[-1] if more and arns else None)


class FileMachines:
    """State machines as JSON files under a folder (the local backend: ``$DMAP_HOME/state-machines``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()

    def _path(self, arn: str) -> Path:
        # An ARN is made of [A-Za-z0-9:_-] and the name rule's characters; ':' is kept out of file names.
        return self.folder / (arn.replace(":", "~").replace("/", "%") + ".json")

    def put(self, record: StateMachineRecord) -> None:
        """Create or replace a state machine (written to a temporary file, then renamed: never half a file)."""
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(handle, "w") as out:
                json.dump(record.to_dict(), out)
            os.replace(temporary, self._path(record.arn))

    def get(self, arn: str) -> StateMachineRecord | None:
        """A state machine by ARN."""
        return self.get_file(self._path(arn))

    def delete(self, arn: str) -> bool:
        """Delete a state machine."""
        with self._lock:
            try:
                self._path(arn).unlink()
            except FileNotFoundError:
                return False
            return True

    def page(self, *, limit: int = 100, after: str | None = None) -> tuple[list[StateMachineRecord], str | None]:
        """One page of state machines in ARN order (a folder of a few thousand files is read name by name)."""
        if not self.folder.is_dir():
            return [], None
        records = sorted(
            (r for r in (self.get_file(p) for p in self.folder.glob("*.json")) if r is not None), key=lambda r: r.arn
        )
        records = [r for r in records if after is None or r.arn > after]
        more = len(records) > limit
        records = records[:limit]
        return records, (records[-1].arn if more and records else None)

    def get_file(self, path: Path) -> StateMachineRecord | None:
        """The record in one file, or None if it vanished meanwhile."""
        try:
            return StateMachineRecord.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            return None


def home(engine: Any = None) -> Path:
    """``DMAP_HOME`` (default ``~/.dmap``): where the local backend keeps what must survive a restart."""
    settings = getattr(engine, "settings", None) or get_settings()  # reads DMAP_HOME
    return Path(settings.home or Path.home() / ".dmap")


def _registry_of(engine: Any) -> MachineRegistry:
    journal = getattr(engine, "journal", None)
    if isinstance(journal, RedisJournal):
        return RedisMachines(journal)
    return FileMachines(home(engine) / "state-machines")


machines: PerBackend[MachineRegistry] = PerBackend(_registry_of)
"""The state machine registry of a backend: Redis when its journal is in Redis, else files under DMAP_HOME."""
