"""ASL intrinsic functions for JSONPath states: a parser, a static checker and an evaluator.

Owns the intrinsic grammar (``States.Name(arg, ...)`` with single-quoted string literals, numbers,
``true``/``false``/``null``, paths and nested calls, at most 10 deep), every ``States.*`` function
AWS documents, and their runtime failures, raised as ``StatesError("States.IntrinsicFailure", ...)``.
A path argument that matches nothing is a ``States.Runtime`` failure worded as AWS words it for a
payload field. Does not own paths themselves (:mod:`.paths`) or payload templates (:mod:`.payload`).

Numbers follow AWS (a Java service): integer arguments are rounded half up (``Math.round``),
``States.Format`` prints objects as ``{a=1, b=[]}`` and doubles as Java does (``1.0E7``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import random
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from ..errors import ErrorName, StatesError
from . import paths
from .paths import PathNotFound

__all__ = ["FUNCTIONS", "IntrinsicCall", "IntrinsicSyntaxError", "Literal", "PathArgument", "evaluate", "is_intrinsic"]
__all__ += ["java_double", "java_round", "parse"]

MAX_NESTING = 10
MAX_ARRAY_RANGE = 1000
MAX_ENCODING_INPUT = 10_000
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
HASH_ALGORITHMS = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}

_NAME = re.compile(r"States\.([A-Za-z0-9]+)\(")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_KEYWORDS: dict[str, Any] = {"true": True, "false": False, "null": None}


class IntrinsicSyntaxError(ValueError):
    """Raised when an intrinsic call is malformed, names an unknown function or has a wrong argument count."""

    def __init__(self, text: str, reason: str, position: int | None = None) -> None:
        self.text = text
        self.reason = reason
        self.position = position
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"invalid intrinsic function {text!r}{where}: {reason}")


@dataclass(frozen=True, slots=True)
class Literal:
    """A literal argument. For strings, ``segments`` is the text split at unescaped ``{}``."""

    value: Any
    segments: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class PathArgument:
    """A path argument (``$...``, ``$$...`` or ``$var...``), resolved with :func:`paths.select`."""

    path: str


@dataclass(frozen=True, slots=True)
class IntrinsicCall:
    """One parsed call: ``name`` is the full name (``States.Format``), ``text`` its source text."""

    name: str
    args: tuple[Literal | PathArgument | IntrinsicCall, ...]
    text: str


Argument = Literal | PathArgument | IntrinsicCall


class _Parser:
    """A recursive-descent parser over one intrinsic expression."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, reason: str, position: int | None = None) -> IntrinsicSyntaxError:
        return IntrinsicSyntaxError(self.text, reason, self.pos if position is None else position)

    def skip_spaces(self) -> None:
        self.pos = len(self.text) - len(self.text[self.pos :].lstrip())

    def call(self, depth: int) -> IntrinsicCall:
        start = self.pos
        if depth > MAX_NESTING:
            raise self.error(f"intrinsic functions can be nested at most {MAX_NESTING} deep")
        match = _NAME.match(self.text, self.pos)
        if not match:
            raise self.error("expected an intrinsic function call such as States.Format(...)")
        name = f"States.{match.group(1)}"
        if name not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise self.error(f"unknown intrinsic function '{name}' (known: {known})", start)
        self.pos = match.end()
        args: list[Argument] = []
        self.skip_spaces()
        if self.text[self.pos : self.pos + 1] == ")":
            self.pos += 1
        else:
            while True:
                self.skip_spaces()
                args.append(self.argument(depth))
                self.skip_spaces()
                ch = self.text[self.pos : self.pos + 1]
                self.pos += 1
                if ch == ")":
                    break
                if ch != ",":
                    reason = "expected ',' or ')' after an argument" if ch else "unexpected end of expression"
                    raise self.error(reason, self.pos - 1)
        call = IntrinsicCall(name, tuple(args), self.text[start : self.pos])
        _check_static(call, self.text)
        return call

    def argument(self, depth: int) -> Argument:
        ch = self.text[self.pos : self.pos + 1]
        if ch == "'":
            return self.string()
        if ch == "$":
            return self.path()
        if self.text.startswith("States.", self.pos):
            return self.call(depth + 1)
        match = _NUMBER.match(self.text, self.pos)
        if match:
            self.pos = match.end()
            literal = match.group(0)
            return Literal(float(literal) if match.group(1) or match.group(2) else int(literal))
        for word, value in _KEYWORDS.items():
            end = self.pos + len(word)
            if self.text.startswith(word, self.pos) and not self.text[end : end + 1].isalnum():
                self.pos = end
                return Literal(value)
        if not ch:
            raise self.error("unexpected end of expression")
        raise self.error(f"unexpected {ch!r}: expected a 'string', number, true, false, null, path or call")

    def string(self) -> Literal:
        start = self.pos
        self.pos += 1
        chars: list[str] = []
        segments: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\":
                nxt = self.text[self.pos + 1 : self.pos + 2]
                if not nxt:
                    break
                # \' \{ \} \\ are the documented escapes; any other pair is kept verbatim.
                chars.append(nxt if nxt in "'{}\\" else ch + nxt)
                self.pos += 2
                continue
            if ch == "'":
                self.pos += 1
                segments.append("".join(chars))
                # The value keeps unescaped "{}" as written; segments split there for States.Format.
                return Literal("{}".join(segments), tuple(segments))
            if ch == "{" and self.text.startswith("{}", self.pos):
                segments.append("".join(chars))
                chars = []
                self.pos += 2
                continue
            chars.append(ch)
            self.pos += 1
        raise self.error("unterminated string literal (a trailing backslash escapes the closing quote)", start)

    def path(self) -> PathArgument:
        start, depth, quote = self.pos, 0, ""
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if quote:
                quote = "" if ch == quote else quote
                self.pos += 2 if ch == "\\" else 1
                continue
            if ch in "'\"" and depth:  # quoted field names and filter strings live inside brackets
                quote = ch
            elif ch in "[(":
                depth += 1
            elif ch in "])" and depth:
                depth -= 1
            elif ch in ")," and not depth:
                break
            self.pos += 1
        text = self.text[start : self.pos].rstrip()
        if quote or not paths.is_path(text):
            raise self.error(f"invalid path argument {text!r}", start)
        return PathArgument(text)


