"""``dmap plan``: what a run would be before it runs (DESIGN §13).

Streams the first DISTRIBUTED Map's item source once (the readers and the batcher the coordinator
uses; one child in memory at a time plus the sample), counts items, children (batches) and bytes,
prices the children on AWS (:mod:`dmap.flow.cost`) and, with ``sample``, runs that many children
drawn at random (reservoir sampling) with the interpreter the local backend's workers use, to
measure latency, failures and state transitions. Nothing beyond the sample runs.

Assumptions, printed with the figures: the Map receives the execution input (states before it are
not run); without a sample, a Standard child's transitions are the states on the longest path
through its ItemProcessor (retries not counted, an inline Map counted once); the projected duration
is ``ceil(children / MaxConcurrency) x`` the sample's mean child latency (no dispatch overhead, the
called services as fast as during the sample).
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import batching, sources
from ..asl import distributed_maps
from ..asl.model import Branch, ChoiceState, MapState, ParallelState, State
from ..config import get_settings
from ..errors import ConfigurationError
from ..interpreter import ExecutionInfo, Runtime, dataflow, execute, jsonata_flow, mapfields
from ..interpreter.context import iso_now
from ..store import MAX_PERMITS
from .cost import ExpressCost, StandardCost, express_cost, express_memory_mb, standard_cost

DEFAULT_EXPRESS_SECONDS = 1.0


@dataclass(slots=True)
class SampleStats:
    """What the sampled children did."""

    children: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    transitions: list[int] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def mean_latency(self) -> float:
        """Mean seconds per child."""
        return statistics.fmean(self.latencies) if self.latencies else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        ordered = sorted(self.latencies)

        def pick(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

        return {
            "children": self.children,
            "failed": self.failed,
            "failureRate": self.failed / self.children if self.children else 0.0,
            "latencySeconds": {"mean": self.mean_latency, "p50": pick(0.5), "p95": pick(0.95), "max": pick(1.0)},
            "transitionsPerChild": statistics.fmean(self.transitions) if self.transitions else 0.0,
            "errors": dict(self.errors),
        }


def _camel(fields: dict[str, Any]) -> dict[str, Any]:
    """Keys as the JSON output spells them all: ``gb_seconds`` -> ``gbSeconds``, ``memory_mb`` -> ``memoryMB``."""
    out = {}
    for name, value in fields.items():
        head, *rest = name.split("_")
        out[head + "".join(part.upper() if part == "mb" else part.capitalize() for part in rest)] = value
    return out


@dataclass(slots=True)
class Plan:
    """The result of :func:`plan`: counts, AWS costs, and the sample's projection."""

    state_name: str
    execution_type: str
    max_concurrency: int
    items: int
    children: int
    bytes: int
    longest_path: int
    transitions_source: str
    standard: StandardCost
    express: ExpressCost
    express_assumption: str
    sample: SampleStats | None = None
    projected_seconds: float | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """``dmap plan --output json``."""
        from dataclasses import asdict

        return {
            "mapState": self.state_name,
            "executionType": self.execution_type,
            "maxConcurrency": self.max_concurrency,
            "items": self.items,
            "children": self.children,
            "bytes": self.bytes,
            "longestPathStates": self.longest_path,
            "transitionsCountedFrom": self.transitions_source,
            "standard": _camel(asdict(self.standard)),
            "express": {**_camel(asdict(self.express)), "assumption": self.express_assumption},
            "sample": self.sample.as_dict() if self.sample is not None else None,
            "projectedSeconds": self.projected_seconds,
            "planSeconds": self.seconds,
        }

    def lines(self) -> list[str]:
        """The human-readable report."""
        s, e = self.standard, self.express
        out = [
            f"Map state {self.state_name!r} ({self.execution_type} children, MaxConcurrency {self.max_concurrency})",
            f"items {self.items:,}   children {self.children:,}   child input bytes {self.bytes:,}",
            f"AWS Standard children: {s.transitions:,.0f} state transitions ({s.transitions_per_child:g} per child, "
            f"counted from {self.transitions_source}) x $0.000025 = ${s.dollars:,.2f}",
            f"AWS Express children: {e.children:,} requests x $1.00/M = ${e.request_dollars:,.4f}; "
            f"{e.gb_seconds:,.1f} GB-s x $0.0000166667 = ${e.duration_dollars:,.4f}; total ${e.dollars:,.4f}",
            f"  Express assumptions: {self.express_assumption}",
        ]
        if self.sample is not None:
            d = self.sample.as_dict()
            lat = d["latencySeconds"]
            out.append(
                f"sample of {self.sample.children} children (local backend): failure rate {d['failureRate']:.1%}, "
                f"latency mean {lat['mean'] * 1000:.1f} ms p50 {lat['p50'] * 1000:.1f} ms "
                f"p95 {lat['p95'] * 1000:.1f} ms"
            )
            if d["errors"]:  # what failed is the finding: say which errors, most frequent first
                ranked = sorted(d["errors"].items(), key=lambda pair: (-pair[1], pair[0]))
                out.append("  sample errors: " + ", ".join(f"{name} x{count}" for name, count in ranked))
            if self.projected_seconds is not None:
                out.append(
                    f"projected duration at MaxConcurrency {self.max_concurrency}: {self.projected_seconds:,.1f} s "
                    "(children / MaxConcurrency x mean latency; no dispatch overhead counted)"
                )
        out.append(f"(planned in {self.seconds:.2f} s; the Map is assumed to receive the execution input)")
        return out


