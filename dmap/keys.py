"""Every Redis key name and hash field dmap's run store uses, in one place.

This module owns the key layout of :class:`~dmap.store.redis.RedisRunStore` (and of the Lua scripts
in ``dmap/lua/``, whose headers repeat it). It does not talk to Redis. All keys of one Map Run are
``<prefix>:{<run>}:<suffix>``: the ``{run}`` hash tag puts them in one Redis Cluster slot, so the
multi-key Lua scripts run on a cluster too.

Key layout of one run (KEYS order of every script)::

    1  run    HASH    config, abort flag, final and declared totals, cursor, counters (fields below)
    2  st     STRING  BITFIELD u4 per child: 0 pending 1 running 2 succeeded 3 failed 4 timed out 5 aborted
    3  lease  ZSET    child -> lease expiry (ms, Redis TIME); at most one lease per child
    4  meta   HASH    child -> "first:items:attempt:started_ms:token:worker" (in-flight and unsuccessful children)
    5  input  HASH    child -> input JSON text (deleted when the child succeeds)
    6  redo   LIST    children whose lease expired or that were redriven, waiting for a new grant
    7  wake   LIST    wake tokens for the coordinator's BLPOP ("1", "ABORT"); a few entries at most
    8  res    HASH    child -> terminal record JSON, until taken by take_results
    9  fail   HASH    child -> "<error>\\n<record JSON>" for failed, timed-out and aborted children
    10 fset   ZSET    child -> child: the failed children in child order
    11 ferr   ZSET    "<error>\\n<child as %012d>" (score 0): the failures by error name (ZRANGEBYLEX)
    12 act    HASH    activity: "t0" first completion (epoch s), "d<s>"/"f<s>" items done/failed in the time
                      bucket starting at second <s>, "h<b>" children whose run time fell in histogram
                      bucket <b> (rules in dmap/store/activity.py)
"""

from __future__ import annotations

DEFAULT_PREFIX = "dmap"
"""The default prefix of every run-store key."""

RUN_KEY_SUFFIXES: tuple[str, ...] = (
    "run",
    "st",
    "lease",
    "meta",
    "input",
    "redo",
    "wake",
    "res",
    "fail",
    "fset",
    "ferr",
    "act",
)
"""The suffixes of one run's keys, in the KEYS order every Lua script expects."""

WAKE_INDEX = RUN_KEY_SUFFIXES.index("wake")
"""Where the wake list sits in :func:`run_keys` (the key ``wait`` blocks on)."""

# Fields of the ``run`` hash. Counters are per status code: "i<code>" counts items, "e<code>"
# counts children (executions), e.g. "i1" = items running, "e3" = children failed.
F_MAX_CONCURRENCY = "mc"
F_TOLERATED_COUNT = "tc"
F_TOLERATED_PERCENTAGE = "tp"
F_MAX_ATTEMPTS = "ma"
F_ABORT = "abort"
F_TOTAL_ITEMS = "it"
F_TOTAL_CHILDREN = "et"
F_DECLARED_ITEMS = "dt"
F_DECLARED_CHILDREN = "dc"
F_CURSOR_READER = "cr"  # the reader position after the last child granted (JSON text) or an item index
F_CURSOR_CHILD = "cc"
F_CURSOR_ITEM = "ci"
F_WRITTEN_ITEMS = "iw"
F_WRITTEN_CHILDREN = "ew"
F_RECLAIMED = "rec"
F_DUPLICATES = "dup"

FAILURE_INDEX_WIDTH = 12
"""Digits of the zero-padded child number in ``ferr`` members (lexical order = child order)."""


def run_tag(run: str) -> str:
    """The Redis Cluster hash tag of a run: ``{<run>}``."""
    return "{" + run + "}"


def run_keys(prefix: str, run: str) -> list[str]:
    """All keys of ``run`` in the order the Lua scripts take them as KEYS.

    Args:
        prefix: The store's key prefix (``dmap`` unless configured).
        run: The Map Run id.

    Returns:
        ``<prefix>:{<run>}:<suffix>`` for every suffix of :data:`RUN_KEY_SUFFIXES`.
    """
    base = f"{prefix}:{run_tag(run)}:"
    return [base + suffix for suffix in RUN_KEY_SUFFIXES]


# The worker registry (DESIGN §11), beside the run store in the same Redis and under the same prefix.
# Each live worker owns one STRING key that expires unless its heartbeat renews it; the SET only
# indexes them (a member whose key expired is a worker that stopped beating, pruned on read).
WORKERS_SUFFIX = "workers"
WORKER_SUFFIX = "worker"