def _check_static(call: IntrinsicCall, text: str) -> None:
    low, high, _ = FUNCTIONS[call.name]
    count = len(call.args)
    if count < low or (high is not None and count > high):
        expected = f"at least {low}" if high is None else (f"exactly {low}" if low == high else f"{low} to {high}")
        raise IntrinsicSyntaxError(text, f"{call.name} expects {expected} argument(s) but got {count}")
    if call.name == "States.Format" and isinstance(call.args[0], Literal) and not isinstance(call.args[0].value, str):
        raise IntrinsicSyntaxError(text, "the first argument of States.Format must be a string")


def is_intrinsic(text: Any) -> bool:
    """Tell whether ``text`` looks like an intrinsic call (``States.`` + name + ``(``); it may still be invalid."""
    return isinstance(text, str) and _NAME.match(text) is not None


@lru_cache(maxsize=2048)
def parse(text: str) -> IntrinsicCall:
    """Parse an intrinsic expression.

    Raises:
        IntrinsicSyntaxError: bad syntax, an unknown function, a wrong argument count, nesting past
            10 levels or trailing text.
    """
    parser = _Parser(text)
    call = parser.call(1)
    parser.skip_spaces()
    if parser.pos != len(text):
        raise parser.error("unexpected text after the closing parenthesis")
    return call


def evaluate(
    text: str,
    data: Any,
    *,
    context: Any = None,
    variables: Mapping[str, Any] | None = None,
    field: str | None = None,
) -> Any:
    """Evaluate an intrinsic expression against the state data.

    Args:
        text: The expression, e.g. ``"States.Format('{}!', $.name)"``.
        data: The document ``$`` paths read.
        context: The context object ``$$`` paths read.
        variables: The variables ``$name`` paths read.
        field: The payload field being evaluated (e.g. ``"greeting.$"``), used in error causes.

    Raises:
        IntrinsicSyntaxError: ``text`` does not parse.
        StatesError: ``States.IntrinsicFailure`` when a function rejects its arguments;
            ``States.Runtime`` when a path argument matches nothing.
    """
    call = parse(text)
    try:
        return _eval(call, data, context, variables)
    except PathNotFound as exc:
        raise StatesError(ErrorName.RUNTIME, exc.cause(field)) from None


def _eval(node: Argument, data: Any, context: Any, variables: Mapping[str, Any] | None) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, PathArgument):
        return paths.select(node.path, data, context=context, variables=variables)
    args = [_eval(arg, data, context, variables) for arg in node.args]
    return FUNCTIONS[node.name][2](node, args)


def _fail(call: IntrinsicCall, detail: str) -> StatesError:
    return StatesError(ErrorName.INTRINSIC_FAILURE, f"Invalid arguments in {call.text}: {detail}")