def plan(
    definition: Any,
    manifest: str | Path | None = None,
    *,
    input: Any = None,
    sample: int = 0,
    seed: int | None = None,
    express_memory_mb: int | None = None,
    express_seconds: float | None = None,
) -> Plan:
    """Count, price and (with ``sample``) time the first DISTRIBUTED Map of ``definition`` without running it.

    Args:
        definition: A dict, JSON text or a definition file.
        manifest: The Map's item source, as for :func:`dmap.run`.
        input: The execution input (the Map is assumed to receive it).
        sample: Children to run, drawn at random from the whole source (reservoir sampling).
        seed: Seed of the draw (reproducible samples).
        express_memory_mb: Billed memory per Express child (default: AWS's estimate in 64-MB chunks).
        express_seconds: Seconds per Express child (default: the sample's mean, else 1 s).

    Raises:
        ConfigurationError: No DISTRIBUTED Map in the definition.
        DefinitionError: An invalid definition.
    """
    from ..api import prepare

    started = time.monotonic()
    machine = prepare(definition) if sample else _load(definition)
    maps = distributed_maps(machine)
    if not maps:
        raise ConfigurationError("dmap plan needs a definition with a DISTRIBUTED Map state")
    name, state = maps[0]
    data = {} if input is None else input
    language = machine.query_language or "JSONPath"
    context = {"Execution": {"Input": data, "Name": "plan"}, "State": {"Name": name}}
    fields = jsonata_flow if language == "JSONata" else mapfields
    concurrency = fields.max_concurrency(state, data, context, {})
    batch = batching.resolve(state, data, context, {}, get_settings().payload_limit)
    rng = random.Random(seed)
    items = children = size = 0
    reservoir: list[str] = []
    for child in _children(state, data, context, language, manifest, batch):
        items += child.items
        size += len(child.text.encode("utf-8"))
        children += 1
        if len(reservoir) < sample:
            reservoir.append(child.text)
        elif sample:
            j = rng.randrange(children)
            if j < sample:
                reservoir[j] = child.text
    processor = state.processor
    longest = longest_path(processor)
    stats = _run_sample(processor, reservoir, language, concurrency) if reservoir else None
    per_child = statistics.fmean(stats.transitions) if stats and stats.transitions else float(longest)
    source = (
        "the sample's paths" if stats and stats.transitions else "the longest path (no sample; retries not counted)"
    )
    definition_bytes = len(dataflow.compact(processor.model_dump(by_alias=True, exclude_unset=True, mode="json")))
    memory = express_memory_mb or express_memory_mb_default(definition_bytes, size / children if children else 0)
    seconds = (
        express_seconds if express_seconds is not None else (stats.mean_latency if stats else DEFAULT_EXPRESS_SECONDS)
    )
    how = "given" if express_seconds is not None else ("the sample's mean" if stats else "assumed, no sample")
    memory_how = "given" if express_memory_mb else "AWS estimate: 50 MB + definition + input"
    assumption = (
        f"{memory} MB billed per child ({memory_how}), "
        f"{seconds:.3f} s per child ({how}), rounded up to 100 ms; first price tier"
    )
    permits = concurrency if concurrency > 0 else MAX_PERMITS
    projected = math.ceil(children / permits) * stats.mean_latency if stats else None
    kind = (processor.processor_config.execution_type if processor.processor_config else None) or "STANDARD"
    return Plan(
        state_name=name,
        execution_type=kind,
        max_concurrency=concurrency,
        items=items,
        children=children,
        bytes=size,
        longest_path=longest,
        transitions_source=source,
        standard=standard_cost(children, per_child),
        express=express_cost(children, memory, seconds),
        express_assumption=assumption,
        sample=stats,
        projected_seconds=projected,
        seconds=time.monotonic() - started,
    )


