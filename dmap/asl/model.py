"""Definition models: the state machine and every state type, for JSONPath and JSONata.

Shapes only. A model is what the interpreter runs; ``checks.py`` holds the rules that relate
fields to each other and states to states. Field names are snake_case with the AWS names as
aliases; ``load`` in ``dmap.asl`` builds these from JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from .map import ItemBatcher, ItemReader, ProcessorConfig, ResultWriter
from .model_base import AslModel, NonNegativeInt, Percentage, PositiveInt, Seconds

QueryLanguage = Literal["JSONPath", "JSONata"]

#: Choice comparison operators and the JSON type of their operand ("path" = a Path to compare with).
CHOICE_OPERATORS: dict[str, str] = {
    **{f"String{op}": "string" for op in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")},
    **{
        f"String{op}Path": "path" for op in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
    },
    "StringMatches": "string",
    **{f"Numeric{op}": "number" for op in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")},
    **{
        f"Numeric{op}Path": "path"
        for op in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
    },
    "BooleanEquals": "boolean",
    "BooleanEqualsPath": "path",
    **{
        f"Timestamp{op}": "timestamp"
        for op in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
    },
    **{
        f"Timestamp{op}Path": "path"
        for op in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
    },
    **{f"Is{t}": "boolean" for t in ("Null", "Present", "Numeric", "String", "Boolean", "Timestamp")},
}
_RULE_FIELDS = {"Variable", "Next", "Comment", "And", "Or", "Not", "Condition", "Assign", "Output"}


class ChoiceRule(AslModel):
    """One Choice rule: a comparison (``Variable`` + one operator), a boolean combination, or a JSONata ``Condition``.

    The operator is kept generic (``operator``/``operand``) so the interpreter can dispatch on a table.
    """

    variable: str | None = Field(None, alias="Variable")
    operator: str | None = None
    operand: Any = None
    and_: list[ChoiceRule] | None = Field(None, alias="And")
    or_: list[ChoiceRule] | None = Field(None, alias="Or")
    not_: ChoiceRule | None = Field(None, alias="Not")
    condition: Any = Field(None, alias="Condition")
    next: str | None = Field(None, alias="Next")
    assign: dict[str, Any] | None = Field(None, alias="Assign")
    output: Any = Field(None, alias="Output")
    comment: str | None = Field(None, alias="Comment")

    @model_validator(mode="before")
    @classmethod
    def _split_operator(cls, data: Any) -> Any:
        """Move the (single) comparison operator key into ``operator``/``operand``; reject unknown keys."""
        if not isinstance(data, dict) or "operator" in data:
            return data
        rest = {k: v for k, v in data.items() if k in _RULE_FIELDS}
        operators = [k for k in data if k in CHOICE_OPERATORS]
        unknown = [k for k in data if k not in _RULE_FIELDS and k not in CHOICE_OPERATORS]
        if unknown:
            raise ValueError(f"unknown field(s) in Choice rule: {', '.join(sorted(unknown))}")
        if len(operators) > 1:
            raise ValueError(f"a Choice rule has exactly one comparison operator, found: {', '.join(operators)}")
        if operators:
            rest["operator"] = operators[0]
            rest["operand"] = data[operators[0]]
        return rest

    @model_serializer(mode="wrap")
    def _join_operator(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Dump the comparison back as ASL (``{"BooleanEquals": true}``): the journal reloads dumps for redrive."""
        data = handler(self)
        if isinstance(data, dict) and "operator" in data:
            operator, operand = data.pop("operator"), data.pop("operand", None)
            if operator is not None:
                data[operator] = operand
        return data


class Retrier(AslModel):
    """One ``Retry`` entry."""

    error_equals: list[str] = Field(alias="ErrorEquals", min_length=1)
    interval_seconds: int = Field(1, alias="IntervalSeconds", ge=1, le=99_999_999)
    max_attempts: int = Field(3, alias="MaxAttempts", ge=0, le=99_999_999)
    backoff_rate: float = Field(2.0, alias="BackoffRate", ge=1.0)
    max_delay_seconds: int | None = Field(None, alias="MaxDelaySeconds", ge=1, le=31_622_400)
    jitter_strategy: Literal["FULL", "NONE"] = Field("NONE", alias="JitterStrategy")
    comment: str | None = Field(None, alias="Comment")