def _expect(call: IntrinsicCall, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    # bool is an int in Python but never a number in JSON.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        shown = _TYPE_NAMES.get(type(value)) if isinstance(value, (list, dict)) else paths.compact_json(value)[:60]
        raise _fail(call, f"{what} must be {_TYPE_NAMES[kind]}, got {shown}")
    return value


_TYPE_NAMES: dict[Any, str] = {list: "an array", dict: "an object", str: "a string", bool: "a boolean"}
_TYPE_NAMES[(int, float)] = "a number"


def java_round(value: float) -> int:
    """Round half up, as Java's ``Math.round`` does (``-2.5`` -> ``-2``, ``2.5`` -> ``3``)."""
    floor = math.floor(value)
    return int(floor + 1 if value - floor >= 0.5 else floor)


def _integer(call: IntrinsicCall, value: Any, what: str, *, int32: bool = False) -> int:
    """A numeric argument rounded as AWS rounds it; optionally limited to a Java int."""
    number = _expect(call, value, (int, float), what)
    if isinstance(number, float) and not math.isfinite(number):
        raise _fail(call, f"{what} must be a finite number")
    result = java_round(number) if isinstance(number, float) else int(number)
    if int32 and not INT32_MIN <= result <= INT32_MAX:
        raise _fail(call, f"{what} must be between {INT32_MIN} and {INT32_MAX}, got {result}")
    return result


def _canonical(value: Any) -> Any:
    """A hashable key under which equal JSON values (``1`` and ``1.0``, not ``true``) coincide."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", value)
    if isinstance(value, list):
        return ("a", tuple(_canonical(v) for v in value))
    if isinstance(value, dict):
        return ("o", frozenset((k, _canonical(v)) for k, v in value.items()))
    return ("s" if isinstance(value, str) else "z", value)


def java_double(value: float) -> str:
    """Format a double as Java's ``Double.toString`` does (``1.0``, ``1.0E7``, ``1.0E-4``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    if 1e-3 <= abs(value) < 1e7:
        return repr(value)
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    mantissa = text[0] + "." + (text[1:] or "0")
    return f"{'-' if sign else ''}{mantissa}E{exponent + len(text) - 1}"


def _format_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool):
        return paths.compact_json(value)
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{k}={_format_value(v)}" for k, v in value.items()) + "}"


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _format(call: IntrinsicCall, args: list[Any]) -> str:
    template = call.args[0]
    if isinstance(template, Literal) and template.segments is not None:
        segments: list[str] = list(template.segments)
    else:
        segments = _expect(call, args[0], str, "the template (first argument)").split("{}")
    values = args[1:]
    if len(segments) - 1 != len(values):
        raise _fail(call, f"the template has {len(segments) - 1} placeholder(s) '{{}}' but {len(values)} value(s)")
    return segments[0] + "".join(_format_value(v) + s for v, s in zip(values, segments[1:], strict=True))


def _string_to_json(call: IntrinsicCall, args: list[Any]) -> Any:
    text = _expect(call, args[0], str, "the argument")
    if not text.strip():
        return None
    try:
        return json.loads(text, parse_constant=_no_constants)
    except ValueError as exc:
        raise _fail(call, f"the string is not valid JSON ({exc})") from None


def _array_partition(call: IntrinsicCall, args: list[Any]) -> list[Any]:
    array = _expect(call, args[0], list, "the first argument")
    size = _integer(call, args[1], "the chunk size")
    if size <= 0:
        raise _fail(call, f"the chunk size must be a positive integer, got {size}")
    return [array[i : i + size] for i in range(0, len(array), size)]


