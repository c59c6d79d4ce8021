"""JSONata expressions (``"{% expr %}"``) as Step Functions evaluates them, over jsonata-python.

Owns: recognising an expression, compiling it once, evaluating it with ``$states`` and the
workflow variables bound, the six functions Step Functions adds (``$partition``, ``$range``,
``$hash``, ``$random``, ``$uuid``, ``$parse``; ``$eval`` is removed), the evaluation bounds
(1 second, nesting depth 100) and AWS's ``States.QueryEvaluationError`` causes, which name the
expression and the field it was written in (``Output/a/b[0]``). Results are returned as plain
JSON values (copied, never aliasing the bound data).

Does not own: which field of which state is evaluated when, or what type a field requires —
that is ``dmap.interpreter.jsonata_flow``; the ``An error occurred while executing the state``
prefix is added by the interpreter.

Thread safety: jsonata-python keeps per-evaluation scratch state on "the current instance of
this thread". Compiled expressions are shared between threads, so before every evaluation the
thread's current instance is pointed at a private scratch instance; shared compiled
expressions are then never mutated.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from jsonata import JException, Jsonata, Timebox, Utils

from ..errors import ErrorName, StatesError
from .model_base import is_jsonata

#: AWS: "A JSONata expression that takes longer than 1 second to evaluate will fail".
TIMEOUT_MS = 1000
#: AWS refuses nesting deeper than 100 (a non-tail-recursive ``$f(31)`` passes, ``$f(32)`` fails).
MAX_DEPTH = 100
#: AWS's own bound on one ``$range`` call (it answers the memory-limit refusal past it).
MAX_RANGE = 360_145
#: The algorithms ``$hash`` accepts (case-sensitive, as AWS).
HASH_ALGORITHMS = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}

_TIMEOUT = "Expression evaluation timeout: Check for infinite loop"
_STACK = "Stack overflow error: Check for non-terminating recursive function.  Consider rewriting as tail-recursive"
_MEMORY = "Expression evaluation memory limit exceeded: Check for excessive memory usage"
_LOCAL = threading.local()


def is_expression(value: Any) -> bool:
    """True for a string written ``{% expr %}`` (nothing before or after the braces)."""
    return is_jsonata(value)


def expression_text(value: str) -> str:
    """The expression inside ``{% ... %}``, trimmed, as AWS quotes it in causes."""
    return value[2:-2].strip()


def evaluate(text: str, *, states: Mapping[str, Any], variables: Mapping[str, Any], field: str = "Output") -> Any:
    """Evaluate one ``{% expr %}`` string to a JSON value.

    Args:
        text: The whole ``{% ... %}`` string.
        states: What ``$states`` holds (``input``, ``context`` and, where meaningful, ``result`` or ``errorOutput``).
        variables: The workflow variables, each bound as ``$name``.
        field: Where the expression is written (``Output/a/b[0]``, ``Items``), for causes.

    Returns:
        The value, as plain JSON (dict, list, str, int/float, bool, None for JSON null).

    Raises:
        StatesError: ``States.QueryEvaluationError`` for a syntax error, an evaluation error, a result that
            is undefined or a function, or a bound exceeded (time, depth).
    """
    expression = expression_text(text)
    try:
        compiled = _compile(expression)
        raw = _run(compiled, states, variables)
    except JException as exc:
        raise _threw(expression, field, exc) from None
    except RecursionError:
        raise _failed(expression, field, f"threw an error during evaluation: {_STACK}") from None
    except MemoryError:
        raise _failed(expression, field, f"threw an error during evaluation: {_MEMORY}") from None
    except Exception as exc:  # the library lets plain Python errors out of a few functions (1/0, $toMillis)
        raise _failed(expression, field, f"threw an error during evaluation: {exc}") from None
    if raw is None:
        raise _failed(expression, field, "returned nothing (undefined).")
    try:
        return _to_json(raw)
    except _Unsupported:
        raise _failed(expression, field, "returned an unsupported result type.") from None


def resolve(value: Any, *, states: Mapping[str, Any], variables: Mapping[str, Any], field: str) -> Any:
    """Evaluate every ``{% ... %}`` string inside a JSON value (AWS: expressions anywhere a value may be).

    Keys are never evaluated. ``field`` names the value's position for causes; nested positions are
    named ``field/key`` and ``field[i]``, as AWS does.
    """
    if isinstance(value, str):
        return evaluate(value, states=states, variables=variables, field=field) if is_jsonata(value) else value
    if isinstance(value, Mapping):
        return {k: resolve(v, states=states, variables=variables, field=f"{field}/{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, states=states, variables=variables, field=f"{field}[{i}]") for i, v in enumerate(value)]
    return value


def json_type(value: Any) -> str:
    """The JSON type name of a value as AWS prints it in causes (``number``, ``object``...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def unexpected_type(template: Any, field: str, expected: str, value: Any) -> StatesError:
    """AWS's cause for a field whose (evaluated) value has the wrong type.

    Example: ``The JSONata expression '1' specified for the field 'Items' returned an unexpected result
    type. Expected 'array', but was 'number' for value: 1``.
    """
    shown = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    detail = (
        f"returned an unexpected result type. Expected '{expected}', but was '{json_type(value)}' for value: {shown}"
    )
    if is_jsonata(template):
        return _failed(expression_text(template), field, detail)
    return StatesError(ErrorName.QUERY_EVALUATION_ERROR, f"The value specified for the field '{field}' {detail}")


def _failed(expression: str, field: str, detail: str) -> StatesError:
    return StatesError(
        ErrorName.QUERY_EVALUATION_ERROR,
        f"The JSONata expression '{expression}' specified for the field '{field}' {detail}",
    )


def _threw(expression: str, field: str, exc: JException) -> StatesError:
    code = str(getattr(exc, "error", "") or "")
    if code == "D1012":
        return _failed(expression, field, f"threw an error during evaluation: {_TIMEOUT}")
    if code == "D1011":
        return _failed(expression, field, f"threw an error during evaluation: {_STACK}")
    message = _message(exc)
    if re.fullmatch(r"[SDT]\d{4}", code):
        return _failed(expression, field, f"threw an error during evaluation. {code}: {message}")
    return _failed(expression, field, f"threw an error during evaluation: {message}")


def _message(exc: JException) -> str:
    message = str(exc).removeprefix("JSonataException ")
    # jsonata-python's message catalogue says "Object" wherever jsonata-js (and AWS) say "function".
    return re.sub(r"\bObject\b", "function", message)


@lru_cache(maxsize=1024)
def _compile(expression: str) -> Jsonata:
    compiled = Jsonata(expression)  # raises JException on a syntax error (not cached)
    compiled.set_output_convert_nulls(False)  # keep JSON null (NULL_VALUE) apart from undefined (None)
    return compiled


def _claim_thread() -> None:
    """Point this thread's "current instance" at a private scratch instance (see the module docstring)."""
    scratch = getattr(_LOCAL, "scratch", None)
    if scratch is None:
        scratch = Jsonata("null")
        _LOCAL.scratch = scratch
    Jsonata.CURRENT.jsonata = scratch
    scratch.timestamp = Timebox.current_milli_time()  # what $now() and $millis() read


def _run(compiled: Jsonata, states: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
    frame = Jsonata.Frame(None)
    for name, value in variables.items():
        frame.bind(name, Utils.NULL_VALUE if value is None else value)
    for name, function in _FUNCTIONS.items():
        frame.bind(name, function)
    frame.bind("eval", None)  # AWS removes $eval: calling it is "Attempted to invoke a non-function"
    frame.bind("states", dict(states))
    Timebox(frame, TIMEOUT_MS, MAX_DEPTH)  # a fresh clock and depth counter for this evaluation
    _claim_thread()
    return compiled.evaluate(None, frame)


class _Unsupported(Exception):
    """A function (or regex) inside a result: not representable in JSON."""


def _to_json(value: Any) -> Any:
    """A fresh plain-JSON copy of a jsonata-python result (sequences, NULL_VALUE, integral floats)."""
    if value is None or value is Utils.NULL_VALUE:
        return None
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return "Infinity" if value > 0 else "-Infinity" if value < 0 else "NaN"
        # JSONata numbers are doubles: 1.0 is printed 1 (below 1e21, where JavaScript switches notation).
        return int(value) if value.is_integer() and abs(value) < 1e21 else value
    if isinstance(value, Utils.RangeList):  # its __iter__ stops one short; index it instead
        return [_to_json(value[i]) for i in range(len(value))]
    # Inside arrays and objects None is JSON null: JSONata drops undefined members itself.
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    raise _Unsupported()


# --- the functions Step Functions adds -------------------------------------------------------------


class _Native(Jsonata.JFunctionCallable):  # type: ignore[misc]
    """Adapts a Python function to jsonata-python's callable interface."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function

    def call(self, input: Any, args: Any) -> Any:
        """Called by the evaluator with the (signature-validated) argument list."""
        return self.function(*(args or []))


def _error(message: str) -> JException:
    return JException("D3137", -1, message)  # D3137's template is the message itself


def _integer(value: Any) -> int | None:
    """AWS rounds non-integer arguments (towards zero); None stays undefined."""
    if value is None or value is Utils.NULL_VALUE:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _error("Argument must be a number")
    return math.trunc(value)


def _partition(array: Any, size: Any = None) -> Any:
    items = list(array)
    chunk = _integer(size)
    if chunk is None:
        return [items] if items else None
    if chunk < 0:
        raise _error("Second argument must be zero or greater")
    if chunk == 0 or not items:
        return None
    return [items[i : i + chunk] for i in range(0, len(items), chunk)]


def _range(start: Any, end: Any, step: Any = None) -> Any:
    first, last, delta = _integer(start), _integer(end), _integer(step)
    if first is None or last is None or delta is None or delta == 0:
        return None
    if (last - first) * delta < 0:
        return None
    if (last - first) // delta + 1 > MAX_RANGE:
        raise MemoryError()  # refused before allocating, with AWS's memory-limit cause
    # A JSONata sequence: a single element collapses to the bare value, as AWS answers.
    return Utils.create_sequence_from_iter(range(first, last + (1 if delta > 0 else -1), delta))


def _hash(value: Any, algorithm: Any = None) -> Any:
    if algorithm is None:
        return None
    if algorithm not in HASH_ALGORITHMS:
        raise _error(f"The hashing algorithm '{algorithm}' is not supported; use one of {', '.join(HASH_ALGORITHMS)}")
    return hashlib.new(HASH_ALGORITHMS[algorithm], str(value).encode("utf-8")).hexdigest()


def _random(seed: Any = None) -> float:
    value = _integer(seed)
    return random.random() if value is None else _java_random_double(value)


def _java_random_double(seed: int) -> float:
    """``new java.util.Random(seed).nextDouble()``: AWS's seeded ``$random`` draws these values."""
    mask = (1 << 48) - 1
    state = (seed ^ 0x5DEECE66D) & mask

    def bits(count: int) -> int:
        nonlocal state
        state = (state * 0x5DEECE66D + 0xB) & mask
        return state >> (48 - count)

    return ((bits(26) << 27) + bits(27)) * 2.0**-53


def _uuid() -> str:
    return str(uuid.uuid4())


def _parse(text: Any) -> Any:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in pairs}) != len(pairs):
            raise ValueError("duplicate key")
        return dict(pairs)

    def finite(number: str) -> float:
        value = float(number)
        if not math.isfinite(value):
            raise ValueError("number out of range")
        return value

    try:
        value = json.loads(text, object_pairs_hook=unique, parse_float=finite)
    except (ValueError, TypeError) as exc:
        raise _error(f"Invalid JSON: {exc}") from None
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        value = float(value)  # AWS keeps an integer exact only while it fits a long
    return Utils.NULL_VALUE if value is None else value


_FUNCTIONS: dict[str, Any] = {
    name: Jsonata.JFunction(_Native(function), signature)
    for name, function, signature in (
        ("partition", _partition, "<an?:a>"),
        ("range", _range, "<nnn?:a>"),
        ("hash", _hash, "<ss?:s>"),
        ("random", _random, "<n?:n>"),
        ("uuid", _uuid, "<:s>"),
        ("parse", _parse, "<s:x>"),
    )
}