class Catcher(AslModel):
    """One ``Catch`` entry. ``result_path`` None means the error output is discarded (``"ResultPath": null``)."""

    error_equals: list[str] = Field(alias="ErrorEquals", min_length=1)
    next: str = Field(alias="Next")
    result_path: str | None = Field("$", alias="ResultPath")
    output: Any = Field(None, alias="Output")
    assign: dict[str, Any] | None = Field(None, alias="Assign")
    comment: str | None = Field(None, alias="Comment")


class _State(AslModel):
    """Fields every state has."""

    comment: str | None = Field(None, alias="Comment")
    query_language: QueryLanguage | None = Field(None, alias="QueryLanguage")

    @property
    def is_end(self) -> bool:
        """True when the state ends its (sub-)workflow after it runs."""
        return bool(getattr(self, "end", False)) or self.type_name in ("Succeed", "Fail")

    @property
    def type_name(self) -> str:
        """The ASL ``Type``."""
        return str(self.type)  # type: ignore[attr-defined]


class _Flow(_State):
    """Fields of states that transition: InputPath/OutputPath, Next/End, Assign/Output."""

    input_path: str | None = Field("$", alias="InputPath")
    output_path: str | None = Field("$", alias="OutputPath")
    next: str | None = Field(None, alias="Next")
    end: bool | None = Field(None, alias="End")
    assign: dict[str, Any] | None = Field(None, alias="Assign")
    output: Any = Field(None, alias="Output")


class _Fallible(_Flow):
    """States with a result, Retry and Catch: Task, Parallel, Map."""

    result_selector: dict[str, Any] | None = Field(None, alias="ResultSelector")
    result_path: str | None = Field("$", alias="ResultPath")
    retry: list[Retrier] = Field(default_factory=list, alias="Retry")
    catch: list[Catcher] = Field(default_factory=list, alias="Catch")


class PassState(_Flow):
    """``Pass``: passes its input (or ``Result``) to its output."""

    type: Literal["Pass"] = Field(alias="Type")
    result: Any = Field(None, alias="Result")
    result_path: str | None = Field("$", alias="ResultPath")
    parameters: Any = Field(None, alias="Parameters")


class TaskState(_Fallible):
    """``Task``: calls a registered handler or an enabled service integration."""

    type: Literal["Task"] = Field(alias="Type")
    resource: str = Field(alias="Resource")
    parameters: Any = Field(None, alias="Parameters")
    arguments: Any = Field(None, alias="Arguments")
    timeout_seconds: PositiveInt | None = Field(None, alias="TimeoutSeconds")
    timeout_seconds_path: str | None = Field(None, alias="TimeoutSecondsPath")
    heartbeat_seconds: PositiveInt | None = Field(None, alias="HeartbeatSeconds")
    heartbeat_seconds_path: str | None = Field(None, alias="HeartbeatSecondsPath")
    credentials: Any = Field(None, alias="Credentials")


class ChoiceState(_State):
    """``Choice``: picks the ``Next`` of the first matching rule, else ``Default``."""

    type: Literal["Choice"] = Field(alias="Type")
    choices: list[ChoiceRule] = Field(alias="Choices", min_length=1)
    default: str | None = Field(None, alias="Default")
    input_path: str | None = Field("$", alias="InputPath")
    output_path: str | None = Field("$", alias="OutputPath")
    assign: dict[str, Any] | None = Field(None, alias="Assign")
    output: Any = Field(None, alias="Output")


class WaitState(_Flow):
    """``Wait``: delays by seconds or until a timestamp."""

    type: Literal["Wait"] = Field(alias="Type")
    seconds: Seconds | None = Field(None, alias="Seconds")
    timestamp: str | None = Field(None, alias="Timestamp")
    seconds_path: str | None = Field(None, alias="SecondsPath")
    timestamp_path: str | None = Field(None, alias="TimestampPath")


class SucceedState(_State):
    """``Succeed``: ends the (sub-)workflow successfully."""

    type: Literal["Succeed"] = Field(alias="Type")
    input_path: str | None = Field("$", alias="InputPath")
    output_path: str | None = Field("$", alias="OutputPath")
    output: Any = Field(None, alias="Output")


class FailState(_State):
    """``Fail``: ends the execution with an error and a cause."""

    type: Literal["Fail"] = Field(alias="Type")
    error: str | None = Field(None, alias="Error")
    cause: str | None = Field(None, alias="Cause")
    error_path: str | None = Field(None, alias="ErrorPath")
    cause_path: str | None = Field(None, alias="CausePath")