express_memory_mb_default = express_memory_mb


def _load(definition: Any) -> Any:
    from ..asl import load

    return load(definition)


def _children(
    state: MapState, data: Any, context: dict[str, Any], language: str, manifest: Any, batch: Any
) -> Iterator[batching.ChildInput]:
    """The Map's children as the coordinator builds them (reader, ItemSelector, ItemBatcher), streamed."""
    items = sources.open_source(state, data, context, {}, manifest=manifest, start=0, language=language)

    def selected() -> Iterator[tuple[int, str]]:
        for item in items:
            value = item.value
            if language == "JSONata":
                value = jsonata_flow.select_item(state, data, context, {}, item.index, value, item.source, item.key)
            elif state.selector is not None:
                entry: dict[str, Any] = {"Index": item.index, "Value": value, "Source": item.source}
                if item.key is not None:
                    entry["Key"] = item.key
                value = dataflow.template(state.selector, data, {**context, "Map": {"Item": entry}}, {})
            yield item.index, dataflow.compact(value)

    return batching.batches(selected(), batch) if batch else batching.single(selected())


def longest_path(branch: Branch) -> int:
    """States on the longest path from StartAt to an end (each state once; Parallel branches summed)."""

    def walk(name: str, seen: frozenset[str]) -> int:
        if name in seen or name not in branch.states:
            return 0
        state: State = branch.states[name]
        here = 1
        if isinstance(state, ParallelState):
            here += sum(longest_path(b) for b in state.branches)
        elif isinstance(state, MapState) and not state.distributed:
            here += longest_path(state.processor)
        targets = _next_states(state)
        seen = seen | {name}
        return here + max((walk(t, seen) for t in targets), default=0)

    return walk(branch.start_at, frozenset())


def _next_states(state: State) -> list[str]:
    targets: list[str] = []
    if isinstance(state, ChoiceState):
        targets += [str(c.next) for c in state.choices if getattr(c, "next", None)]
        if state.default:
            targets.append(state.default)
    nxt = getattr(state, "next", None)
    if nxt:
        targets.append(nxt)
    targets += [str(c.next) for c in getattr(state, "catch", None) or [] if c.next]
    return targets


def _run_sample(processor: Branch, inputs: list[str], language: str, concurrency: int) -> SampleStats:
    """Run the sampled children on threads (the local backend's interpreter) and measure them."""
    stats = SampleStats()
    lock = threading.Lock()

    def one(text: str) -> None:
        counter = itertools.count()
        runtime = Runtime(should_abort=lambda: next(counter) < 0, flow=_Retries())
        value = dataflow.parse(text)
        info = ExecutionInfo(name="plan-sample", state_machine_name="plan", input=value, start_time=iso_now())
        began = time.perf_counter()
        result = execute(processor, value, runtime=runtime, info=info, language=language)
        took = time.perf_counter() - began
        assert isinstance(runtime.flow, _Retries)
        with lock:
            stats.children += 1
            stats.latencies.append(took)
            stats.transitions.append(next(counter) + runtime.flow.retries)
            if result.status != "SUCCEEDED":
                stats.failed += 1
                key = result.error or result.status
                stats.errors[key] = stats.errors.get(key, 0) + 1

    threads = max(1, min(len(inputs), concurrency if concurrency > 0 else 64, 64))
    with ThreadPoolExecutor(threads, thread_name_prefix="dmap-plan") as pool:
        list(pool.map(one, inputs))
    return stats


class _Retries:
    """``Runtime.flow`` of a sampled child: counts retries (AWS bills each as a transition)."""

    def __init__(self) -> None:
        self.retries = 0

    def before_call(self, resource: str, function: str | None, payload: Any) -> None:
        """No rate limits while planning."""

    def on_error(self, error: str) -> None:
        """Nothing to report."""

    def extra_backoff(self, error: str, delay: float, rng: Any = None) -> float:
        """Called once per retry: count it."""
        self.retries += 1
        return 0.0
