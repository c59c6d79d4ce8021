"""Map-only definition models: ItemReader, ItemBatcher, ResultWriter and ProcessorConfig.

Shapes only (types, enums, value ranges). Cross-field rules — DISTRIBUTED-only fields in INLINE
mode, mutually exclusive ``...Path`` twins, a reader's required parameters — are in ``checks.py``
so that they can be reported together with every other problem.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .model_base import AslModel, NonNegativeInt, PositiveInt

InputType = Literal["CSV", "JSON", "JSONL", "PARQUET", "MANIFEST"]


class ReaderConfig(AslModel):
    """``ItemReader.ReaderConfig``: how an S3 object or listing is turned into items."""

    input_type: InputType | None = Field(None, alias="InputType")
    transformation: Literal["NONE", "LOAD_AND_FLATTEN"] | None = Field(None, alias="Transformation")
    manifest_type: Literal["ATHENA_DATA", "S3_INVENTORY"] | None = Field(None, alias="ManifestType")
    csv_header_location: Literal["FIRST_ROW", "GIVEN"] | None = Field(None, alias="CSVHeaderLocation")
    csv_headers: list[str] | None = Field(None, alias="CSVHeaders", min_length=1)
    csv_delimiter: Literal["COMMA", "PIPE", "SEMICOLON", "SPACE", "TAB"] | None = Field(None, alias="CSVDelimiter")
    max_items: NonNegativeInt | None = Field(None, alias="MaxItems")
    max_items_path: str | None = Field(None, alias="MaxItemsPath")
    items_pointer: str | None = Field(None, alias="ItemsPointer")


class ItemReader(AslModel):
    """``ItemReader``: an S3 object (``s3:getObject``) or listing (``s3:listObjectsV2``) as the item source."""

    resource: str = Field(alias="Resource")
    parameters: dict[str, Any] | None = Field(None, alias="Parameters")
    arguments: Any = Field(None, alias="Arguments")
    reader_config: ReaderConfig | None = Field(None, alias="ReaderConfig")


class ItemBatcher(AslModel):
    """``ItemBatcher``: groups items into batches, one child execution per batch."""

    max_items_per_batch: PositiveInt | None = Field(None, alias="MaxItemsPerBatch")
    max_items_per_batch_path: str | None = Field(None, alias="MaxItemsPerBatchPath")
    max_input_bytes_per_batch: PositiveInt | None = Field(None, alias="MaxInputBytesPerBatch")
    max_input_bytes_per_batch_path: str | None = Field(None, alias="MaxInputBytesPerBatchPath")
    batch_input: Any = Field(None, alias="BatchInput")


class WriterConfig(AslModel):
    """``ResultWriter.WriterConfig``: the format of exported (or inline) results."""

    output_type: Literal["JSON", "JSONL"] | None = Field(None, alias="OutputType")
    transformation: Literal["NONE", "COMPACT", "FLATTEN"] | None = Field(None, alias="Transformation")


class ResultWriter(AslModel):
    """``ResultWriter``: export child results to S3 (``s3:putObject``) and/or format them."""

    resource: str | None = Field(None, alias="Resource")
    parameters: dict[str, Any] | None = Field(None, alias="Parameters")
    arguments: Any = Field(None, alias="Arguments")
    writer_config: WriterConfig | None = Field(None, alias="WriterConfig")


class ProcessorConfig(AslModel):
    """``ItemProcessor.ProcessorConfig``: INLINE (in the parent) or DISTRIBUTED (child executions)."""

    mode: Literal["INLINE", "DISTRIBUTED"] = Field("INLINE", alias="Mode")
    execution_type: Literal["STANDARD", "EXPRESS"] | None = Field(None, alias="ExecutionType")