class Branch(AslModel):
    """A nested workflow: a Parallel branch or a Map's ItemProcessor."""

    comment: str | None = Field(None, alias="Comment")
    start_at: str = Field(alias="StartAt")
    states: dict[str, State] = Field(alias="States", min_length=1)
    query_language: QueryLanguage | None = Field(None, alias="QueryLanguage")
    processor_config: ProcessorConfig | None = Field(None, alias="ProcessorConfig")


class ParallelState(_Fallible):
    """``Parallel``: runs every branch on the same input; the output is their outputs, in order."""

    type: Literal["Parallel"] = Field(alias="Type")
    branches: list[Branch] = Field(alias="Branches", min_length=1)
    parameters: Any = Field(None, alias="Parameters")
    arguments: Any = Field(None, alias="Arguments")


class MapState(_Fallible):
    """``Map``: runs ``ItemProcessor`` once per item, inline or as distributed child executions."""

    type: Literal["Map"] = Field(alias="Type")
    item_processor: Branch | None = Field(None, alias="ItemProcessor")
    iterator: Branch | None = Field(None, alias="Iterator")
    items_path: str | None = Field("$", alias="ItemsPath")
    items: Any = Field(None, alias="Items")
    item_selector: Any = Field(None, alias="ItemSelector")
    parameters: Any = Field(None, alias="Parameters")
    item_reader: ItemReader | None = Field(None, alias="ItemReader")
    item_batcher: ItemBatcher | None = Field(None, alias="ItemBatcher")
    result_writer: ResultWriter | None = Field(None, alias="ResultWriter")
    max_concurrency: NonNegativeInt | None = Field(None, alias="MaxConcurrency")
    max_concurrency_path: str | None = Field(None, alias="MaxConcurrencyPath")
    tolerated_failure_count: NonNegativeInt | None = Field(None, alias="ToleratedFailureCount")
    tolerated_failure_count_path: str | None = Field(None, alias="ToleratedFailureCountPath")
    tolerated_failure_percentage: Percentage | None = Field(None, alias="ToleratedFailurePercentage")
    tolerated_failure_percentage_path: str | None = Field(None, alias="ToleratedFailurePercentagePath")
    label: str | None = Field(None, alias="Label")

    @property
    def processor(self) -> Branch:
        """``ItemProcessor``, or the legacy ``Iterator``."""
        processor = self.item_processor or self.iterator
        assert processor is not None, "validated: a Map has ItemProcessor or Iterator"
        return processor

    @property
    def distributed(self) -> bool:
        """True when the Map runs its items as distributed child executions."""
        config = self.processor.processor_config
        return config is not None and config.mode == "DISTRIBUTED"

    @property
    def selector(self) -> Any:
        """``ItemSelector``, or the legacy ``Parameters``."""
        return self.item_selector if self.item_selector is not None else self.parameters


State = Annotated[
    PassState | TaskState | ChoiceState | WaitState | SucceedState | FailState | ParallelState | MapState,
    Field(discriminator="type"),
]


class StateMachine(AslModel):
    """A whole definition: ``StartAt``, ``States`` and the machine-level options."""

    comment: str | None = Field(None, alias="Comment")
    start_at: str = Field(alias="StartAt")
    states: dict[str, State] = Field(alias="States", min_length=1)
    timeout_seconds: int | None = Field(None, alias="TimeoutSeconds", gt=0)
    version: str | None = Field(None, alias="Version")
    query_language: QueryLanguage = Field("JSONPath", alias="QueryLanguage")

    def as_branch(self) -> Branch:
        """This machine's states as a :class:`Branch` (the interpreter runs branches)."""
        return Branch(start_at=self.start_at, states=self.states, query_language=self.query_language)


Branch.model_rebuild()
ChoiceRule.model_rebuild()


def iter_states(
    branch: Branch | StateMachine, prefix: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str, Any]]:
    """Every state of a workflow and of its nested branches/processors, with its JSON-pointer parts."""
    for name, state in branch.states.items():
        where = (*prefix, "States", name)
        yield where, name, state
        if isinstance(state, ParallelState):
            for i, sub in enumerate(state.branches):
                yield from iter_states(sub, (*where, "Branches", i))
        elif isinstance(state, MapState):
            key = "ItemProcessor" if state.item_processor is not None else "Iterator"
            yield from iter_states(state.processor, (*where, key))