def workers_key(prefix: str) -> str:
    """The SET of advertised worker ids: ``<prefix>:workers``."""
    return f"{prefix}:{WORKERS_SUFFIX}"


def worker_key(prefix: str, worker_id: str) -> str:
    """The STRING (JSON record, TTL renewed by the worker's heartbeat) of one worker: ``<prefix>:worker:<id>``."""
    return f"{prefix}:{WORKER_SUFFIX}:{worker_id}"


# Flow control (DESIGN §13, dmap/flow/). A rate limit lives in one HASH per key, hash-tagged by the
# key so the token bucket's Lua touches one slot; a SET indexes the keys for `dmap limits list`.
# Fields of a limit hash: text (as given, "50/s"), interval (ms per token), burst, tat (the bucket's
# theoretical arrival time, ms of Redis TIME). Per Map Run: a ZSET of the children waiting for a
# token (child -> until, ms), beside the run's keys, so `waiting` counts itself down if a worker dies.
# Adaptive concurrency keeps its state in the run HASH (fields below), so acquire.lua reads the
# effective limit in the same call that grants permits.
LIMITS_SUFFIX = "limits"
LIMIT_SUFFIX = "limit"
FLOW_WAIT_SUFFIX = "flow-wait"
F_EFFECTIVE = "ec"  # the effective concurrency (absent: adaptive concurrency is off)
F_FLOOR = "ef"  # its floor
F_LAST_CUT = "ecut"  # Redis TIME (ms) of the last multiplicative decrease
F_WINDOW_BASE = "eb"  # children succeeded when the effective concurrency last changed
F_THROTTLED = "fthr"  # throttling errors seen by children (every Map Run, adaptive or not)
F_WAITED_MS = "fwms"  # milliseconds children spent waiting for rate-limit tokens
F_WAITS = "fwn"  # how many calls waited for a token
F_LATE = "fwl"  # tokens left unused: their child woke too late to call on time


def limits_key(prefix: str) -> str:
    """The SET of rate-limited keys: ``<prefix>:limits``."""
    return f"{prefix}:{LIMITS_SUFFIX}"


def limit_key(prefix: str, key: str) -> str:
    """The HASH of one rate limit and its token bucket: ``<prefix>:limit:{<key>}``."""
    return f"{prefix}:{LIMIT_SUFFIX}:" + "{" + key + "}"


def flow_wait_key(prefix: str, run: str) -> str:
    """The ZSET of a run's children waiting for a token: ``<prefix>:{<run>}:flow-wait``."""
    return f"{prefix}:{run_tag(run)}:{FLOW_WAIT_SUFFIX}"


# Task tokens (the callback pattern, dmap/callbacks.py). A distributed child's task lives beside its
# Map Run, in the run's hash slot, so the Lua scripts that park and resume the child see both; a
# top-level execution's task has a key of its own.
CALLBACK_SUFFIX = "cb"


def callback_key(prefix: str, task_id: str, run: str | None = None) -> str:
    """The HASH of one waiting task: ``<prefix>:{<run>}:cb:<id>`` (a child's) or ``<prefix>:cb:<id>``."""
    if run:
        return f"{prefix}:{run_tag(run)}:{CALLBACK_SUFFIX}:{task_id}"
    return f"{prefix}:{CALLBACK_SUFFIX}:{task_id}"


def callback_children_key(prefix: str, run: str) -> str:
    """The HASH child -> token of the last task each child of ``run`` waited on: ``<prefix>:{<run>}:cbc``."""
    return f"{prefix}:{run_tag(run)}:{CALLBACK_SUFFIX}c"


def callback_due_key(prefix: str) -> str:
    """The ZSET token -> when its TimeoutSeconds/HeartbeatSeconds run out (ms): ``<prefix>:cb:due``."""
    return f"{prefix}:{CALLBACK_SUFFIX}:due"


def callback_task_key(prefix: str, digest: str) -> str:
    """The STRING token of a top-level task by a digest of where it is: ``<prefix>:cb:task:<digest>``."""
    return f"{prefix}:{CALLBACK_SUFFIX}:task:{digest}"


def callback_watch_key(prefix: str, execution: str) -> str:
    """The STRING token a ``.sync`` parent waits on for a nested ``execution``: ``<prefix>:cb:watch:<arn>``."""
    return f"{prefix}:{CALLBACK_SUFFIX}:watch:{execution}"