def _array_range(call: IntrinsicCall, args: list[Any]) -> list[int]:
    start, end, step = (_integer(call, a, w) for a, w in zip(args, ("the start", "the end", "the step"), strict=True))
    if step == 0:
        raise _fail(call, "the step must not be 0")
    count = max(0, (end - start) // step + 1)
    if count > MAX_ARRAY_RANGE:
        raise _fail(call, f"the range would have {count} elements; the maximum is {MAX_ARRAY_RANGE}")
    return [start + i * step for i in range(count)]


def _array_get_item(call: IntrinsicCall, args: list[Any]) -> Any:
    array = _expect(call, args[0], list, "the first argument")
    index = _expect(call, args[1], (int, float), "the index")
    if isinstance(index, float) and not index.is_integer():
        raise _fail(call, f"the index must be an integer, got {java_double(index)}")
    if not 0 <= index < len(array):
        raise _fail(call, f"the index {int(index)} is out of bounds for an array of length {len(array)}")
    return array[int(index)]


def _array_contains(call: IntrinsicCall, args: list[Any]) -> bool:
    wanted = _canonical(args[1])
    return any(_canonical(item) == wanted for item in _expect(call, args[0], list, "the first argument"))


def _array_unique(call: IntrinsicCall, args: list[Any]) -> list[Any]:
    unique: dict[Any, Any] = {}
    for item in _expect(call, args[0], list, "the argument"):
        unique.setdefault(_canonical(item), item)
    return list(unique.values())


def _text_input(call: IntrinsicCall, value: Any, what: str) -> str:
    text: str = _expect(call, value, str, what)
    if len(text) > MAX_ENCODING_INPUT:
        raise _fail(call, f"{what} must be at most {MAX_ENCODING_INPUT} characters, got {len(text)}")
    return text


def _base64_encode(call: IntrinsicCall, args: list[Any]) -> str:
    return base64.b64encode(_text_input(call, args[0], "the argument").encode("utf-8")).decode("ascii")


def _base64_decode(call: IntrinsicCall, args: list[Any]) -> str:
    text = _text_input(call, args[0], "the argument")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _fail(call, "the argument is not valid base64") from None
    return raw.decode("utf-8", errors="replace")


def _hash(call: IntrinsicCall, args: list[Any]) -> str:
    text = _text_input(call, args[0], "the data (first argument)")
    algorithm = _expect(call, args[1], str, "the algorithm")
    if algorithm not in HASH_ALGORITHMS:
        raise _fail(call, f"unsupported algorithm {algorithm!r}; use one of {', '.join(HASH_ALGORITHMS)}")
    return hashlib.new(HASH_ALGORITHMS[algorithm], text.encode("utf-8")).hexdigest()


def _json_merge(call: IntrinsicCall, args: list[Any]) -> dict[str, Any]:
    first = _expect(call, args[0], dict, "the first argument")
    second = _expect(call, args[1], dict, "the second argument")
    if _expect(call, args[2], bool, "the deep-merge flag (third argument)"):
        raise _fail(call, "only shallow merging is supported: the third argument must be false")
    return {**first, **second}


def _math_random(call: IntrinsicCall, args: list[Any]) -> int:
    start = _integer(call, args[0], "the start", int32=True)
    end = _integer(call, args[1], "the end", int32=True)
    if start >= end:
        raise _fail(call, f"the start ({start}) must be less than the end ({end}), which is exclusive")
    if len(args) == 3:
        return random.Random(_integer(call, args[2], "the seed")).randrange(start, end)
    return random.randrange(start, end)


def _math_add(call: IntrinsicCall, args: list[Any]) -> int:
    first = _integer(call, args[0], "the first argument", int32=True)
    second = _integer(call, args[1], "the second argument", int32=True)
    return _integer(call, first + second, "the sum", int32=True)


def _string_split(call: IntrinsicCall, args: list[Any]) -> list[str]:
    text = _expect(call, args[0], str, "the first argument")
    delimiters = _expect(call, args[1], str, "the delimiters (second argument)")
    if not delimiters:
        return [text] if text else []
    # Like Java's StringTokenizer: every character is a delimiter and empty tokens are dropped.
    return [t for t in re.split("[" + re.escape(delimiters) + "]", text) if t]


_Impl = Callable[[IntrinsicCall, list[Any]], Any]

#: name -> (minimum argument count, maximum or None for no limit, implementation)
FUNCTIONS: dict[str, tuple[int, int | None, _Impl]] = {
    "States.Format": (1, None, _format),
    "States.StringToJson": (1, 1, _string_to_json),
    "States.JsonToString": (1, 1, lambda call, a: paths.compact_json(a[0])),
    "States.Array": (0, None, lambda call, a: list(a)),
    "States.ArrayPartition": (2, 2, _array_partition),
    "States.ArrayContains": (2, 2, _array_contains),
    "States.ArrayRange": (3, 3, _array_range),
    "States.ArrayGetItem": (2, 2, _array_get_item),
    "States.ArrayLength": (1, 1, lambda call, a: len(_expect(call, a[0], list, "the argument"))),
    "States.ArrayUnique": (1, 1, _array_unique),
    "States.Base64Encode": (1, 1, _base64_encode),
    "States.Base64Decode": (1, 1, _base64_decode),
    "States.Hash": (2, 2, _hash),
    "States.JsonMerge": (3, 3, _json_merge),
    "States.MathRandom": (2, 3, _math_random),
    "States.MathAdd": (2, 2, _math_add),
    "States.StringSplit": (2, 2, _string_split),
    "States.UUID": (0, 0, lambda call, a: str(uuid.uuid4())),
}
