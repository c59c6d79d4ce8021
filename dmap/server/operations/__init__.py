"""The Step Functions operations, one module per family; importing this package registers them all."""

from __future__ import annotations

from . import (
    callbacks,  # noqa: F401  (registers its operations)
    machines,  # noqa: F401  (registers its operations)
)
