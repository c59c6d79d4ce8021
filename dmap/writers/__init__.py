"""ResultWriter: a Map Run's child results, exported in AWS's layout or formatted inline.

This package owns what happens to child results after the children finish: the AWS record shapes
and ``WriterConfig`` transformations (:mod:`.records`), the streamed, size-limited result files
(:mod:`.files`) and the ``SUCCEEDED_n``/``FAILED_n``/``PENDING_n`` + ``manifest.json`` export
(:mod:`.s3`). It does not collect results, decide the Map Run's status or enforce payload limits;
the coordinator feeds it child records in child order.

Two uses:

* ``ResultWriter`` with ``Resource``/``Parameters``: :class:`ResultWriter` writes the files and
  returns the Map state output ``{"MapRunArn", "ResultWriterDetails": {"Bucket", "Key"}}``.
* ``ResultWriter`` with only ``WriterConfig``: :func:`apply_writer_config` yields the elements of
  the inline output array.
"""

from __future__ import annotations

from .records import (
    FILE_GROUPS,
    RecordContext,
    WriterSpec,
    apply_writer_config,
    child_execution_name,
    encode_json,
    none_record,
    transform_output,
)
from .s3 import DEFAULT_MAX_FILE_BYTES, ResultWriter, result_base

__all__ = [
    # Exporting to storage
    "ResultWriter",
    "WriterSpec",
    "DEFAULT_MAX_FILE_BYTES",
    "result_base",
    # Record shapes and transformations
    "RecordContext",
    "FILE_GROUPS",
    "apply_writer_config",
    "child_execution_name",
    "encode_json",
    "none_record",
    "transform_output",
]
